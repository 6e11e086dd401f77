// The native reductions, products and loss, one unit each: forward, what it saves and backward
// side by side (see native_elementwise.cpp for the shape of a unit).
#include "native_recording.h"

namespace chainrule::python {
namespace {

// ------------------------------------------------------------------ sum and mean over dims
// sum(a, dims, keepdim), mean(...): dims a list of ints, or None or empty for all.
// Saves the dims and the input's shape. da = g put back in place (each input element went into
// its sum once), divided by the count for mean.
template <NativeOp Op>
PyObject* reduce_forward(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  const char* name = Op == NativeOp::Sum ? "sum" : "mean";
  if (!check_args(nargs, 3, name)) return nullptr;
  PyObject* a = args[0];
  const int keepdim = PyObject_IsTrue(args[2]);
  if (keepdim < 0) return nullptr;
  try {
    // Python code (a dim's __index__, the garbage collector) may run until the array is read.
    const auto dims = args[1] == Py_None ? std::vector<std::int64_t>() : py::handle(args[1]).cast<std::vector<std::int64_t>>();
    const Recording recording(Op, {a});
    const Tensor& now = operand_array(a, name);
    const bool release = releases_gil({&now});
    const Held x(now, release);
    Tensor out;
    {
      MaybeReleaseGil gil(release ? kReleaseGilElements : 0);
      out = reduce(Op == NativeOp::Sum ? ReduceOp::Sum : ReduceOp::Mean, *x, dims, keepdim != 0);
    }
    return finish(std::move(out), recording, {a}, {x.get()}, [&](NativeSaved& saved, const Tensor&) {
      saved.dims = dims;
      saved.input_shape = x->shape();
    });
  } catch (...) {
    set_python_error();
    return nullptr;
  }
}

Grads reduce_backward(const NativeSaved& saved, const Tensor& g, unsigned) {
  const Shape& shape = saved.input_shape;
  const auto ndim = static_cast<std::int64_t>(shape.size());
  Shape kept = shape;
  std::int64_t count = 1;
  for (std::int64_t d = 0; d < ndim; ++d) {
    bool reduced = saved.dims.empty();
    for (const std::int64_t dim : saved.dims) reduced = reduced || dim == d || dim + ndim == d;
    if (reduced) {
      count *= shape[static_cast<std::size_t>(d)];
      kept[static_cast<std::size_t>(d)] = 1;
    }
  }
  Tensor scaled = g;
  if (saved.op == NativeOp::Mean && count > 0) scaled = binary(BinaryOp::Div, g, Scalar::from_double(double(count)));
  return {scaled.reshape(kept).expand(shape)};
}

// ------------------------------------------------------------------ matmul: a @ b
// Saves both operands. da = g @ b^T, db = a^T @ g; a 1-D operand was a row (a) or a column (b)
// in the forward: treat it so, and drop that dim again from its gradient; batch dims are summed
// by the engine.
PyObject* matmul_forward(PyObject* a, PyObject* b) {
  if (!is_tensor(a) || !is_tensor(b)) return call_fallback("matmul", a, b);
  try {
    const Recording recording(NativeOp::MatMul, {a, b});
    const Tensor& x_now = tensor_array(a);
    const Tensor& y_now = tensor_array(b);
    const bool release = releases_gil({&x_now, &y_now});
    const Held x(x_now, release), y(y_now, release);
    Tensor out;
    {
      MaybeReleaseGil gil(release ? kReleaseGilElements : 0);
      out = matmul(*x, *y);
    }
    return finish(std::move(out), recording, {a, b}, {x.get(), y.get()},
                  [&](NativeSaved& saved, const Tensor&) { saved.arrays = {*x, *y}; });
  } catch (...) {
    set_python_error();
    return nullptr;
  }
}

PyObject* matmul_entry(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (!check_args(nargs, 2, "MatMul")) return nullptr;
  return matmul_forward(args[0], args[1]);
}

Grads matmul_backward(const NativeSaved& saved, const Tensor& g, unsigned needed) {
  const Tensor& a = saved.arrays[0];
  const Tensor& b = saved.arrays[1];
  const Tensor a2 = a.ndim() == 1 ? a.unsqueeze(0) : a;
  const Tensor b2 = b.ndim() == 1 ? b.unsqueeze(1) : b;
  Tensor g2 = g;
  if (a.ndim() == 1) g2 = g2.unsqueeze(g2.ndim() >= 1 ? -2 : 0);
  if (b.ndim() == 1) g2 = g2.unsqueeze(-1);
  Grads out(2);
  if (needed & 1u) {
    out[0] = matmul(g2, b2.transpose(-1, -2));
    if (a.ndim() == 1) out[0] = out[0].squeeze(-2);
  }
  if (needed & 2u) {
    out[1] = matmul(a2.transpose(-1, -2), g2);
    if (b.ndim() == 1) out[1] = out[1].squeeze(-1);
  }
  return out;
}

// ------------------------------------------------------------------ linear: x W^T + b
// linear(x, weight, bias or None) as one node. Saves x and W. dx = g W; dW = g^T x and
// db = column sums of g, over the rows of every leading dim.
PyObject* linear_forward(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (!check_args(nargs, 3, "linear")) return nullptr;
  PyObject *x = args[0], *w = args[1], *b = args[2];
  try {
    const Recording recording(NativeOp::Linear, {x, w, b});
    const Tensor& input_now = operand_array(x, "linear");
    const Tensor& weight_now = operand_array(w, "linear");
    const Tensor* bias_now = b == Py_None ? nullptr : &operand_array(b, "linear");
    const bool release = releases_gil({&input_now, &weight_now});
    const Held input(input_now, release), weight(weight_now, release);
    std::optional<Held> bias;
    if (bias_now != nullptr) bias.emplace(*bias_now, release);
    Tensor out;
    {
      MaybeReleaseGil gil(release ? kReleaseGilElements : 0);
      out = linear(*input, *weight, get(bias));
    }
    return finish(std::move(out), recording, {x, w, b}, {input.get(), weight.get(), get(bias)},
                  [&](NativeSaved& saved, const Tensor&) {
                    saved.arrays = {*input, *weight};
                    saved.has_bias = bias.has_value();
                  });
  } catch (...) {
    set_python_error();
    return nullptr;
  }
}

Grads linear_backward(const NativeSaved& saved, const Tensor& g, unsigned needed) {
  const Tensor& x = saved.arrays[0];
  const Tensor& weight = saved.arrays[1];
  Grads out(3);
  if (needed & 1u) out[0] = matmul(g, weight);
  // Rows counted explicitly: reshape's -1 cannot be inferred when a feature count is 0.
  const std::int64_t rows = numel_of(Shape(g.shape().begin(), g.shape().end() - 1));
  const Tensor rows_g = g.reshape({rows, g.shape().back()});
  if (needed & 2u) out[1] = matmul(rows_g.transpose(0, 1), x.reshape({rows, x.shape().back()}));
  if (saved.has_bias && (needed & 4u)) out[2] = reduce(ReduceOp::Sum, rows_g, {0}, false);
  return out;
}

// ------------------------------------------------------------------ cross_entropy(logits, target)
// Per-sample softmax cross-entropy against int64 classes. Saves logits and target.
// d loss_i / d logits_i = g_i (softmax(logits_i) - one_hot(class_i)), one fused kernel.
PyObject* cross_entropy_forward(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (!check_args(nargs, 2, "cross_entropy")) return nullptr;
  PyObject *logits = args[0], *target = args[1];
  try {
    const Recording recording(NativeOp::CrossEntropy, {logits, target});
    const Tensor& logits_now = operand_array(logits, "cross_entropy");
    const Tensor& target_now = operand_array(target, "cross_entropy");
    const bool release = releases_gil({&logits_now});
    const Held l(logits_now, release), t(target_now, release);
    Tensor out;
    {
      MaybeReleaseGil gil(release ? kReleaseGilElements : 0);
      out = cross_entropy_loss(*l, *t);
    }
    return finish(std::move(out), recording, {logits, target}, {l.get(), t.get()},
                  [&](NativeSaved& saved, const Tensor&) { saved.arrays = {*l, *t}; });
  } catch (...) {
    set_python_error();
    return nullptr;
  }
}

Grads cross_entropy_backward(const NativeSaved& saved, const Tensor& g, unsigned) {
  return {cross_entropy_backward(g, saved.arrays[0], saved.arrays[1]), Tensor()};
}

}  // namespace

PyObject* tensor_matmul(PyObject* a, PyObject* b) { return matmul_forward(a, b); }

const NativeOpDef sum_op{NativeOp::Sum, "Sum", "grad_sum", as_cfunction(&reduce_forward<NativeOp::Sum>), METH_FASTCALL,
                         "grad_sum($module, a, dims, keepdim, /)\n--\n\nsum(a, dims, keepdim), recorded", reduce_backward};
const NativeOpDef mean_op{NativeOp::Mean, "Mean", "grad_mean", as_cfunction(&reduce_forward<NativeOp::Mean>),
                          METH_FASTCALL, "grad_mean($module, a, dims, keepdim, /)\n--\n\nmean(a, dims, keepdim), recorded",
                          reduce_backward};
const NativeOpDef matmul_op{NativeOp::MatMul, "MatMul", "grad_matmul", as_cfunction(&matmul_entry), METH_FASTCALL,
                            "grad_matmul($module, a, b, /)\n--\n\na @ b, recorded", matmul_backward};
const NativeOpDef linear_op{NativeOp::Linear, "Linear", "grad_linear", as_cfunction(&linear_forward), METH_FASTCALL,
                            "grad_linear($module, input, weight, bias, /)\n--\n\nlinear(x, weight, bias or None), recorded",
                            linear_backward};
const NativeOpDef cross_entropy_op{
    NativeOp::CrossEntropy, "CrossEntropy", "grad_cross_entropy", as_cfunction(&cross_entropy_forward), METH_FASTCALL,
    "grad_cross_entropy($module, logits, target, /)\n--\n\ncross_entropy(logits, target): per-sample losses, recorded",
    cross_entropy_backward};

}  // namespace chainrule::python
