// The ops of the core: shape and dtype checks, allocation, broadcasting, then a kernel.
// Every op takes any strided input (transposed, expanded, sliced). Results are fresh and
// contiguous, except: a name ending in an underscore writes in place, and sum_to returns its
// input (or a view of a reduction) when nothing needs summing.
#pragma once
#include <cstdint>
#include <optional>
#include <vector>

#include "chainrule/tensor.h"

namespace chainrule {

enum class BinaryOp : std::int8_t {
  Add, Sub, Mul, Div, Pow, Maximum, Minimum,
  Eq, Ne, Lt, Le, Gt, Ge,
  // backward helpers: out = a * local derivative taken from b
  SigmoidBackward,  // a * b * (1 - b), b = sigmoid's output
  TanhBackward,     // a * (1 - b * b), b = tanh's output
  ReluBackward,     // 0 where b <= 0, else a (NaN passes a), b = relu's input
};
enum class UnaryOp : std::int8_t {
  Neg, Exp, Log, Sqrt, Abs, Sigmoid, Tanh, Relu, Sin, Cos, Square, Sign,
  LogicalNot,
  Erf,  // the Gauss error function (exact GELU)
};
enum class ReduceOp : std::int8_t { Sum, Mean, Amax, Amin };

const char* binary_op_name(BinaryOp op);
const char* unary_op_name(UnaryOp op);

// The dtype an op's result has (API.md's promotion rules).
DType binary_result_dtype(BinaryOp op, DType a, DType b);
DType unary_result_dtype(UnaryOp op, DType a);

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b);
Tensor binary(BinaryOp op, const Tensor& a, const Scalar& b);
Tensor binary(BinaryOp op, const Scalar& a, const Tensor& b);
// out = op(out, b) in place; b broadcasts to out's shape and the result keeps out's dtype.
void binary_(BinaryOp op, const Tensor& out, const Tensor& b);
void binary_(BinaryOp op, const Tensor& out, const Scalar& b);

Tensor unary(UnaryOp op, const Tensor& a);
Tensor clamp(const Tensor& a, std::optional<Scalar> min, std::optional<Scalar> max);
Tensor where(const Tensor& condition, const Tensor& a, const Tensor& b);

// dst[...] = src broadcast to dst's shape and cast to dst's dtype.
void copy_(const Tensor& dst, const Tensor& src);
// copy_ into a tensor just made (clone, to, full): not a modification, so no version bump; a
// new tensor starts at version 0.
void copy_into_new(const Tensor& dst, const Tensor& src);
void fill_(const Tensor& dst, const Scalar& value);
Tensor full(const Shape& shape, const Scalar& value, DType dtype);
Tensor arange(double start, double stop, double step, DType dtype);
Tensor arange_int64(std::int64_t start, std::int64_t stop, std::int64_t step);  // exact
Tensor eye(std::int64_t n, std::int64_t m, DType dtype);

// Reductions over `dims` (empty: all dims), negative dims counting from the end.
Tensor reduce(ReduceOp op, const Tensor& a, const std::vector<std::int64_t>& dims, bool keepdim);
// Index of the largest (smallest) element along dim, or over the flattened tensor.
Tensor argmax(const Tensor& a, std::optional<std::int64_t> dim, bool keepdim);
Tensor argmin(const Tensor& a, std::optional<std::int64_t> dim, bool keepdim);
// Sums a broadcast gradient back down to `shape` (the inverse of broadcasting).
Tensor sum_to(const Tensor& a, const Shape& shape);

// out = a's slices along dim at the int64 positions in index (negative ones count from the end).
Tensor index_select(const Tensor& a, std::int64_t dim, const Tensor& index);
// out's slices along dim at index += src's slices, in order (repeated positions add up).
void index_add_(const Tensor& out, std::int64_t dim, const Tensor& index, const Tensor& src);
// Joins tensors along an existing dim; the result has their promoted dtype.
Tensor cat(const std::vector<Tensor>& tensors, std::int64_t dim);

// Fused ops (csrc/kernels/fused.cpp).
// input @ weight^T (+ bias): a Linear layer in one call.
Tensor linear(const Tensor& input, const Tensor& weight, const Tensor* bias);
// Per-sample softmax cross-entropy of logits (N, C) against int64 classes (N,), and its
// gradient with respect to the logits given the upstream per-sample gradient.
Tensor cross_entropy_loss(const Tensor& logits, const Tensor& target);
Tensor cross_entropy_backward(const Tensor& grad, const Tensor& logits, const Tensor& target);
struct AdamSettings {
  double lr, beta1, beta2, eps, weight_decay;
  bool decoupled;     // AdamW: decay the parameter, not the gradient
};
struct SgdSettings {
  double lr, momentum, dampening, weight_decay;
  bool nesterov;
};
// One SGD step of a parameter, in place, in PyTorch's order of operations. With momentum,
// `buffer` is the momentum buffer; `fresh` says it is new and takes the first direction as is.
void sgd_step_(const Tensor& param, const Tensor& grad, const Tensor* buffer, bool fresh, const SgdSettings& settings);
// One Adam (or AdamW) step of a parameter and its moment buffers, in place. `step` is the
// one-element count of steps taken (PyTorch's state["step"], a float32 tensor): the op adds
// one to it and uses the new count, so a replayed step (cr.compile) counts on by itself.
void adam_step_(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                const Tensor& step, const AdamSettings& settings);

// 1-D, 2-D and batched matmul with broadcast batch dims, as numpy.matmul.
Tensor matmul(const Tensor& a, const Tensor& b);

}  // namespace chainrule
