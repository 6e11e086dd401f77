// The graph's types in C: chainrule.Tensor's base (the array plus what autograd needs) and the
// graph node's base, so that recording an op and running backward take no Python code beyond
// the op's own forward and backward (and none at all for the native ops). Their Python types
// are in tensor_type.cpp and node_type.cpp; `apply` (apply.cpp) records Python ops, the native
// ops record themselves (native_*.cpp), and engine.cpp runs backward over what both recorded.
//
// Ownership follows DESIGN.md's rule 4: a node never holds the Tensor it produced; its edges
// own references to the nodes (or leaf Tensors) its inputs came from, and saved arrays are
// raw core arrays, so a graph is freed by reference counting alone.
#pragma once
#include <Python.h>

#include <vector>

#include "bindings.h"
#include "native_op.h"

namespace chainrule::python {

// chainrule.Tensor's C base. Python reads the fields as _data, grad_fn, _requires_grad, _grad
// and _hooks (descriptors), so the Python layer keeps its spelling. The array itself is a C++
// value here; the _core.Tensor object Python sees as _data is made on its first read (native
// ops never make one).
struct TensorObject {
  PyObject_HEAD
  PyObject* data;     // the _core.Tensor object for Python code, once asked for; NULL before
  PyObject* grad_fn;  // the node that produced it (NULL or None for a leaf)
  PyObject* grad;     // a chainrule.Tensor, NULL or None
  PyObject* hooks;    // list of callables, NULL or None
  PyObject* post_hooks;  // register_post_accumulate_grad_hook on a leaf: list, NULL or None
  PyObject* weakrefs;
  char requires_grad;
  char has_array;     // array_bytes holds a constructed Tensor
  alignas(Tensor) unsigned char array_bytes[sizeof(Tensor)];
};

// Where an input's gradient goes: its node, or the leaf Tensor itself; and the shape and dtype
// the gradient must have there (the engine sums and casts to them, in one place).
// An input that takes no gradient (X, Y, the 1 of 1 - h) is remembered only for drawing the
// graph (chainrule.viz): its shape and dtype, and the object itself when it is a Python number
// or a tensor of at most kConstantValues elements; a larger tensor only by a weak reference, so
// that a graph never keeps a batch alive.
struct Edge {
  PyObject* target = nullptr;  // owned; nullptr: this input takes no gradient
  Shape shape;
  DType dtype = DType::Float32;
  bool to_node = false;
  bool constant = false;         // target == nullptr and the input was a tensor or a number
  PyObject* value = nullptr;     // owned: the constant, or a weak reference to a large one
};
constexpr std::int64_t kConstantValues = 64;

// What a node keeps beyond its Python attributes.
struct NodeState {
  std::vector<Edge> edges;
  NativeSaved native;
  std::vector<std::int64_t> versions;  // of native.arrays when saved
  bool freed = false;
  bool claimed = false;  // a backward without retain_graph is running through it (backward_once.h)
};

// chainrule.autograd.function.Function's C base.
struct NodeObject {
  PyObject_HEAD
  PyObject* dict;      // ctx attributes of Python ops
  PyObject* hooks;     // register_hook on the output: list or NULL
  PyObject* retained;  // weakref to the output after retain_grad(), or NULL
  PyObject* weakrefs;
  NodeState* state;
};

extern PyTypeObject* tensor_base_type;  // _core.TensorBase
extern PyTypeObject* tensor_type;       // chainrule.Tensor, registered at import
extern PyTypeObject* node_type;         // _core.Node

inline bool is_tensor(PyObject* o) { return PyObject_TypeCheck(o, tensor_base_type); }
inline bool is_node(PyObject* o) { return PyObject_TypeCheck(o, node_type); }
inline TensorObject* as_tensor(PyObject* o) { return reinterpret_cast<TensorObject*>(o); }
inline NodeObject* as_node(PyObject* o) { return reinterpret_cast<NodeObject*>(o); }
inline bool is_set(PyObject* o) { return o != nullptr && o != Py_None; }

// The object fields Python may set, each checked: the engine trusts their types.
template <std::size_t Offset>
inline PyObject* get_field(PyObject* self, void*) {
  PyObject* value = *reinterpret_cast<PyObject**>(reinterpret_cast<char*>(self) + Offset);
  if (value == nullptr) value = Py_None;
  Py_INCREF(value);
  return value;
}

template <std::size_t Offset>
inline int set_checked_field(PyObject* self, PyObject* value, bool (*accepts)(PyObject*), const char* what) {
  if (value != nullptr && value != Py_None && !accepts(value)) {
    PyErr_Format(PyExc_TypeError, "expected %s or None, got %s", what, Py_TYPE(value)->tp_name);
    return -1;
  }
  PyObject** field = reinterpret_cast<PyObject**>(reinterpret_cast<char*>(self) + Offset);
  Py_XINCREF(value);
  Py_XSETREF(*field, value);
  return 0;
}

inline bool is_list(PyObject* o) { return PyList_Check(o); }
inline bool is_weakref(PyObject* o) { return PyWeakref_CheckRef(o); }

// The array of a chainrule.Tensor; TypeError when it has none yet.
const Tensor& tensor_array(PyObject* tensor);
// The core array inside a _core.Tensor object (TypeError for anything else).
const Tensor& array_of(PyObject* data);
// A new _core.Tensor object holding `t`.
PyObject* new_array(Tensor t);
// A new chainrule.Tensor holding `t`, made by `node` (borrowed; nullptr for no graph).
PyObject* new_tensor(Tensor t, PyObject* node);
// A new node of type `type` (Node or a subclass).
PyObject* new_node(PyTypeObject* type, NativeOp op);
// Sets edges[i] from the i-th argument when it is a Tensor that requires grad; `array` is the
// array the op used (nullptr: read it from the Tensor).
// number_operand: a Python number in `arg` is an operand (a native op's 2 in x * 2), not a
// dim or an option.
void set_edge(NodeState& state, std::size_t i, PyObject* arg, const Tensor* array = nullptr,
              bool number_operand = false);

// Grad mode: per thread, as in PyTorch (apply.cpp).
bool grad_enabled();
// chainrule.autograd.function.Function: the type of native ops' nodes (apply.cpp).
PyTypeObject* native_node_type();
// Python's operator_fallback(name, a, b): operators with operands the native path does not take.
PyObject* operator_fallback();
// _core.DTYPES[dtype], a new reference (tensor_type.cpp).
PyObject* dtype_object(DType dtype);
PyObject* shape_tuple(const Shape& shape);
// A new chainrule.Tensor around an array, outside any graph (for hooks and results).
py::object wrap(const Tensor& t);
// t._data of a chainrule.Tensor: its _core.Tensor object, made on the first read.
PyObject* tensor_get_data(PyObject* self, void*);
// The node's saved arrays after checking that they were not freed or changed in place since
// (RuntimeError naming the op and the versions otherwise) (node_type.cpp).
void check_saved(NodeObject* node);
// Frees a native op's saved arrays (a later backward through it raises).
void release_native_saved(NodeObject* node);

// The Python exception for a chainrule:: error (true), or false for any other exception.
bool set_core_error(const std::exception_ptr& error);
// Turns the C++ exception being handled into the Python exception API.md names (errors.cpp).
void set_python_error();

// Each concern registers its part of _core (module.cpp calls them in this order).
void register_tensor_type(py::module_& m);
void register_node_type(py::module_& m);
void register_apply(py::module_& m);
void register_engine(py::module_& m);
void register_native_ops(py::module_& m);
void register_optimizer_steps(py::module_& m);
namespace compiling {
void register_compile(py::module_& m);  // cr.compile's recording and programs (compile.cpp)
}
// chainrule.Tensor's operators + - * / @ and unary -: the native ops' forward entries.
PyObject* tensor_add(PyObject* a, PyObject* b);
PyObject* tensor_sub(PyObject* a, PyObject* b);
PyObject* tensor_mul(PyObject* a, PyObject* b);
PyObject* tensor_div(PyObject* a, PyObject* b);
PyObject* tensor_matmul(PyObject* a, PyObject* b);
PyObject* tensor_neg(PyObject* a);

}  // namespace chainrule::python
