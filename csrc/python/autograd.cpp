// The autograd objects in C (see autograd.h): Tensor's base, the node's base, grad mode, the
// generic `apply` that records a Python op, and the backward engine.
//
// The engine is PyTorch's in miniature (DESIGN.md, rule 3): walk the graph from the roots
// without recursion and count the edges into every node; run a node once all its incoming
// gradients are summed (its backward turns the gradient of its output into gradients of its
// inputs); sum each input gradient down to the input's shape and cast it to its dtype here, in
// one place; leaves collect their total gradient into .grad.
#include "autograd.h"

#include <structmember.h>

#include <algorithm>
#include <new>
#include <unordered_map>

#include "chainrule/errors.h"
#include "chainrule/ops.h"
#include "backward_once.h"
#include "grad_checks.h"

namespace chainrule::python {

PyTypeObject* tensor_base_type = nullptr;
PyTypeObject* tensor_type = nullptr;
PyTypeObject* node_type = nullptr;

namespace {

PyObject* function_type = nullptr;  // chainrule.autograd.function.Function: native nodes' type
PyObject* no_record = nullptr;      // the ctx of a forward that records nothing
PyObject* fallback = nullptr;       // Python: operators on operands the native path does not take
PyObject* dtypes = nullptr;         // _core.DTYPES, in DType order
PyObject* forward_name = nullptr;   // interned "forward", "backward", "release"
PyObject* backward_name = nullptr;
PyObject* release_name = nullptr;

thread_local bool grad_disabled = false;  // per thread, as in PyTorch: off under no_grad

}  // namespace

bool grad_enabled() { return !grad_disabled; }

void set_python_error() {
  try {
    throw;
  } catch (py::error_already_set& e) {
    e.restore();
  } catch (const ValueError& e) {
    PyErr_SetString(PyExc_ValueError, e.what());
  } catch (const TypeError& e) {
    PyErr_SetString(PyExc_TypeError, e.what());
  } catch (const IndexError& e) {
    PyErr_SetString(PyExc_IndexError, e.what());
  } catch (const MemoryError& e) {
    PyErr_SetString(PyExc_MemoryError, e.what());
  } catch (const RuntimeError& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
  } catch (const std::bad_alloc&) {
    PyErr_NoMemory();
  } catch (const py::builtin_exception& e) {
    e.set_error();
  } catch (const std::exception& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
  } catch (...) {
    PyErr_SetString(PyExc_RuntimeError, "unknown C++ exception");
  }
}

namespace {

Tensor& array_ref(TensorObject* t) { return *std::launder(reinterpret_cast<Tensor*>(t->array_bytes)); }

void set_array(TensorObject* t, Tensor value) {
  if (t->has_array) {
    array_ref(t) = std::move(value);
  } else {
    new (t->array_bytes) Tensor(std::move(value));
    t->has_array = 1;
  }
}

void drop_array(TensorObject* t) {
  if (t->has_array) {
    array_ref(t).~Tensor();
    t->has_array = 0;
  }
}

}  // namespace

const Tensor& tensor_array(PyObject* tensor) {
  TensorObject* t = as_tensor(tensor);
  if (!t->has_array) throw TypeError("tensor has no data (its _data is not set)");
  return array_ref(t);
}

const Tensor& array_of(PyObject* data) {
  if (data == nullptr || data == Py_None) throw TypeError("expected a _core.Tensor, got None");
  return py::handle(data).cast<const Tensor&>();
}

PyObject* new_array(Tensor t) { return py::cast(std::move(t)).release().ptr(); }

PyObject* new_tensor(Tensor array, PyObject* node) {
  PyObject* obj = tensor_type->tp_alloc(tensor_type, 0);
  if (obj == nullptr) return nullptr;
  TensorObject* t = as_tensor(obj);
  set_array(t, std::move(array));
  if (node != nullptr) {
    Py_INCREF(node);
    t->grad_fn = node;
    t->requires_grad = 1;
  }
  return obj;
}

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

namespace {

// ------------------------------------------------------------------ TensorBase
PyObject* shape_tuple(const Shape& shape) {
  PyObject* out = PyTuple_New(static_cast<Py_ssize_t>(shape.size()));
  if (out == nullptr) return nullptr;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    PyTuple_SET_ITEM(out, static_cast<Py_ssize_t>(i), PyLong_FromLongLong(shape[i]));
  }
  return out;
}

PyObject* dtype_object(DType dtype) {
  PyObject* out = PyTuple_GET_ITEM(dtypes, static_cast<Py_ssize_t>(dtype));
  Py_INCREF(out);
  return out;
}

int tensor_traverse(PyObject* self, visitproc visit, void* arg) {
  TensorObject* t = as_tensor(self);
  Py_VISIT(t->grad_fn);
  Py_VISIT(t->grad);
  Py_VISIT(t->hooks);
  Py_VISIT(t->post_hooks);
  Py_VISIT(Py_TYPE(self));
  return 0;
}

int tensor_clear(PyObject* self) {
  TensorObject* t = as_tensor(self);
  Py_CLEAR(t->grad_fn);
  Py_CLEAR(t->grad);
  Py_CLEAR(t->hooks);
  Py_CLEAR(t->post_hooks);
  return 0;
}

void tensor_dealloc(PyObject* self) {
  PyTypeObject* type = Py_TYPE(self);
  PyObject_GC_UnTrack(self);
  // A long chain of results (each holding the node that holds the previous one) is freed here
  // one link at a time; the trashcan keeps that from recursing as deep as the chain.
  Py_TRASHCAN_BEGIN(self, tensor_dealloc)
  TensorObject* t = as_tensor(self);
  if (t->weakrefs != nullptr) PyObject_ClearWeakRefs(self);
  tensor_clear(self);
  Py_CLEAR(t->data);
  drop_array(t);
  type->tp_free(self);
  Py_DECREF(type);
  Py_TRASHCAN_END
}

// t._data: the _core.Tensor object, made on the first read and kept (so it is the same object
// every time); None when no array was set.
PyObject* tensor_get_data(PyObject* self, void*) {
  TensorObject* t = as_tensor(self);
  if (t->data == nullptr) {
    if (!t->has_array) Py_RETURN_NONE;
    try {
      t->data = new_array(array_ref(t));
    } catch (...) {
      set_python_error();
      return nullptr;
    }
  }
  Py_INCREF(t->data);
  return t->data;
}

int tensor_set_data(PyObject* self, PyObject* value, void*) {
  TensorObject* t = as_tensor(self);
  if (value == nullptr || value == Py_None) {
    Py_CLEAR(t->data);
    drop_array(t);
    return 0;
  }
  try {
    set_array(t, array_of(value));
  } catch (...) {
    PyErr_Format(PyExc_TypeError, "_data must be a _core.Tensor, got %s", Py_TYPE(value)->tp_name);
    return -1;
  }
  Py_INCREF(value);
  Py_XSETREF(t->data, value);
  return 0;
}

// shape, dtype, ndim and numel() read straight from the array (no _data object made).
template <PyObject* (*Read)(const Tensor&)>
PyObject* from_array(PyObject* self, void*) {
  try {
    return Read(tensor_array(self));
  } catch (...) {
    set_python_error();
    return nullptr;
  }
}

PyObject* read_shape(const Tensor& t) { return shape_tuple(t.shape()); }
PyObject* read_dtype(const Tensor& t) { return dtype_object(t.dtype()); }
PyObject* read_ndim(const Tensor& t) { return PyLong_FromLongLong(t.ndim()); }
PyObject* read_numel(const Tensor& t) { return PyLong_FromLongLong(t.numel()); }

PyObject* tensor_numel(PyObject* self, PyObject*) { return from_array<read_numel>(self, nullptr); }

// Python 3.11 has no __buffer__ for Python classes, so memoryview(t) needs this C slot.
int tensor_getbuffer(PyObject* self, Py_buffer* view, int flags) {
  PyObject* data = tensor_get_data(self, nullptr);
  if (data == nullptr) return -1;
  if (data == Py_None) {
    Py_DECREF(data);
    PyErr_SetString(PyExc_BufferError, "tensor has no data");
    return -1;
  }
  const int result = PyObject_GetBuffer(data, view, flags);  // view->obj now owns a reference to data
  Py_DECREF(data);
  return result;
}

// The object fields Python may set, each checked: the engine trusts their types.
template <std::size_t Offset>
PyObject* get_field(PyObject* self, void*) {
  PyObject* value = *reinterpret_cast<PyObject**>(reinterpret_cast<char*>(self) + Offset);
  if (value == nullptr) value = Py_None;
  Py_INCREF(value);
  return value;
}

template <std::size_t Offset>
int set_checked_field(PyObject* self, PyObject* value, bool (*accepts)(PyObject*), const char* what) {
  if (value != nullptr && value != Py_None && !accepts(value)) {
    PyErr_Format(PyExc_TypeError, "expected %s or None, got %s", what, Py_TYPE(value)->tp_name);
    return -1;
  }
  PyObject** field = reinterpret_cast<PyObject**>(reinterpret_cast<char*>(self) + Offset);
  Py_XINCREF(value);
  Py_XSETREF(*field, value);
  return 0;
}

bool is_list(PyObject* o) { return PyList_Check(o); }
bool is_weakref(PyObject* o) { return PyWeakref_CheckRef(o); }

int tensor_set_grad_fn(PyObject* self, PyObject* value, void*) {
  return set_checked_field<offsetof(TensorObject, grad_fn)>(self, value, is_node, "a graph node");
}
int tensor_set_grad(PyObject* self, PyObject* value, void*) {
  if (check_grad_assignment(self, value) < 0) return -1;
  return set_checked_field<offsetof(TensorObject, grad)>(self, value, is_tensor, "a Tensor");
}
int tensor_set_hooks(PyObject* self, PyObject* value, void*) {
  return set_checked_field<offsetof(TensorObject, hooks)>(self, value, is_list, "a list");
}
int tensor_set_post_hooks(PyObject* self, PyObject* value, void*) {
  return set_checked_field<offsetof(TensorObject, post_hooks)>(self, value, is_list, "a list");
}

PyMemberDef tensor_members[] = {
    {"_requires_grad", T_BOOL, offsetof(TensorObject, requires_grad), 0, nullptr},
    {"__weaklistoffset__", T_PYSSIZET, offsetof(TensorObject, weakrefs), READONLY, nullptr},
    {nullptr, 0, 0, 0, nullptr},
};

PyGetSetDef tensor_getset[] = {
    {"_data", tensor_get_data, tensor_set_data, const_cast<char*>("the raw array (_core.Tensor)"), nullptr},
    {"grad_fn", get_field<offsetof(TensorObject, grad_fn)>, tensor_set_grad_fn,
     const_cast<char*>("the node that produced this tensor (None for a leaf)"), nullptr},
    {"_grad", get_field<offsetof(TensorObject, grad)>, tensor_set_grad, nullptr, nullptr},
    {"_hooks", get_field<offsetof(TensorObject, hooks)>, tensor_set_hooks, nullptr, nullptr},
    {"_post_hooks", get_field<offsetof(TensorObject, post_hooks)>, tensor_set_post_hooks, nullptr, nullptr},
    {"shape", from_array<read_shape>, nullptr, const_cast<char*>("the sizes of the dims, a tuple of ints"), nullptr},
    {"dtype", from_array<read_dtype>, nullptr, const_cast<char*>("the element type"), nullptr},
    {"ndim", from_array<read_ndim>, nullptr, const_cast<char*>("the number of dims"), nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyMethodDef tensor_methods[] = {
    {"numel", tensor_numel, METH_NOARGS, "numel($self, /)\n--\n\nThe number of elements."},
    {nullptr, nullptr, 0, nullptr},
};

PyType_Slot tensor_slots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(&tensor_dealloc)},
    {Py_tp_traverse, reinterpret_cast<void*>(&tensor_traverse)},
    {Py_tp_clear, reinterpret_cast<void*>(&tensor_clear)},
    {Py_tp_members, tensor_members},
    {Py_tp_getset, tensor_getset},
    {Py_tp_methods, tensor_methods},
    {Py_bf_getbuffer, reinterpret_cast<void*>(&tensor_getbuffer)},
    {Py_nb_add, reinterpret_cast<void*>(&tensor_add)},
    {Py_nb_subtract, reinterpret_cast<void*>(&tensor_sub)},
    {Py_nb_multiply, reinterpret_cast<void*>(&tensor_mul)},
    {Py_nb_true_divide, reinterpret_cast<void*>(&tensor_div)},
    {Py_nb_matrix_multiply, reinterpret_cast<void*>(&tensor_matmul)},
    {Py_nb_negative, reinterpret_cast<void*>(&tensor_neg)},
    {Py_tp_doc, const_cast<char*>("C base of chainrule.Tensor: the array and its autograd fields")},
    {0, nullptr},
};
PyType_Spec tensor_spec = {"chainrule._core.TensorBase", sizeof(TensorObject), 0,
                           Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC, tensor_slots};

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

const char* native_names[] = {"", "Add", "Sub", "Mul", "Div", "Neg", "Exp", "Log", "Sigmoid", "Tanh",
                              "Relu", "Sum", "Mean", "MatMul", "Linear", "CrossEntropy"};

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

// node.edges: one (target, shape, dtype) per input, None where no gradient flows.
PyObject* node_edges(PyObject* self, void*) {
  const NodeState* state = as_node(self)->state;
  const std::size_t count = state == nullptr ? 0 : state->edges.size();
  PyObject* out = PyTuple_New(static_cast<Py_ssize_t>(count));
  if (out == nullptr) return nullptr;
  for (std::size_t i = 0; i < count; ++i) {
    const Edge& edge = state->edges[i];
    PyObject* item = Py_None;
    if (edge.target == nullptr) {
      Py_INCREF(Py_None);
    } else {
      item = Py_BuildValue("(ONN)", edge.target, shape_tuple(edge.shape), dtype_object(edge.dtype));
      if (item == nullptr) {
        Py_DECREF(out);
        return nullptr;
      }
    }
    PyTuple_SET_ITEM(out, static_cast<Py_ssize_t>(i), item);
  }
  return out;
}

// node.constants: one entry per input, (value, shape, dtype) for an input that takes no
// gradient (value: the number or small tensor, or a weak reference to a large tensor), None
// otherwise. For drawing only.
PyObject* node_constants(PyObject* self, void*) {
  const NodeState* state = as_node(self)->state;
  const std::size_t count = state == nullptr ? 0 : state->edges.size();
  PyObject* out = PyTuple_New(static_cast<Py_ssize_t>(count));
  if (out == nullptr) return nullptr;
  for (std::size_t i = 0; i < count; ++i) {
    const Edge& edge = state->edges[i];
    PyObject* item = Py_None;
    if (!edge.constant) {
      Py_INCREF(Py_None);
    } else {
      item = Py_BuildValue("(ONN)", edge.value != nullptr ? edge.value : Py_None, shape_tuple(edge.shape),
                           dtype_object(edge.dtype));
      if (item == nullptr) {
        Py_DECREF(out);
        return nullptr;
      }
    }
    PyTuple_SET_ITEM(out, static_cast<Py_ssize_t>(i), item);
  }
  return out;
}

PyMethodDef node_methods[] = {
    {"name", node_name, METH_NOARGS, "name($self, /)\n--\n\nThe node's name, e.g. 'MulBackward'."},
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

// ------------------------------------------------------------------ apply (Python ops)
// A Tensor around the _core.Tensor object a Python forward returned (reference stolen); it is
// kept as the new Tensor's _data.
PyObject* tensor_from_array_object(PyObject* out, PyObject* node = nullptr) {
  try {
    PyObject* result = new_tensor(array_of(out), node);
    if (result != nullptr) as_tensor(result)->data = out;  // the reference we were given
    else Py_DECREF(out);
    return result;
  } catch (...) {
    Py_DECREF(out);
    PyErr_Format(PyExc_TypeError, "apply: the op's forward must return a _core.Tensor");
    return nullptr;
  }
}

// apply(op, *args): runs op.forward(ctx, *raw args) (Tensors replaced by their arrays) and,
// when grad mode is on and a Tensor argument requires grad, records a node of type op whose
// edges lead to those arguments.
PyObject* apply(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs < 1) {
    PyErr_SetString(PyExc_TypeError, "apply: expected an op and its arguments");
    return nullptr;
  }
  PyObject* op = args[0];
  const Py_ssize_t n = nargs - 1;
  bool record = false;
  if (!grad_disabled) {
    for (Py_ssize_t i = 1; i < nargs && !record; ++i) {
      record = is_tensor(args[i]) && as_tensor(args[i])->requires_grad;
    }
  }
  PyObject* forward = PyObject_GetAttr(op, forward_name);
  if (forward == nullptr) return nullptr;
  PyObject* ctx = record ? PyObject_CallNoArgs(op) : (Py_INCREF(no_record), no_record);
  if (ctx == nullptr) {
    Py_DECREF(forward);
    return nullptr;
  }
  if (record && !is_node(ctx)) {
    PyErr_Format(PyExc_TypeError, "apply: %R is not a Function", op);
    Py_DECREF(forward);
    Py_DECREF(ctx);
    return nullptr;
  }
  // Python forwards take raw arrays: each Tensor argument's _data object (made on demand).
  std::vector<py::object> held;
  std::vector<PyObject*> call;
  try {
    held.reserve(static_cast<std::size_t>(n));
    call.resize(static_cast<std::size_t>(n) + 1);
  } catch (...) {
    set_python_error();
    Py_DECREF(forward);
    Py_DECREF(ctx);
    return nullptr;
  }
  call[0] = ctx;
  for (Py_ssize_t i = 0; i < n; ++i) {
    PyObject* a = args[i + 1];
    if (is_tensor(a)) {
      PyObject* data = tensor_get_data(a, nullptr);
      if (data == nullptr) {
        Py_DECREF(forward);
        Py_DECREF(ctx);
        return nullptr;
      }
      held.push_back(py::reinterpret_steal<py::object>(data));
      a = data;
    }
    call[static_cast<std::size_t>(i) + 1] = a;
  }
  PyObject* out = PyObject_Vectorcall(forward, call.data(), static_cast<std::size_t>(n) + 1, nullptr);
  Py_DECREF(forward);
  if (out == nullptr) {
    Py_DECREF(ctx);
    return nullptr;
  }
  if (!record) {
    Py_DECREF(ctx);
    return tensor_from_array_object(out);
  }
  NodeState& state = *as_node(ctx)->state;
  try {
    state.edges.resize(static_cast<std::size_t>(n));
    for (Py_ssize_t i = 0; i < n; ++i) set_edge(state, static_cast<std::size_t>(i), args[i + 1]);
  } catch (...) {
    set_python_error();
    Py_DECREF(out);
    Py_DECREF(ctx);
    return nullptr;
  }
  PyObject* result = tensor_from_array_object(out, ctx);
  Py_DECREF(ctx);
  return result;
}

// ------------------------------------------------------------------ the engine
// A Python Tensor around an array, outside any graph (for hooks and results).
py::object wrap(const Tensor& t) {
  PyObject* obj = new_tensor(t, nullptr);
  if (obj == nullptr) throw py::error_already_set();
  return py::reinterpret_steal<py::object>(obj);
}

// An array that nothing else references can become .grad as it is; one shared with another
// gradient of this pass (x + y hands the same array to both inputs), a stride-0 expand, or
// memory wrapped from NumPy or DLPack (a hook may return one) must be copied first: .grad
// owns its memory.
bool owns_its_storage(const Tensor& t) {
  return t.storage().use_count() == 1 && t.storage()->owns_memory() && t.is_contiguous() && t.offset() == 0 &&
         t.storage()->nbytes() == t.numel() * itemsize(t.dtype());
}

void accumulate(PyObject* leaf, Tensor grad) {
  TensorObject* t = as_tensor(leaf);
  Tensor total;
  if (is_set(t->grad)) {
    // Under the GIL throughout: backward passes in several threads may reach one leaf, and its
    // read-add-write of .grad must not interleave.
    total = binary(BinaryOp::Add, tensor_array(t->grad), grad);
  } else {
    total = owns_its_storage(grad) ? std::move(grad) : grad.clone();
  }
  PyObject* wrapped = new_tensor(std::move(total), nullptr);
  if (wrapped == nullptr) throw py::error_already_set();
  PyObject* old = t->grad;
  t->grad = wrapped;
  Py_XDECREF(old);
}

Tensor run_hooks(PyObject* hooks, Tensor grad) {
  if (!is_set(hooks)) return grad;
  // A copy: a hook may remove itself (its handle edits the list).
  py::list copy = py::reinterpret_steal<py::list>(PySequence_List(hooks));
  if (!copy) throw py::error_already_set();
  for (py::handle hook : copy) {
    py::object replaced = hook(wrap(grad));
    if (!replaced.is_none()) {
      if (!is_tensor(replaced.ptr())) {
        throw TypeError("hook: expected the hook to return a Tensor or None, got " +
                        std::string(Py_TYPE(replaced.ptr())->tp_name));
      }
      check_hook_result(hook.ptr(), grad, tensor_array(replaced.ptr()));
      grad = tensor_array(replaced.ptr());
    }
  }
  return grad;
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

// The node's backward: one gradient per edge (undefined where none).
std::vector<Tensor> call_backward(PyObject* node, const Tensor& grad) {
  NodeObject* n = as_node(node);
  if (n->state->native.op != NativeOp::Python) {
    check_saved(n);
    unsigned needed = 0;
    for (std::size_t i = 0; i < n->state->edges.size(); ++i) {
      if (n->state->edges[i].target != nullptr) needed |= 1u << i;
    }
    // The work may be far larger than the gradient (a linear layer's weight, cross-entropy's logits).
    std::int64_t work = grad.numel();
    for (const Tensor& a : n->state->native.arrays) work = std::max(work, a.numel());
    if (work < kReleaseGilElements) return native_backward(n->state->native, grad, needed);
    NativeSaved saved = n->state->native;  // another thread may release the node meanwhile
    py::gil_scoped_release release;
    return native_backward(saved, grad, needed);
  }
  py::object backward = py::reinterpret_steal<py::object>(PyObject_GetAttr((PyObject*)Py_TYPE(node), backward_name));
  if (!backward) throw py::error_already_set();
  py::object results = backward(py::handle(node), py::reinterpret_steal<py::object>(new_array(grad)));
  std::vector<Tensor> out(n->state->edges.size());
  py::tuple items = py::reinterpret_steal<py::tuple>(PySequence_Tuple(results.ptr()));
  if (!items) throw py::error_already_set();
  for (std::size_t i = 0; i < out.size() && i < items.size(); ++i) {
    PyObject* item = items[i].ptr();
    if (item == Py_None) continue;
    out[i] = is_tensor(item) ? tensor_array(item) : array_of(item);
  }
  return out;
}

void release(PyObject* node) {
  NodeObject* n = as_node(node);
  if (n->state->native.op != NativeOp::Python) {
    if (!n->state->native.arrays.empty()) {
      n->state->native.arrays.clear();
      n->state->freed = true;
    }
    return;
  }
  if (n->dict != nullptr && PyDict_GET_SIZE(n->dict) > 0) {
    PyObject* done = PyObject_CallMethodNoArgs(node, release_name);
    if (done == nullptr) throw py::error_already_set();
    Py_DECREF(done);
  }
}

Tensor add_grads(const Tensor& a, const Tensor& b) {
  MaybeReleaseGil gil(a.numel());
  return binary(BinaryOp::Add, a, b);
}

// run_backward(roots, grads, retain_graph, inputs): roots are Tensors that require grad, grads
// their upstream gradients (arrays checked by the Python caller, or None for ones). With inputs (a tuple
// of Tensors), returns their gradients instead of accumulating into .grad (autograd.grad).
py::object run_backward(const py::tuple& roots, const py::tuple& root_grads, bool retain_graph,
                        const py::object& inputs) {
  // Every node met is held for the pass: hooks run Python code that could drop references.
  std::vector<py::object> held;
  std::unordered_map<PyObject*, std::int64_t> dependencies;
  std::vector<PyObject*> stack;
  auto visit = [&](PyObject* node) {
    if (dependencies.emplace(node, 0).second) {
      held.push_back(py::reinterpret_borrow<py::object>(node));
      stack.push_back(node);
    }
  };
  std::vector<std::pair<PyObject*, Tensor>> starts;
  if (root_grads.size() != roots.size()) throw ValueError("run_backward: one gradient (or None) per root");
  for (std::size_t i = 0; i < roots.size(); ++i) {
    if (!is_tensor(roots[i].ptr()) || !as_tensor(roots[i].ptr())->requires_grad) {
      throw TypeError("run_backward: roots must be Tensors that require grad");
    }
    TensorObject* root = as_tensor(roots[i].ptr());
    PyObject* target = is_set(root->grad_fn) ? root->grad_fn : roots[i].ptr();
    const Tensor& output = tensor_array(roots[i].ptr());
    if (root_grads[i].is_none()) {  // d output / d output = 1, for a one-element output
      if (output.numel() != 1) {
        fail<RuntimeError>("backward: grad can be created implicitly only for outputs with one element; "
                           "this output has shape ", output.shape(), ", so pass gradient= of that shape");
      }
      starts.emplace_back(target, full(output.shape(), Scalar::from_int(1), output.dtype()));
    } else {
      starts.emplace_back(target, root_grads[i].cast<const Tensor&>());
    }
    if (target != roots[i].ptr()) visit(target);
  }
  // 1. dependencies: the number of edges into each node reachable from the roots, and into
  // each leaf (a leaf's gradient is final, and goes to .grad, once all of them have run).
  std::unordered_map<PyObject*, std::int64_t> leaf_edges;
  while (!stack.empty()) {
    PyObject* node = stack.back();
    stack.pop_back();
    for (const Edge& edge : as_node(node)->state->edges) {
      if (edge.target == nullptr) continue;
      if (!edge.to_node) {
        ++leaf_edges[edge.target];
        continue;
      }
      visit(edge.target);
      ++dependencies[edge.target];
    }
  }
  const BackwardClaim claim(held, retain_graph);  // before any node runs, still under the GIL

  std::unordered_map<PyObject*, std::vector<std::size_t>> captured;  // one input may be asked for twice
  std::vector<py::object> results;
  const bool capture = !inputs.is_none();
  if (capture) {
    py::tuple wanted = inputs.cast<py::tuple>();
    results.resize(wanted.size());
    for (std::size_t i = 0; i < wanted.size(); ++i) {
      if (!is_tensor(wanted[i].ptr())) throw TypeError("run_backward: inputs must be Tensors");
      TensorObject* t = as_tensor(wanted[i].ptr());
      captured[is_set(t->grad_fn) ? t->grad_fn : wanted[i].ptr()].push_back(i);
    }
  }

  // 2. run nodes once their gradient is complete.
  std::unordered_map<PyObject*, Tensor> grads;
  std::vector<std::pair<PyObject*, Tensor>> leaf_grads;  // in the order first reached
  std::unordered_map<PyObject*, std::size_t> leaf_index;
  auto add_to_leaf = [&](PyObject* leaf, Tensor grad) {
    auto [it, fresh] = leaf_index.emplace(leaf, leaf_grads.size());
    if (fresh) {
      leaf_grads.emplace_back(leaf, std::move(grad));
    } else {
      Tensor& total = leaf_grads[it->second].second;
      total = add_grads(total, grad);
    }
  };
  // A leaf's total gradient, through its hooks, into .grad (or into the results), then its
  // post-accumulate hooks. This runs as soon as the leaf's last edge has run, not after the
  // whole pass, so a hook can start work on a gradient while backward goes on (DDP starts
  // all-reducing a bucket of gradients while the layers below it are still differentiated).
  auto finish_leaf = [&](PyObject* leaf) {
    auto it = leaf_index.find(leaf);
    if (it == leaf_index.end() || !leaf_grads[it->second].second.defined()) return;
    Tensor total = run_hooks(as_tensor(leaf)->hooks, std::move(leaf_grads[it->second].second));
    leaf_grads[it->second].second = Tensor();  // finished: undefined from now on
    if (capture) {
      auto wanted = captured.find(leaf);
      if (wanted != captured.end()) {
        for (const std::size_t i : wanted->second) results[i] = wrap(total);
      }
      return;  // autograd.grad accumulates nothing, so no post-accumulate hook runs
    }
    accumulate(leaf, std::move(total));
    PyObject* post_hooks = as_tensor(leaf)->post_hooks;
    if (!is_set(post_hooks)) return;
    py::list copy = py::reinterpret_steal<py::list>(PySequence_List(post_hooks));  // hooks may remove themselves
    if (!copy) throw py::error_already_set();
    for (py::handle hook : copy) hook(py::handle(leaf));
  };
  auto add_to_node = [&](PyObject* node, Tensor grad) {
    auto [it, fresh] = grads.emplace(node, grad);
    if (!fresh) it->second = add_grads(it->second, grad);
  };
  std::vector<PyObject*> ready;
  for (auto& [target, grad] : starts) {
    if (is_node(target)) {
      add_to_node(target, grad);
      if (dependencies[target] == 0 && std::find(ready.begin(), ready.end(), target) == ready.end()) {
        ready.push_back(target);
      }
    } else {
      add_to_leaf(target, grad);
    }
  }

  while (!ready.empty()) {
    PyObject* node = ready.back();
    ready.pop_back();
    NodeObject* n = as_node(node);
    std::vector<Tensor> input_grads;
    auto found = grads.find(node);
    if (found == grads.end()) {  // nothing reached this node: its inputs get nothing either
      input_grads.resize(n->state->edges.size());
    } else {
      Tensor grad = std::move(found->second);
      grads.erase(found);
      if (is_set(n->hooks)) grad = run_hooks(n->hooks, grad);
      if (is_set(n->retained)) {
        // A strong reference while .grad is set: making it may run the garbage collector.
        py::object output = py::reinterpret_borrow<py::object>(PyWeakref_GetObject(n->retained));
        if (is_tensor(output.ptr())) accumulate(output.ptr(), grad);
      }
      if (capture) {
        auto wanted = captured.find(node);
        if (wanted != captured.end()) {
          for (const std::size_t i : wanted->second) results[i] = wrap(grad);
        }
      }
      input_grads = call_backward(node, grad);
    }
    if (!retain_graph) release(node);
    const std::vector<Edge>& edges = n->state->edges;
    for (std::size_t i = 0; i < edges.size(); ++i) {
      const Edge& edge = edges[i];
      if (edge.target == nullptr) continue;
      if (i < input_grads.size() && input_grads[i].defined()) {
        Tensor g = std::move(input_grads[i]);
        if (g.shape() != edge.shape) g = sum_to(g, edge.shape);
        if (g.dtype() != edge.dtype) g = g.to(edge.dtype);
        if (edge.to_node) {
          add_to_node(edge.target, std::move(g));
        } else {
          add_to_leaf(edge.target, std::move(g));
        }
      }
      if (edge.to_node) {
        if (--dependencies[edge.target] == 0) ready.push_back(edge.target);
      } else if (--leaf_edges[edge.target] == 0) {
        finish_leaf(edge.target);
      }
    }
  }

  // 3. the leaves not finished yet: those that are roots themselves.
  for (std::size_t i = 0; i < leaf_grads.size(); ++i) finish_leaf(leaf_grads[i].first);
  if (!capture) return py::none();
  py::tuple out(results.size());
  for (std::size_t i = 0; i < results.size(); ++i) {
    out[i] = results[i] ? results[i] : py::none();
  }
  return std::move(out);
}

// sgd_step_(params, buffers, lr, momentum, dampening, weight_decay, nesterov): one SGD step of
// every parameter that has a gradient, in one call. `buffers` (with momentum) is a list beside
// params: a None entry gets a new momentum buffer (a Tensor) for a parameter with a gradient.
void sgd_step_list(const py::list& params, const py::object& buffers, double lr, double momentum, double dampening,
                   double weight_decay, bool nesterov) {
  const SgdSettings settings{lr, momentum, dampening, weight_decay, nesterov};
  const bool with_buffers = momentum != 0;
  py::list buffer_list;
  if (with_buffers) {
    buffer_list = buffers.cast<py::list>();
    if (buffer_list.size() != params.size()) throw ValueError("sgd_step_: one buffer entry per parameter");
  }
  for (std::size_t i = 0; i < params.size(); ++i) {
    PyObject* p = params[i].ptr();
    if (!is_tensor(p)) throw TypeError("sgd_step_: parameters must be Tensors");
    TensorObject* t = as_tensor(p);
    if (!is_set(t->grad)) continue;
    if (!is_tensor(t->grad)) throw TypeError("sgd_step_: a parameter's grad is not a Tensor");
    const Tensor param = tensor_array(p);
    const Tensor grad = tensor_array(t->grad).contiguous();
    Tensor buffer;
    bool fresh = false;
    if (with_buffers) {
      py::object entry = buffer_list[i];
      fresh = entry.is_none();
      if (fresh) {
        entry = wrap(Tensor::empty(param.shape(), param.dtype()));
        buffer_list[i] = entry;
      }
      if (!is_tensor(entry.ptr())) throw TypeError("sgd_step_: momentum buffers must be Tensors");
      buffer = tensor_array(entry.ptr());
    }
    // A non-contiguous parameter is updated through a contiguous copy.
    const Tensor target = param.is_contiguous() ? param : param.clone();
    sgd_step_(target, grad, with_buffers ? &buffer : nullptr, fresh, settings);
    if (!target.shares_storage(param)) copy_(param, target);
  }
}

PyObject* is_grad_enabled(PyObject*, PyObject*) { return PyBool_FromLong(!grad_disabled); }

PyObject* set_grad_enabled(PyObject*, PyObject* flag) {
  const int on = PyObject_IsTrue(flag);
  if (on < 0) return nullptr;
  grad_disabled = !on;
  Py_RETURN_NONE;
}

PyObject* register_classes(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 4 || !PyType_Check(args[0]) || !PyType_IsSubtype((PyTypeObject*)args[0], tensor_base_type) ||
      !PyType_Check(args[1]) || !PyType_IsSubtype((PyTypeObject*)args[1], node_type)) {
    PyErr_SetString(PyExc_TypeError, "register_classes(Tensor, Function, no_record_ctx, operator_fallback)");
    return nullptr;
  }
  Py_INCREF(args[0]);
  Py_INCREF(args[1]);
  Py_INCREF(args[2]);
  Py_INCREF(args[3]);
  Py_XDECREF(fallback);
  fallback = args[3];
  Py_XDECREF((PyObject*)tensor_type);
  Py_XDECREF(function_type);
  Py_XDECREF(no_record);
  tensor_type = (PyTypeObject*)args[0];
  function_type = args[1];
  no_record = args[2];
  Py_RETURN_NONE;
}

PyMethodDef autograd_functions[] = {
    {"apply", reinterpret_cast<PyCFunction>(reinterpret_cast<void*>(&apply)), METH_FASTCALL,
     "apply($module, op, /, *args)\n--\n\napply(op, *args): op's forward on the arrays of args, recording a node when a gradient can flow."},
    {"is_grad_enabled", is_grad_enabled, METH_NOARGS, "is_grad_enabled($module, /)\n--\n\nWhether this thread records graphs."},
    {"set_grad_enabled", set_grad_enabled, METH_O, "set_grad_enabled($module, mode, /)\n--\n\nTurns graph recording on or off for this thread."},
    {"register_classes", reinterpret_cast<PyCFunction>(reinterpret_cast<void*>(&register_classes)), METH_FASTCALL,
     "register_classes($module, tensor, function, no_record, fallback, /)\n--\n\nThe Python classes results and "
     "native nodes are made of, and the Python function operators call for operands they do not take."},
    {nullptr, nullptr, 0, nullptr},
};

}  // namespace

PyObject* operator_fallback() { return fallback; }

PyTypeObject* native_node_type() { return reinterpret_cast<PyTypeObject*>(function_type); }

const char* native_op_name(NativeOp op) { return native_names[static_cast<int>(op)]; }

void register_autograd(py::module_& m) {
  dtypes = py::object(m.attr("DTYPES")).release().ptr();
  forward_name = PyUnicode_InternFromString("forward");
  backward_name = PyUnicode_InternFromString("backward");
  release_name = PyUnicode_InternFromString("release");
  PyObject* tensor_base = PyType_FromSpec(&tensor_spec);
  if (tensor_base == nullptr) throw py::error_already_set();
  tensor_base_type = reinterpret_cast<PyTypeObject*>(tensor_base);
  m.add_object("TensorBase", py::reinterpret_steal<py::object>(tensor_base));
  Py_INCREF(tensor_base);  // kept for the module's lifetime (types are never freed before exit)
  PyObject* node = PyType_FromSpec(&node_spec);
  if (node == nullptr) throw py::error_already_set();
  node_type = reinterpret_cast<PyTypeObject*>(node);
  m.add_object("Node", py::reinterpret_steal<py::object>(node));
  Py_INCREF(node);
  if (PyModule_AddFunctions(m.ptr(), autograd_functions) < 0) throw py::error_already_set();
  m.def("sgd_step_", &sgd_step_list, py::arg("params"), py::arg("buffers"), py::arg("lr"), py::arg("momentum"),
        py::arg("dampening"), py::arg("weight_decay"), py::arg("nesterov"));
  m.def("run_backward", &run_backward, py::arg("roots"), py::arg("grads"), py::arg("retain_graph"),
        py::arg("inputs") = py::none());
}

}  // namespace chainrule::python
