// The native elementwise ops, one unit each: forward (one core call, then the node recorded),
// what it saves, and its backward (the local chain rule: upstream gradient g times the local
// derivative), side by side. python/chainrule/ops/ holds the same formulas for the reference
// engine; tests/ops/test_table.py holds the two to the same bits.
#include "native_recording.h"

namespace chainrule::python {
namespace {

bool is_number(PyObject* x) { return PyFloat_Check(x) || PyLong_Check(x); }

// What a binary op keeps for its backward; `a`, `b` are nullptr where the operand was a number.
using BinarySave = void (*)(NativeSaved& saved, const Tensor* a, const Tensor* b, const Tensor& out);

// a (op) b with Tensors or Python numbers on either side, recorded; anything else (NumPy
// arrays, ...) goes to Python's operator_fallback.
PyObject* record_binary(NativeOp op, BinaryOp kind, PyObject* a, PyObject* b, BinarySave save) {
  const char* name = binary_op_name(kind);
  const bool a_tensor = is_tensor(a), b_tensor = is_tensor(b);
  if (!(a_tensor || is_number(a)) || !(b_tensor || is_number(b)) || !(a_tensor || b_tensor)) {
    return call_fallback(name, a, b);
  }
  try {
    const Recording recording(op, {a, b});
    const Tensor* x_now = a_tensor ? &tensor_array(a) : nullptr;
    const Tensor* y_now = b_tensor ? &tensor_array(b) : nullptr;
    const bool release = releases_gil({x_now, y_now});
    std::optional<Held> x, y;
    if (x_now != nullptr) x.emplace(*x_now, release);
    if (y_now != nullptr) y.emplace(*y_now, release);
    const Scalar x_scalar = a_tensor ? Scalar() : to_scalar(a, name);
    const Scalar y_scalar = b_tensor ? Scalar() : to_scalar(b, name);
    Tensor out;
    {
      MaybeReleaseGil gil(release ? kReleaseGilElements : 0);
      if (a_tensor && b_tensor) out = binary(kind, **x, **y);
      else if (a_tensor) out = binary(kind, **x, y_scalar);
      else out = binary(kind, x_scalar, **y);
    }
    return finish(std::move(out), recording, {a, b}, {get(x), get(y)}, [&](NativeSaved& saved, const Tensor& result) {
      saved.scalar_side = a_tensor ? (b_tensor ? -1 : 1) : 0;
      if (saved.scalar_side >= 0) saved.scalar = saved.scalar_side == 0 ? x_scalar : y_scalar;
      save(saved, get(x), get(y), result);
    });
  } catch (...) {
    set_python_error();
    return nullptr;
  }
}

// What a unary op keeps for its backward.
enum class Keep { Nothing, Input, Output };

PyObject* record_unary(NativeOp op, UnaryOp kind, PyObject* a, Keep keep) {
  if (!is_tensor(a)) return call_fallback(unary_op_name(kind), a, Py_None);
  try {
    const Recording recording(op, {a});
    const Tensor& now = tensor_array(a);
    const bool release = releases_gil({&now});
    const Held x(now, release);
    Tensor out;
    {
      MaybeReleaseGil gil(release ? kReleaseGilElements : 0);
      out = unary(kind, *x);
    }
    return finish(std::move(out), recording, {a}, {x.get()}, [&](NativeSaved& saved, const Tensor& result) {
      if (keep != Keep::Nothing) saved.arrays = {keep == Keep::Output ? result : *x};
    });
  } catch (...) {
    set_python_error();
    return nullptr;
  }
}

template <NativeOp Op, PyObject* (*Forward)(PyObject*, PyObject*)>
PyObject* binary_entry(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (!check_args(nargs, 2, native_op_name(Op))) return nullptr;
  return Forward(args[0], args[1]);
}

void save_nothing(NativeSaved&, const Tensor*, const Tensor*, const Tensor&) {}

// ------------------------------------------------------------------ add: a + b
// Saves nothing. da = g, db = g.
Grads add_backward(const NativeSaved&, const Tensor& g, unsigned) { return {g, g}; }

// ------------------------------------------------------------------ sub: a - b
// Saves nothing. da = g, db = -g.
Grads sub_backward(const NativeSaved&, const Tensor& g, unsigned needed) {
  return {g, (needed & 2u) ? unary(UnaryOp::Neg, g) : Tensor()};
}

// ------------------------------------------------------------------ mul: a * b
// Saves both operands (a number operand is kept as the scalar). da = g * b, db = g * a.
void mul_save(NativeSaved& saved, const Tensor* a, const Tensor* b, const Tensor&) {
  if (a != nullptr && b != nullptr) saved.arrays = {*a, *b};
}
Grads mul_backward(const NativeSaved& saved, const Tensor& g, unsigned needed) {
  if (saved.scalar_side == 1) return {binary(BinaryOp::Mul, g, saved.scalar), Tensor()};
  if (saved.scalar_side == 0) return {Tensor(), binary(BinaryOp::Mul, g, saved.scalar)};
  return {(needed & 1u) ? binary(BinaryOp::Mul, g, saved.arrays[1]) : Tensor(),
          (needed & 2u) ? binary(BinaryOp::Mul, g, saved.arrays[0]) : Tensor()};
}

// ------------------------------------------------------------------ div: a / b
// Saves b and the output (a number b is kept as the scalar). da = g / b, db = -(g / b) * out
// (= -g a / b^2).
void div_save(NativeSaved& saved, const Tensor*, const Tensor* b, const Tensor& out) {
  if (b != nullptr) saved.arrays = {*b, out};
}
Grads div_backward(const NativeSaved& saved, const Tensor& g, unsigned needed) {
  if (saved.scalar_side == 1) return {binary(BinaryOp::Div, g, saved.scalar), Tensor()};
  const Tensor ga = binary(BinaryOp::Div, g, saved.arrays[0]);
  Tensor gb;
  if (needed & 2u) gb = unary(UnaryOp::Neg, binary(BinaryOp::Mul, ga, saved.arrays[1]));
  return {(needed & 1u) ? ga : Tensor(), gb};
}

// ------------------------------------------------------------------ neg: -a
// Saves nothing. da = -g.
Grads neg_backward(const NativeSaved&, const Tensor& g, unsigned) { return {unary(UnaryOp::Neg, g)}; }

// ------------------------------------------------------------------ exp: y = e^a
// Saves y. da = g * y (e^x is its own derivative).
Grads exp_backward(const NativeSaved& saved, const Tensor& g, unsigned) {
  return {binary(BinaryOp::Mul, g, saved.arrays[0])};
}

// ------------------------------------------------------------------ log: y = log a
// Saves a. da = g / a.
Grads log_backward(const NativeSaved& saved, const Tensor& g, unsigned) {
  return {binary(BinaryOp::Div, g, saved.arrays[0])};
}

// ------------------------------------------------------------------ sigmoid: y = 1 / (1 + e^-a)
// Saves y. da = g * y * (1 - y), the lecture's g(z)(1 - g(z)), as one fused kernel.
Grads sigmoid_backward(const NativeSaved& saved, const Tensor& g, unsigned) {
  return {binary(BinaryOp::SigmoidBackward, g, saved.arrays[0])};
}

// ------------------------------------------------------------------ tanh: y = tanh a
// Saves y. da = g * (1 - y^2), one fused kernel.
Grads tanh_backward(const NativeSaved& saved, const Tensor& g, unsigned) {
  return {binary(BinaryOp::TanhBackward, g, saved.arrays[0])};
}

// ------------------------------------------------------------------ relu: y = max(a, 0)
// Saves a. da = g where a > 0, else 0, one fused kernel.
Grads relu_backward(const NativeSaved& saved, const Tensor& g, unsigned) {
  return {binary(BinaryOp::ReluBackward, g, saved.arrays[0])};
}

template <NativeOp Op, UnaryOp Kind, Keep Kept>
PyObject* unary_forward(PyObject*, PyObject* a) {
  return record_unary(Op, Kind, a, Kept);
}

}  // namespace

// Tensor's operator slots, and the binary ops' forward entries.
PyObject* tensor_add(PyObject* a, PyObject* b) { return record_binary(NativeOp::Add, BinaryOp::Add, a, b, save_nothing); }
PyObject* tensor_sub(PyObject* a, PyObject* b) { return record_binary(NativeOp::Sub, BinaryOp::Sub, a, b, save_nothing); }
PyObject* tensor_mul(PyObject* a, PyObject* b) { return record_binary(NativeOp::Mul, BinaryOp::Mul, a, b, mul_save); }
PyObject* tensor_div(PyObject* a, PyObject* b) { return record_binary(NativeOp::Div, BinaryOp::Div, a, b, div_save); }
PyObject* tensor_neg(PyObject* a) { return record_unary(NativeOp::Neg, UnaryOp::Neg, a, Keep::Nothing); }

const NativeOpDef add_op{NativeOp::Add, "Add", "grad_add", as_cfunction(&binary_entry<NativeOp::Add, tensor_add>), METH_FASTCALL,
                         "grad_add($module, a, b, /)\n--\n\na + b, recorded", add_backward};
const NativeOpDef sub_op{NativeOp::Sub, "Sub", "grad_sub", as_cfunction(&binary_entry<NativeOp::Sub, tensor_sub>), METH_FASTCALL,
                         "grad_sub($module, a, b, /)\n--\n\na - b, recorded", sub_backward};
const NativeOpDef mul_op{NativeOp::Mul, "Mul", "grad_mul", as_cfunction(&binary_entry<NativeOp::Mul, tensor_mul>), METH_FASTCALL,
                         "grad_mul($module, a, b, /)\n--\n\na * b, recorded", mul_backward};
const NativeOpDef div_op{NativeOp::Div, "Div", "grad_div", as_cfunction(&binary_entry<NativeOp::Div, tensor_div>), METH_FASTCALL,
                         "grad_div($module, a, b, /)\n--\n\na / b, recorded", div_backward};
const NativeOpDef neg_op{NativeOp::Neg, "Neg", "grad_neg",
                         as_cfunction(&unary_forward<NativeOp::Neg, UnaryOp::Neg, Keep::Nothing>), METH_O,
                         "grad_neg($module, a, /)\n--\n\n-a, recorded", neg_backward};
const NativeOpDef exp_op{NativeOp::Exp, "Exp", "grad_exp",
                         as_cfunction(&unary_forward<NativeOp::Exp, UnaryOp::Exp, Keep::Output>), METH_O,
                         "grad_exp($module, a, /)\n--\n\ne^a, recorded", exp_backward};
const NativeOpDef log_op{NativeOp::Log, "Log", "grad_log",
                         as_cfunction(&unary_forward<NativeOp::Log, UnaryOp::Log, Keep::Input>), METH_O,
                         "grad_log($module, a, /)\n--\n\nlog(a), recorded", log_backward};
const NativeOpDef sigmoid_op{NativeOp::Sigmoid, "Sigmoid", "grad_sigmoid",
                             as_cfunction(&unary_forward<NativeOp::Sigmoid, UnaryOp::Sigmoid, Keep::Output>), METH_O,
                             "grad_sigmoid($module, a, /)\n--\n\n1 / (1 + e^-a), recorded", sigmoid_backward};
const NativeOpDef tanh_op{NativeOp::Tanh, "Tanh", "grad_tanh",
                          as_cfunction(&unary_forward<NativeOp::Tanh, UnaryOp::Tanh, Keep::Output>), METH_O,
                          "grad_tanh($module, a, /)\n--\n\ntanh(a), recorded", tanh_backward};
const NativeOpDef relu_op{NativeOp::Relu, "Relu", "grad_relu",
                          as_cfunction(&unary_forward<NativeOp::Relu, UnaryOp::Relu, Keep::Input>), METH_O,
                          "grad_relu($module, a, /)\n--\n\nmax(a, 0), recorded", relu_backward};

}  // namespace chainrule::python
