// The autograd objects in C: chainrule.Tensor's base (the array plus what autograd needs) and
// the graph node's base, so that recording an op and running backward take no Python code
// beyond the op's own forward and backward (and none at all for the native ops).
//
// Ownership follows DESIGN.md's rule 4: a node never holds the Tensor it produced; its edges
// own references to the nodes (or leaf Tensors) its inputs came from, and saved arrays are
// raw core arrays, so a graph is freed by reference counting alone.
#pragma once
#include <Python.h>

#include <vector>

#include "bindings.h"

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

// Built-in ops whose forward and backward are C++ (native_ops.cpp); Python is for Function
// subclasses defined in ops.py or by users.
enum class NativeOp : std::int8_t {
  Python, Add, Sub, Mul, Div, Neg, Exp, Log, Sigmoid, Tanh, Relu, Sum, Mean, MatMul, Linear,
  CrossEntropy,
};

// What a native op saves for its backward (copied out before a long kernel runs without the GIL).
struct NativeSaved {
  NativeOp op = NativeOp::Python;
  std::vector<Tensor> arrays;
  std::vector<std::int64_t> dims;  // Sum/Mean: the reduced dims (empty: all)
  Shape input_shape;               // Sum/Mean: the input's shape
  Scalar scalar;                   // Mul/Div with a Python number
  std::int8_t scalar_side = -1;    // which input (0 or 1) was that number; -1: none
  bool has_bias = false;           // Linear
};

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

bool grad_enabled();
// chainrule.autograd.function.Function: the type of native ops' nodes.
PyTypeObject* native_node_type();
// Python's operator_fallback(name, a, b): operators with operands the native path does not take.
PyObject* operator_fallback();
// Turns a C++ exception being handled into the Python exception API.md names.
void set_python_error();

void register_autograd(py::module_& m);
void register_native_ops(py::module_& m);
// Native ops' backward: one gradient per input (an undefined Tensor where none), in the output's
// shape; it touches no Python object, so it may run without the GIL.
// `needed` has bit i set when input i takes a gradient.
std::vector<Tensor> native_backward(const NativeSaved& saved, const Tensor& grad, unsigned needed);
// chainrule.Tensor's operators + - * / @ and unary -.
PyObject* tensor_add(PyObject* a, PyObject* b);
PyObject* tensor_sub(PyObject* a, PyObject* b);
PyObject* tensor_mul(PyObject* a, PyObject* b);
PyObject* tensor_div(PyObject* a, PyObject* b);
PyObject* tensor_matmul(PyObject* a, PyObject* b);
PyObject* tensor_neg(PyObject* a);
const char* native_op_name(NativeOp op);

}  // namespace chainrule::python
