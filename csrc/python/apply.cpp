// `apply`: records an op defined in Python (a Function subclass of the op table) as one graph
// node; grad mode; and the Python classes the C layer makes its objects of.
#include "autograd.h"

#include <vector>

#include "chainrule/errors.h"

namespace chainrule::python {

namespace {

PyObject* function_type = nullptr;  // chainrule.autograd.function.Function: native nodes' type
PyObject* no_record = nullptr;      // the ctx of a forward that records nothing
PyObject* fallback = nullptr;       // Python: operators on operands the native path does not take
PyObject* forward_name = nullptr;   // interned "forward"

thread_local bool grad_disabled = false;  // per thread, as in PyTorch: off under no_grad

}  // namespace

bool grad_enabled() { return !grad_disabled; }

namespace {

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

void register_apply(py::module_& m) {
  forward_name = PyUnicode_InternFromString("forward");
  if (PyModule_AddFunctions(m.ptr(), autograd_functions) < 0) throw py::error_already_set();
}

}  // namespace chainrule::python
