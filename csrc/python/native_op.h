// A native op: a differentiable op whose forward and backward are both C++, so that recording
// it and running its backward take no Python code. Each op is one unit (native_elementwise.cpp,
// native_reduce_matmul.cpp): its forward entry, what it saves and its backward side by side,
// described by one NativeOpDef and registered in one table keyed by the op (native_ops.cpp).
// The same ops are entries of the Python op table (python/chainrule/ops/), whose backward
// formulas the reference engine runs; the tests hold the two to the same bits.
#pragma once
#include <Python.h>

#include <vector>

#include "bindings.h"

namespace chainrule::python {

// The key of a native op; Python marks nodes of ops defined in Python (Function subclasses).
enum class NativeOp : std::int8_t {
  Python, Add, Sub, Mul, Div, Neg, Exp, Log, Sigmoid, Tanh, Relu, Sum, Mean, MatMul, Linear,
  CrossEntropy,
  Count,  // the number of keys, not an op
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

// One gradient per input (an undefined Tensor where none), in the output's shape.
using Grads = std::vector<Tensor>;

struct NativeOpDef {
  NativeOp op;
  const char* name;         // "Sigmoid": its nodes are named "SigmoidBackward"
  const char* entry;        // "grad_sigmoid": the _core function that runs its forward
  PyCFunction forward;      // that function
  int flags;                // METH_O or METH_FASTCALL
  const char* doc;          // the entry's docstring (signature line first)
  // The local chain rule: upstream gradient times local derivative, from what the forward
  // saved. `needed` has bit i set when input i takes a gradient. It touches no Python object,
  // so the engine may run it without the GIL.
  Grads (*backward)(const NativeSaved& saved, const Tensor& grad, unsigned needed);
};

// The units, defined in their own files; the table in native_ops.cpp lists them.
extern const NativeOpDef add_op, sub_op, mul_op, div_op, neg_op, exp_op, log_op, sigmoid_op, tanh_op, relu_op;
extern const NativeOpDef sum_op, mean_op, matmul_op, linear_op, cross_entropy_op;

// The definition registered for `op` (RuntimeError for NativeOp::Python).
const NativeOpDef& native_op_def(NativeOp op);
inline const char* native_op_name(NativeOp op) { return native_op_def(op).name; }

}  // namespace chainrule::python
