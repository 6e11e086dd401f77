// The graph node's C base, _core.Node: its edges (where each input's gradient goes), the hooks
// on its output's gradient, and for a native op what its forward saved, readable from Python
// (op name, saved arrays, dims, scalar) so that the reference engine can run the same formula.
#include "autograd.h"

#include <structmember.h>

#include <new>

#include "chainrule/errors.h"
#include "chainrule/ops.h"

namespace chainrule::python {

PyTypeObject* node_type = nullptr;

PyObject* new_node(PyTypeObject* type, NativeOp op) {
  PyObject* obj = type->tp_alloc(type, 0);
  if (obj == nullptr) return nullptr;
  NodeState* state = new (std::nothrow) NodeState;
  if (state == nullptr) {
    Py_DECREF(obj);
    return PyErr_NoMemory();
  }
  state->native.op = op;
  as_node(obj)->state = state;
  return obj;
}

void set_edge(NodeState& state, std::size_t i, PyObject* arg, const Tensor* array, bool number_operand) {
  Edge& edge = state.edges[i];
  if (!is_tensor(arg)) {
    if (number_operand && (PyFloat_Check(arg) || PyLong_Check(arg))) {
      edge.constant = true;
      edge.shape = {};
      edge.dtype = PyFloat_Check(arg) ? DType::Float64 : (PyBool_Check(arg) ? DType::Bool : DType::Int64);
      Py_INCREF(arg);
      edge.value = arg;
    }
    return;
  }
  const Tensor& used = array != nullptr ? *array : tensor_array(arg);
  if (!as_tensor(arg)->requires_grad) {
    edge.constant = true;
    edge.shape = used.shape();
    edge.dtype = used.dtype();
    if (used.numel() <= kConstantValues) {
      Py_INCREF(arg);
      edge.value = arg;
    } else {
      edge.value = PyWeakref_NewRef(arg, nullptr);  // names it while the caller keeps it
      if (edge.value == nullptr) PyErr_Clear();     // drawing is no reason to fail an op
    }
    return;
  }
  TensorObject* t = as_tensor(arg);
  PyObject* target = is_set(t->grad_fn) ? t->grad_fn : arg;
  Py_INCREF(target);
  edge.target = target;
  edge.to_node = target != arg;
  edge.shape = used.shape();
  edge.dtype = used.dtype();
}

void check_saved(NodeObject* node) {
  NodeState& state = *node->state;
  if (state.freed) {
    throw RuntimeError(
        std::string(native_op_name(state.native.op)) +
        "Backward: trying to backward through the graph a second time (its saved tensors were freed "
        "after the first backward); pass retain_graph=True to the first backward if you need to run it twice");
  }
  for (std::size_t i = 0; i < state.native.arrays.size(); ++i) {
    const Tensor& a = state.native.arrays[i];
    if (a.version() != state.versions[i]) {
      fail<RuntimeError>(native_op_name(state.native.op), "Backward: a tensor of shape ", a.shape(), " and dtype ",
                         dtype_name(a.dtype()),
                         " saved for backward was modified by an in-place operation: it was saved at version ",
                         state.versions[i], " and is now at version ", a.version());
    }
  }
}

void release_native_saved(NodeObject* node) {
  NativeSaved& saved = node->state->native;
  if (saved.op != NativeOp::Python && !saved.arrays.empty()) {
    saved.arrays.clear();
    node->state->freed = true;
  }
}

namespace {

// ------------------------------------------------------------------ Node
PyObject* node_new(PyTypeObject* type, PyObject*, PyObject*) { return new_node(type, NativeOp::Python); }

int node_traverse(PyObject* self, visitproc visit, void* arg) {
  NodeObject* n = as_node(self);
  Py_VISIT(n->dict);
  Py_VISIT(n->hooks);
  Py_VISIT(n->retained);
  if (n->state != nullptr) {
    for (const Edge& edge : n->state->edges) {
      Py_VISIT(edge.target);
      Py_VISIT(edge.value);
    }
  }
  Py_VISIT(Py_TYPE(self));
  return 0;
}

int node_clear(PyObject* self) {
  NodeObject* n = as_node(self);
  Py_CLEAR(n->dict);
  Py_CLEAR(n->hooks);
  Py_CLEAR(n->retained);
  if (n->state != nullptr) {
    for (Edge& edge : n->state->edges) {
      Py_CLEAR(edge.target);
      Py_CLEAR(edge.value);
    }
  }
  return 0;
}

void node_dealloc(PyObject* self) {
  PyTypeObject* type = Py_TYPE(self);
  PyObject_GC_UnTrack(self);
  Py_TRASHCAN_BEGIN(self, node_dealloc)
  NodeObject* n = as_node(self);
  if (n->weakrefs != nullptr) PyObject_ClearWeakRefs(self);
  node_clear(self);
  delete n->state;
  n->state = nullptr;
  type->tp_free(self);
  Py_DECREF(type);
  Py_TRASHCAN_END
}

// "MulBackward": the op's name, as PyTorch names its nodes.
PyObject* node_name(PyObject* self, PyObject*) {
  const NodeState* state = as_node(self)->state;
  if (state != nullptr && state->native.op != NativeOp::Python) {
    return PyUnicode_FromFormat("%sBackward", native_op_name(state->native.op));
  }
  return PyUnicode_FromFormat("%sBackward", _PyType_Name(Py_TYPE(self)));
}

PyObject* node_repr(PyObject* self) {
  PyObject* name = node_name(self, nullptr);
  if (name == nullptr) return nullptr;
  PyObject* out = PyUnicode_FromFormat("<%U>", name);
  Py_DECREF(name);
  return out;
}

// A tuple with one entry per edge of the node: make(edge) returns a new reference (None where
// the edge has nothing to show), or nullptr with a Python error set.
template <typename Make>
PyObject* per_edge_tuple(PyObject* self, Make make) {
  const NodeState* state = as_node(self)->state;
  const std::size_t count = state == nullptr ? 0 : state->edges.size();
  PyObject* out = PyTuple_New(static_cast<Py_ssize_t>(count));
  if (out == nullptr) return nullptr;
  for (std::size_t i = 0; i < count; ++i) {
    PyObject* item = make(state->edges[i]);
    if (item == nullptr) {
      Py_DECREF(out);
      return nullptr;
    }
    PyTuple_SET_ITEM(out, static_cast<Py_ssize_t>(i), item);
  }
  return out;
}

// node.edges: one (target, shape, dtype) per input, None where no gradient flows.
PyObject* node_edges(PyObject* self, void*) {
  return per_edge_tuple(self, [](const Edge& edge) -> PyObject* {
    if (edge.target == nullptr) Py_RETURN_NONE;
    return Py_BuildValue("(ONN)", edge.target, shape_tuple(edge.shape), dtype_object(edge.dtype));
  });
}

// node.constants: one entry per input, (value, shape, dtype) for an input that takes no
// gradient (value: the number or small tensor, or a weak reference to a large tensor), None
// otherwise. For drawing only.
PyObject* node_constants(PyObject* self, void*) {
  return per_edge_tuple(self, [](const Edge& edge) -> PyObject* {
    if (!edge.constant) Py_RETURN_NONE;
    return Py_BuildValue("(ONN)", edge.value != nullptr ? edge.value : Py_None,
                         shape_tuple(edge.shape), dtype_object(edge.dtype));
  });
}

// ---- what a native op saved, read-only, for the reference engine and for teaching
// node.native_op: "Sigmoid" for a native op's node, None for an op defined in Python.
PyObject* node_native_op(PyObject* self, void*) {
  const NodeState* state = as_node(self)->state;
  if (state == nullptr || state->native.op == NativeOp::Python) Py_RETURN_NONE;
  return PyUnicode_FromString(native_op_name(state->native.op));
}

PyObject* scalar_object(const Scalar& s) {
  switch (s.kind) {
    case Scalar::Kind::Bool: return PyBool_FromLong(s.integer != 0);
    case Scalar::Kind::Int: return PyLong_FromLongLong(s.integer);
    case Scalar::Kind::Float: break;
  }
  return PyFloat_FromDouble(s.value);
}

// node.native_saved(): (arrays, dims, input_shape, scalar, scalar_side, has_bias), after the
// same checks as the native backward (RuntimeError when freed or changed in place since).
PyObject* node_native_saved(PyObject* self, PyObject*) {
  NodeObject* n = as_node(self);
  if (n->state == nullptr || n->state->native.op == NativeOp::Python) {
    PyErr_SetString(PyExc_TypeError, "native_saved: not a native op's node");
    return nullptr;
  }
  try {
    check_saved(n);
    const NativeSaved& saved = n->state->native;
    py::tuple arrays(saved.arrays.size());
    for (std::size_t i = 0; i < saved.arrays.size(); ++i) arrays[i] = py::cast(saved.arrays[i]);
    py::object scalar = saved.scalar_side < 0 ? py::none() : py::reinterpret_steal<py::object>(scalar_object(saved.scalar));
    return py::make_tuple(arrays, py::cast(saved.dims), py::cast(saved.input_shape), scalar, saved.scalar_side,
                          saved.has_bias)
        .release()
        .ptr();
  } catch (...) {
    set_python_error();
    return nullptr;
  }
}

PyObject* node_release_saved(PyObject* self, PyObject*) {
  release_native_saved(as_node(self));
  Py_RETURN_NONE;
}

PyMethodDef node_methods[] = {
    {"name", node_name, METH_NOARGS, "name($self, /)\n--\n\nThe node's name, e.g. 'MulBackward'."},
    {"native_saved", node_native_saved, METH_NOARGS,
     "native_saved($self, /)\n--\n\nWhat a native op saved: (arrays, dims, input_shape, scalar, scalar_side, "
     "has_bias)."},
    {"release_native_saved", node_release_saved, METH_NOARGS,
     "release_native_saved($self, /)\n--\n\nFrees what a native op saved (after a backward without retain_graph)."},
    {nullptr, nullptr, 0, nullptr},
};

int node_set_hooks(PyObject* self, PyObject* value, void*) {
  return set_checked_field<offsetof(NodeObject, hooks)>(self, value, is_list, "a list");
}
int node_set_retained(PyObject* self, PyObject* value, void*) {
  return set_checked_field<offsetof(NodeObject, retained)>(self, value, is_weakref, "a weak reference");
}

PyGetSetDef node_getset[] = {
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, nullptr, nullptr},
    {"hooks", get_field<offsetof(NodeObject, hooks)>, node_set_hooks,
     const_cast<char*>("hooks on the output's gradient"), nullptr},
    {"retained", get_field<offsetof(NodeObject, retained)>, node_set_retained,
     const_cast<char*>("a weak reference to the output after retain_grad()"), nullptr},
    {"native_op", node_native_op, nullptr,
     const_cast<char*>("the native op's name (e.g. 'Sigmoid'), or None for an op defined in Python"), nullptr},
    {"edges", node_edges, nullptr,
     const_cast<char*>("one (target, shape, dtype) per input: where its gradient goes, with the shape "
                       "and dtype it must have there; None for an input that takes no gradient"),
     nullptr},
    {"constants", node_constants, nullptr,
     const_cast<char*>("one (value, shape, dtype) per input that takes no gradient (value None when "
                       "large), None for the others: what chainrule.viz draws as constants"),
     nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyMemberDef node_members[] = {
    {"__dictoffset__", T_PYSSIZET, offsetof(NodeObject, dict), READONLY, nullptr},
    {"__weaklistoffset__", T_PYSSIZET, offsetof(NodeObject, weakrefs), READONLY, nullptr},
    {nullptr, 0, 0, 0, nullptr},
};

PyType_Slot node_slots[] = {
    {Py_tp_new, reinterpret_cast<void*>(&node_new)},
    {Py_tp_dealloc, reinterpret_cast<void*>(&node_dealloc)},
    {Py_tp_traverse, reinterpret_cast<void*>(&node_traverse)},
    {Py_tp_clear, reinterpret_cast<void*>(&node_clear)},
    {Py_tp_repr, reinterpret_cast<void*>(&node_repr)},
    {Py_tp_methods, node_methods},
    {Py_tp_getset, node_getset},
    {Py_tp_members, node_members},
    {Py_tp_doc, const_cast<char*>("C base of the graph's nodes: edges, hooks, and native ops' saved arrays")},
    {0, nullptr},
};
PyType_Spec node_spec = {"chainrule._core.Node", sizeof(NodeObject), 0,
                         Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC, node_slots};
}  // namespace

void register_node_type(py::module_& m) {
  PyObject* node = PyType_FromSpec(&node_spec);
  if (node == nullptr) throw py::error_already_set();
  node_type = reinterpret_cast<PyTypeObject*>(node);
  m.add_object("Node", py::reinterpret_steal<py::object>(node));
  Py_INCREF(node);
}

}  // namespace chainrule::python
