// Fused ops: work that users write as one call (a Linear layer, a cross-entropy loss, an Adam
// step) done in one pass, without the temporaries and graph nodes of its pieces.
#include <cmath>
#include <utility>
#include <vector>

#include "chainrule/errors.h"
#include "chainrule/record.h"
#include "chainrule/ops.h"
#include "elementwise_simd.h"
#include "parallel.h"
#include "vector_math.h"

namespace chainrule {

using Ts = record::Tensors;  // a recorded op's tensor operands
namespace {

void check_cross_entropy(const Tensor& logits, const Tensor& target, const char* op) {
  if (!is_floating(logits.dtype())) fail<TypeError>(op, ": expected float logits, got dtype ", logits.dtype());
  if (target.dtype() != DType::Int64) {
    fail<TypeError>(op, ": expected int64 class indices, got dtype ", target.dtype());
  }
  if (logits.ndim() != 2 || target.ndim() != 1 || target.shape()[0] != logits.shape()[0]) {
    fail<ValueError>(op, ": expected logits (N, C) and targets (N,), got shapes ", logits.shape(), " and ",
                     target.shape());
  }
  const std::int64_t classes = logits.shape()[1];
  const Tensor t = target.contiguous();
  const std::int64_t* labels = t.data_as<std::int64_t>();
  for (std::int64_t i = 0; i < t.numel(); ++i) {
    if (labels[i] < 0 || labels[i] >= classes) {
      fail<IndexError>(op, ": target ", labels[i], " at position ", i, " is out of range for ", classes, " classes");
    }
  }
}

// exp(x - the row's maximum) of every row of an (n, classes) matrix into `out`, and per row the
// maximum and the sum of those exps, in double: logsumexp = max + log(sum), softmax = out / sum.
// Float32 takes the vectorised exp (vector_math) over the whole matrix in one call: libm's scalar
// exp was most of a char-RNN step's loss and its backward, and one call per row cost the digits
// MLP's rows of 10 classes a padded vector each (75 ns a row, forward and backward).
// The maximum and the sum run in four interleaved chains: one chain waits out each compare's or
// add's latency for every element (160 cycles for a char-RNN row of 40, half the row's time).
template <typename T>
void shifted_exps(const T* rows, std::int64_t n, std::int64_t classes, T* out, T* tops, double* totals) {
  for (std::int64_t i = 0; i < n; ++i) {
    const T* row = rows + i * classes;
    T top4[4] = {row[0], row[0], row[0], row[0]};
    std::int64_t c = 0;
    for (; c + 4 <= classes; c += 4) {
      for (int k = 0; k < 4; ++k) top4[k] = row[c + k] > top4[k] ? row[c + k] : top4[k];
    }
    for (; c < classes; ++c) top4[0] = row[c] > top4[0] ? row[c] : top4[0];
    const T top_01 = top4[1] > top4[0] ? top4[1] : top4[0], top_23 = top4[3] > top4[2] ? top4[3] : top4[2];
    const T top = top_23 > top_01 ? top_23 : top_01;
    tops[i] = top;
    for (c = 0; c < classes; ++c) out[i * classes + c] = row[c] - top;
  }
  if constexpr (std::is_same_v<T, float>) {
    vector_math::functions().exp(out, out, n * classes);
  } else {
    for (std::int64_t e = 0; e < n * classes; ++e) out[e] = std::exp(out[e]);
  }
  for (std::int64_t i = 0; i < n; ++i) {
    const T* e = out + i * classes;
    double sums[4] = {0.0, 0.0, 0.0, 0.0};
    std::int64_t c = 0;
    for (; c + 4 <= classes; c += 4) {
      for (int k = 0; k < 4; ++k) sums[k] += static_cast<double>(e[c + k]);
    }
    for (; c < classes; ++c) sums[0] += static_cast<double>(e[c]);
    totals[i] = (sums[0] + sums[1]) + (sums[2] + sums[3]);
  }
}

}  // namespace

Tensor linear(const Tensor& input, const Tensor& weight, const Tensor* bias) {
  if (record::active()) {
    return record::result("linear", {input, weight, record::optional(bias)},
                          [](const Ts& x) { return linear(x[0], x[1], record::optional(x[2])); });
  }
  if (weight.ndim() != 2 || input.ndim() < 1 || input.shape().back() != weight.shape()[1]) {
    fail<ValueError>("linear: input of shape ", input.shape(), " and weight of shape ", weight.shape(),
                     " do not fit (expected a weight (out_features, ", input.ndim() ? input.shape().back() : 0,
                     "))");
  }
  if (bias != nullptr && (bias->ndim() != 1 || bias->shape()[0] != weight.shape()[0])) {
    fail<ValueError>("linear: bias of shape ", bias->shape(), " does not fit a weight of shape ", weight.shape(),
                     " (expected (", weight.shape()[0], ",))");
  }
  DType dtype = promote(input.dtype(), weight.dtype());
  if (bias != nullptr) dtype = promote(dtype, bias->dtype());
  Tensor out = matmul(input.to(dtype), weight.to(dtype).transpose(0, 1));
  if (bias != nullptr) binary_(BinaryOp::Add, out, bias->to(dtype));  // over the rows, in place
  return out;
}

Tensor cross_entropy_loss(const Tensor& logits, const Tensor& target) {
  if (record::active()) return record::result("cross_entropy", {logits, target}, [](const Ts& x) { return cross_entropy_loss(x[0], x[1]); });
  check_cross_entropy(logits, target, "cross_entropy");
  const std::int64_t n = logits.shape()[0], classes = logits.shape()[1];
  const Tensor x = logits.contiguous();
  const Tensor t = target.contiguous();
  Tensor loss = Tensor::empty({n}, logits.dtype());
  dispatch_dtype(logits.dtype(), [&](auto zero) {
    using T = decltype(zero);
    if constexpr (std::is_floating_point_v<T>) {
      const T* rows = x.data_as<T>();
      const std::int64_t* labels = t.data_as<std::int64_t>();
      T* out = loss.data_as<T>();
      std::vector<T> exps(static_cast<std::size_t>(n * classes)), tops(static_cast<std::size_t>(n));
      std::vector<double> totals(static_cast<std::size_t>(n));
      shifted_exps(rows, n, classes, exps.data(), tops.data(), totals.data());
      for (std::int64_t i = 0; i < n; ++i) {
        // loss = logsumexp(row) - row[label], with the max taken out so exp cannot overflow
        out[i] = static_cast<T>(std::log(totals[i]) + static_cast<double>(tops[i]) -
                                static_cast<double>(rows[i * classes + labels[i]]));
      }
    }
  });
  return loss;
}

Tensor cross_entropy_backward(const Tensor& grad, const Tensor& logits, const Tensor& target) {
  if (record::active()) {
    return record::result("cross_entropy_backward", {grad, logits, target},
                          [](const Ts& x) { return cross_entropy_backward(x[0], x[1], x[2]); });
  }
  check_cross_entropy(logits, target, "cross_entropy_backward");
  const std::int64_t n = logits.shape()[0], classes = logits.shape()[1];
  if (grad.shape() != Shape{n}) fail<ValueError>("cross_entropy_backward: grad of shape ", grad.shape(), " for ", n, " samples");
  const Tensor x = logits.contiguous();
  const Tensor t = target.contiguous();
  const Tensor g = grad.to(logits.dtype()).contiguous();
  Tensor out = Tensor::empty(logits.shape(), logits.dtype());
  dispatch_dtype(logits.dtype(), [&](auto zero) {
    using T = decltype(zero);
    if constexpr (std::is_floating_point_v<T>) {
      const T* rows = x.data_as<T>();
      const std::int64_t* labels = t.data_as<std::int64_t>();
      const T* upstream = g.data_as<T>();
      T* result = out.data_as<T>();
      std::vector<T> tops(static_cast<std::size_t>(n));
      std::vector<double> totals(static_cast<std::size_t>(n));
      shifted_exps(rows, n, classes, result, tops.data(), totals.data());  // the result holds the exps first
      for (std::int64_t i = 0; i < n; ++i) {
        // d loss_i / d row = softmax(row) - one_hot(label)
        T* d = result + i * classes;
        const double scale = 1.0 / totals[i];  // one division per row, not per class
        for (std::int64_t c = 0; c < classes; ++c) {
          const double p = static_cast<double>(d[c]) * scale;
          d[c] = static_cast<T>(upstream[i] * (p - (c == labels[i] ? 1.0 : 0.0)));
        }
      }
    }
  });
  return out;
}

void sgd_step_(const Tensor& param, const Tensor& grad, const Tensor* buffer, bool fresh, const SgdSettings& s) {
  if (record::active()) {  // writes the parameter and the momentum buffer
    record::run("sgd_step_", {param, grad, record::optional(buffer)}, {0, 2}, [fresh, s](const Ts& x) {
      sgd_step_(x[0], x[1], record::optional(x[2]), fresh, s);
      return Ts{};
    });
    return;
  }
  for (const Tensor* t : {&grad, buffer}) {
    if (t != nullptr && (t->shape() != param.shape() || t->dtype() != param.dtype() || !t->is_contiguous())) {
      fail<ValueError>("sgd_step_: gradient or buffer of shape ", t->shape(), " and dtype ", t->dtype(),
                       " does not match the contiguous parameter of shape ", param.shape());
    }
  }
  if (!param.is_contiguous() || !is_floating(param.dtype())) {
    fail<ValueError>("sgd_step_: expected a contiguous float parameter, got shape ", param.shape(), " dtype ",
                     param.dtype());
  }
  if (s.momentum != 0 && buffer == nullptr) fail<ValueError>("sgd_step_: momentum needs a buffer");
  dispatch_dtype(param.dtype(), [&](auto zero) {
    using T = decltype(zero);
    if constexpr (std::is_floating_point_v<T>) {
      // PyTorch's single-tensor SGD: d = g + wd p; b = momentum b + (1 - dampening) d (b = d the
      // first time); d = d + momentum b (nesterov) or b; p = p - lr d.
      T* p = param.data_as<T>();
      const T* g = grad.data_as<T>();
      T* b = buffer != nullptr ? buffer->data_as<T>() : nullptr;
      const T lr = static_cast<T>(s.lr), wd = static_cast<T>(s.weight_decay);
      const T momentum = static_cast<T>(s.momentum), keep = static_cast<T>(1.0 - s.dampening);
      const std::int64_t n = param.numel();
      for (std::int64_t i = 0; i < n; ++i) {
        T d = g[i];
        if (s.weight_decay != 0) d = d + wd * p[i];
        if (s.momentum != 0) {
          b[i] = fresh ? d : b[i] * momentum + keep * d;
          d = s.nesterov ? d + momentum * b[i] : b[i];
        }
        p[i] = p[i] - lr * d;
      }
    }
  });
  param.bump_version();
  if (buffer != nullptr) buffer->bump_version();
}

void adam_step_(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                const Tensor& step, const AdamSettings& s) {
  if (record::active()) {  // writes the parameter, both moments and the step count
    record::run("adam_step_", {param, grad, exp_avg, exp_avg_sq, step}, {0, 2, 3, 4}, [s](const Ts& x) {
      adam_step_(x[0], x[1], x[2], x[3], x[4], s);
      return Ts{};
    });
    return;
  }
  if (step.numel() != 1 || !is_floating(step.dtype())) {
    fail<ValueError>("adam_step_: expected a one-element float step count, got shape ", step.shape(), " dtype ",
                     step.dtype());
  }
  for (const Tensor* t : {&grad, &exp_avg, &exp_avg_sq}) {
    if (t->shape() != param.shape() || t->dtype() != param.dtype() || !t->is_contiguous()) {
      fail<ValueError>("adam_step_: state of shape ", t->shape(), " and dtype ", t->dtype(),
                       " does not match the contiguous parameter of shape ", param.shape());
    }
  }
  if (!param.is_contiguous() || !is_floating(param.dtype())) {
    fail<ValueError>("adam_step_: expected a contiguous float parameter, got shape ", param.shape(), " dtype ",
                     param.dtype());
  }
  double count = 0;
  dispatch_dtype(step.dtype(), [&](auto zero) {
    using T = decltype(zero);
    if constexpr (std::is_floating_point_v<T>) {
      T& value = *step.data_as<T>();
      value = value + T(1);
      count = static_cast<double>(value);
    }
  });
  step.bump_version();
  dispatch_dtype(param.dtype(), [&](auto zero) {
    using T = decltype(zero);
    if constexpr (std::is_floating_point_v<T>) {
      // PyTorch's single-tensor Adam, in its order of operations (elementwise_simd.inc's
      // adam_loop, compiled per ISA), over chunks of the elements on the team when there are many.
      // Scalars are formed in double and rounded once, as PyTorch's Python-side arithmetic does.
      const elementwise_simd::AdamConstants<T> c{
          static_cast<T>(1.0 - s.beta1), static_cast<T>(s.beta2), static_cast<T>(1.0 - s.beta2),
          static_cast<T>(s.eps), static_cast<T>(s.weight_decay),
          static_cast<T>(s.lr / (1.0 - std::pow(s.beta1, count))),
          static_cast<T>(std::sqrt(1.0 - std::pow(s.beta2, count))),
          static_cast<T>(1.0 - s.lr * s.weight_decay), s.weight_decay != 0, s.decoupled};
      T* p = param.data_as<T>();
      const T* g = grad.data_as<T>();
      T* m = exp_avg.data_as<T>();
      T* v = exp_avg_sq.data_as<T>();
      const elementwise_simd::AdamFn<T> update = elementwise_simd::adam<T>();
      const std::int64_t n = param.numel();
      // an element costs a square root, two divisions and seven other operations: a quarter of
      // an add's grain
      detail::parallel_chunks(threads_for(n, kElementwiseGrain / 4), n, 64, [&](std::int64_t begin, std::int64_t end) {
        update(p + begin, g + begin, m + begin, v + begin, end - begin, c);
      });
    }
  });
  param.bump_version();
  exp_avg.bump_version();
  exp_avg_sq.bump_version();
}

}  // namespace chainrule
