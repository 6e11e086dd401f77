// Batch and layer normalisation: statistics in double (two passes, mean then squared
// deviations, so a large mean does not cancel the variance away), the normalisation and its
// backward in the input's dtype. Batch norm reduces each channel over (N, *): channels split
// over the team; layer norm each row of the last `normalized_numel` elements: rows split over
// the team, the weight's and bias's gradients summed per thread and then added up.
#include <algorithm>
#include <cmath>
#include <vector>

#include "chainrule/config.h"
#include "chainrule/errors.h"
#include "chainrule/nn_ops.h"
#include "chainrule/record.h"
#include "parallel.h"

namespace chainrule {

using Ts = record::Tensors;  // a recorded op's tensor operands
namespace {

constexpr std::int64_t kNormGrain = std::int64_t{1} << 17;  // elements per thread worth waking one

// (N, C, S) sizes of a batch-norm input (N, C, *).
struct Channels {
  std::int64_t batch, channels, spatial;
};

Channels check_batch_norm(const char* op, const Tensor& input) {
  if (!is_floating(input.dtype())) fail<TypeError>(op, ": expected a float32 or float64 input, got dtype ", input.dtype());
  if (input.ndim() < 2) fail<ValueError>(op, ": expected an input (N, C) or (N, C, ...), got shape ", input.shape());
  const std::int64_t batch = input.shape()[0], channels = input.shape()[1];
  const std::int64_t spatial = batch * channels > 0 ? input.numel() / (batch * channels) : 0;
  return {batch, channels, spatial};
}

void check_per_channel(const char* op, const char* name, const Tensor* t, std::int64_t channels, DType dtype) {
  if (t == nullptr) return;
  if (t->numel() != channels || t->ndim() != 1) {
    fail<ValueError>(op, ": ", name, " of shape ", t->shape(), " does not fit ", channels, " channels");
  }
  if (t->dtype() != dtype) fail<TypeError>(op, ": ", name, " has dtype ", t->dtype(), ", the input ", dtype);
}

template <typename T>
const T* data_or_null(const Tensor& t) {
  return t.defined() ? t.data_as<T>() : nullptr;
}

Tensor contiguous_or_empty(const Tensor* t) { return t != nullptr ? t->contiguous() : Tensor(); }

}  // namespace

std::pair<Tensor, Tensor> batch_norm_statistics(const Tensor& input) {
  if (record::active()) {
    const Ts out = record::run("batch_norm_statistics", {input}, {}, [](const Ts& x) {
      auto [mean, var] = batch_norm_statistics(x[0]);
      return Ts{mean, var};
    });
    return {out[0], out[1]};
  }
  const Channels d = check_batch_norm("batch_norm", input);
  if (d.batch * d.spatial == 0) {
    fail<ValueError>("batch_norm: the batch statistics of an input of shape ", input.shape(), " need elements");
  }
  const Tensor x = input.contiguous();
  Tensor mean = Tensor::empty({d.channels}, input.dtype()), var = Tensor::empty({d.channels}, input.dtype());
  dispatch_dtype(input.dtype(), [&](auto zero) {
    using T = decltype(zero);
    if constexpr (std::is_floating_point_v<T>) {
      const int threads = std::min<std::int64_t>(threads_for(x.numel(), kNormGrain), d.channels);
      detail::parallel_for(threads, d.channels, [&](std::int64_t c) {
        double total = 0;
        for (std::int64_t n = 0; n < d.batch; ++n) {
          const T* row = x.data_as<T>() + (n * d.channels + c) * d.spatial;
          for (std::int64_t s = 0; s < d.spatial; ++s) total += row[s];
        }
        const double count = static_cast<double>(d.batch * d.spatial), m = total / count;
        double squares = 0;
        for (std::int64_t n = 0; n < d.batch; ++n) {
          const T* row = x.data_as<T>() + (n * d.channels + c) * d.spatial;
          for (std::int64_t s = 0; s < d.spatial; ++s) squares += (row[s] - m) * (row[s] - m);
        }
        mean.data_as<T>()[c] = static_cast<T>(m);
        var.data_as<T>()[c] = static_cast<T>(squares / count);
      });
    }
  });
  return {mean, var};
}

Tensor batch_norm(const Tensor& input, const Tensor& mean, const Tensor& invstd, const Tensor* weight,
                  const Tensor* bias) {
  if (record::active()) {
    return record::result("batch_norm", {input, mean, invstd, record::optional(weight), record::optional(bias)},
                          [](const Ts& x) { return batch_norm(x[0], x[1], x[2], record::optional(x[3]), record::optional(x[4])); });
  }
  const Channels d = check_batch_norm("batch_norm", input);
  check_per_channel("batch_norm", "mean", &mean, d.channels, input.dtype());
  check_per_channel("batch_norm", "invstd", &invstd, d.channels, input.dtype());
  check_per_channel("batch_norm", "weight", weight, d.channels, input.dtype());
  check_per_channel("batch_norm", "bias", bias, d.channels, input.dtype());
  const Tensor x = input.contiguous(), m = mean.contiguous(), r = invstd.contiguous();
  const Tensor w = contiguous_or_empty(weight), b = contiguous_or_empty(bias);
  Tensor out = Tensor::empty(input.shape(), input.dtype());
  dispatch_dtype(input.dtype(), [&](auto zero) {
    using T = decltype(zero);
    if constexpr (std::is_floating_point_v<T>) {
      // y = x * scale + shift with scale = invstd * weight, shift = bias - mean * scale
      std::vector<T> scale(d.channels), shift(d.channels);
      for (std::int64_t c = 0; c < d.channels; ++c) {
        scale[c] = r.data_as<T>()[c] * (w.defined() ? w.data_as<T>()[c] : T(1));
        shift[c] = (b.defined() ? b.data_as<T>()[c] : T(0)) - m.data_as<T>()[c] * scale[c];
      }
      const std::int64_t rows = d.batch * d.channels;
      const int threads = std::min<std::int64_t>(threads_for(x.numel(), kNormGrain), std::max<std::int64_t>(rows, 1));
      detail::parallel_for(threads, rows, [&](std::int64_t row) {
        const std::int64_t c = row % d.channels;
        const T* src = x.data_as<T>() + row * d.spatial;
        T* dst = out.data_as<T>() + row * d.spatial;
        for (std::int64_t s = 0; s < d.spatial; ++s) dst[s] = src[s] * scale[c] + shift[c];
      });
    }
  });
  return out;
}

std::tuple<Tensor, Tensor, Tensor> batch_norm_backward(const Tensor& grad, const Tensor& input, const Tensor& mean,
                                                       const Tensor& invstd, const Tensor* weight, bool training) {
  if (record::active()) {
    const Ts out = record::run("batch_norm_backward", {grad, input, mean, invstd, record::optional(weight)}, {},
                               [training](const Ts& x) {
                                 auto [a, b, c] = batch_norm_backward(x[0], x[1], x[2], x[3], record::optional(x[4]), training);
                                 return Ts{a, b, c};
                               });
    return {out[0], out[1], out[2]};
  }
  const Channels d = check_batch_norm("batch_norm_backward", input);
  if (grad.shape() != input.shape() || grad.dtype() != input.dtype()) {
    fail<ValueError>("batch_norm_backward: gradient of shape ", grad.shape(), " for an input of shape ", input.shape());
  }
  check_per_channel("batch_norm_backward", "mean", &mean, d.channels, input.dtype());
  check_per_channel("batch_norm_backward", "invstd", &invstd, d.channels, input.dtype());
  check_per_channel("batch_norm_backward", "weight", weight, d.channels, input.dtype());
  const Tensor g = grad.contiguous(), x = input.contiguous(), m = mean.contiguous(), r = invstd.contiguous();
  const Tensor w = contiguous_or_empty(weight);
  Tensor gx = Tensor::empty(input.shape(), input.dtype());
  Tensor sum_gxhat = Tensor::empty({d.channels}, input.dtype()), sum_g = Tensor::empty({d.channels}, input.dtype());
  dispatch_dtype(input.dtype(), [&](auto zero) {
    using T = decltype(zero);
    if constexpr (std::is_floating_point_v<T>) {
      const int threads = std::min<std::int64_t>(threads_for(x.numel(), kNormGrain), std::max<std::int64_t>(d.channels, 1));
      // Per channel: the two sums, then (training) the input's gradient
      //   gx = weight * invstd * (g - mean(g) - xhat * mean(g * xhat)),
      // or (fixed statistics) gx = weight * invstd * g.
      detail::parallel_for(threads, d.channels, [&](std::int64_t c) {
        const T mu = m.data_as<T>()[c], rs = r.data_as<T>()[c];
        double total = 0, total_xhat = 0;
        for (std::int64_t n = 0; n < d.batch; ++n) {
          const T* gr = g.data_as<T>() + (n * d.channels + c) * d.spatial;
          const T* xr = x.data_as<T>() + (n * d.channels + c) * d.spatial;
          for (std::int64_t s = 0; s < d.spatial; ++s) {
            total += gr[s];
            total_xhat += gr[s] * (xr[s] - mu) * rs;
          }
        }
        sum_g.data_as<T>()[c] = static_cast<T>(total);
        sum_gxhat.data_as<T>()[c] = static_cast<T>(total_xhat);
        const T scale = rs * (w.defined() ? w.data_as<T>()[c] : T(1));
        const double count = static_cast<double>(d.batch * d.spatial);
        const T mean_g = training ? static_cast<T>(total / count) : T(0);
        const T mean_gxhat = training ? static_cast<T>(total_xhat / count) : T(0);
        for (std::int64_t n = 0; n < d.batch; ++n) {
          const T* gr = g.data_as<T>() + (n * d.channels + c) * d.spatial;
          const T* xr = x.data_as<T>() + (n * d.channels + c) * d.spatial;
          T* out = gx.data_as<T>() + (n * d.channels + c) * d.spatial;
          for (std::int64_t s = 0; s < d.spatial; ++s) {
            out[s] = scale * (gr[s] - mean_g - (xr[s] - mu) * rs * mean_gxhat);
          }
        }
      });
    }
  });
  return {gx, sum_gxhat, sum_g};
}

std::tuple<Tensor, Tensor, Tensor> layer_norm(const Tensor& input, std::int64_t normalized_numel, const Tensor* weight,
                                              const Tensor* bias, double eps) {
  if (record::active()) {
    const Ts out = record::run("layer_norm", {input, record::optional(weight), record::optional(bias)}, {},
                               [normalized_numel, eps](const Ts& x) {
                                 auto [y, mean, invstd] = layer_norm(x[0], normalized_numel, record::optional(x[1]), record::optional(x[2]), eps);
                                 return Ts{y, mean, invstd};
                               });
    return {out[0], out[1], out[2]};
  }
  if (!is_floating(input.dtype())) fail<TypeError>("layer_norm: expected a float32 or float64 input, got dtype ", input.dtype());
  if (normalized_numel < 1 || input.numel() % normalized_numel != 0) {
    fail<ValueError>("layer_norm: an input of shape ", input.shape(), " cannot be normalised over its last ",
                     normalized_numel, " elements");
  }
  check_per_channel("layer_norm", "weight", weight, normalized_numel, input.dtype());
  check_per_channel("layer_norm", "bias", bias, normalized_numel, input.dtype());
  const std::int64_t D = normalized_numel, rows = input.numel() / D;
  const Tensor x = input.contiguous(), w = contiguous_or_empty(weight), b = contiguous_or_empty(bias);
  Tensor out = Tensor::empty(input.shape(), input.dtype());
  Tensor mean = Tensor::empty({rows}, input.dtype()), invstd = Tensor::empty({rows}, input.dtype());
  dispatch_dtype(input.dtype(), [&](auto zero) {
    using T = decltype(zero);
    if constexpr (std::is_floating_point_v<T>) {
      const T* wp = data_or_null<T>(w);
      const T* bp = data_or_null<T>(b);
      const int threads = std::min<std::int64_t>(threads_for(x.numel(), kNormGrain), std::max<std::int64_t>(rows, 1));
      detail::parallel_for(threads, rows, [&](std::int64_t row) {
        const T* src = x.data_as<T>() + row * D;
        T* dst = out.data_as<T>() + row * D;
        double total = 0;
        for (std::int64_t e = 0; e < D; ++e) total += src[e];
        const double mu = total / static_cast<double>(D);
        double squares = 0;
        for (std::int64_t e = 0; e < D; ++e) squares += (src[e] - mu) * (src[e] - mu);
        const T rs = static_cast<T>(1.0 / std::sqrt(squares / static_cast<double>(D) + eps));
        const T m = static_cast<T>(mu);
        for (std::int64_t e = 0; e < D; ++e) {
          const T xhat = (src[e] - m) * rs;
          dst[e] = (wp ? xhat * wp[e] : xhat) + (bp ? bp[e] : T(0));
        }
        mean.data_as<T>()[row] = m;
        invstd.data_as<T>()[row] = rs;
      });
    }
  });
  return {out, mean, invstd};
}

std::tuple<Tensor, Tensor, Tensor> layer_norm_backward(const Tensor& grad, const Tensor& input, const Tensor& mean,
                                                       const Tensor& invstd, const Tensor* weight) {
  if (record::active()) {
    const Ts out = record::run("layer_norm_backward", {grad, input, mean, invstd, record::optional(weight)}, {},
                               [](const Ts& x) {
                                 auto [a, b, c] = layer_norm_backward(x[0], x[1], x[2], x[3], record::optional(x[4]));
                                 return Ts{a, b, c};
                               });
    return {out[0], out[1], out[2]};
  }
  const std::int64_t rows = mean.numel();
  if (grad.shape() != input.shape() || grad.dtype() != input.dtype() || !is_floating(input.dtype()) || rows < 1 ||
      input.numel() % rows != 0 || invstd.numel() != rows) {
    fail<ValueError>("layer_norm_backward: gradient of shape ", grad.shape(), " does not fit an input of shape ",
                     input.shape(), " with ", rows, " rows of statistics");
  }
  const std::int64_t D = input.numel() / rows;
  check_per_channel("layer_norm_backward", "weight", weight, D, input.dtype());
  const Tensor g = grad.contiguous(), x = input.contiguous(), m = mean.contiguous(), r = invstd.contiguous();
  const Tensor w = contiguous_or_empty(weight);
  Tensor gx = Tensor::empty(input.shape(), input.dtype());
  Tensor gw = Tensor::empty({D}, input.dtype()), gb = Tensor::empty({D}, input.dtype());
  dispatch_dtype(input.dtype(), [&](auto zero) {
    using T = decltype(zero);
    if constexpr (std::is_floating_point_v<T>) {
      const T* wp = data_or_null<T>(w);
      const int team = std::min<std::int64_t>(threads_for(x.numel(), kNormGrain), rows);
      // Each thread's sums of g * xhat and of g over its rows: 2 D per thread.
      std::vector<T> sums(static_cast<std::size_t>(team) * 2 * D, T(0));
      const std::int64_t per_thread = (rows + team - 1) / team;
      detail::parallel_region(team, [&](int thread) {
        T* sum_gxhat = sums.data() + thread * 2 * D;
        T* sum_g = sum_gxhat + D;
        const std::int64_t end = std::min(rows, (thread + 1) * per_thread);
        for (std::int64_t row = thread * per_thread; row < end; ++row) {
          const T* gr = g.data_as<T>() + row * D;
          const T* xr = x.data_as<T>() + row * D;
          T* out = gx.data_as<T>() + row * D;
          const T mu = m.data_as<T>()[row], rs = r.data_as<T>()[row];
          // gx = invstd * (gxhat - mean(gxhat) - xhat * mean(gxhat * xhat)), gxhat = g * weight
          double a = 0, b = 0;
          for (std::int64_t e = 0; e < D; ++e) {
            const T xhat = (xr[e] - mu) * rs;
            const T gxhat = wp ? gr[e] * wp[e] : gr[e];
            a += gxhat;
            b += gxhat * xhat;
            sum_gxhat[e] += gr[e] * xhat;
            sum_g[e] += gr[e];
          }
          const T mean_a = static_cast<T>(a / static_cast<double>(D)), mean_b = static_cast<T>(b / static_cast<double>(D));
          for (std::int64_t e = 0; e < D; ++e) {
            const T xhat = (xr[e] - mu) * rs;
            const T gxhat = wp ? gr[e] * wp[e] : gr[e];
            out[e] = rs * (gxhat - mean_a - xhat * mean_b);
          }
        }
      });
      for (std::int64_t e = 0; e < D; ++e) {
        T total_gxhat = 0, total_g = 0;
        for (int t = 0; t < team; ++t) {
          total_gxhat += sums[t * 2 * D + e];
          total_g += sums[t * 2 * D + D + e];
        }
        gw.data_as<T>()[e] = total_gxhat;
        gb.data_as<T>()[e] = total_g;
      }
    }
  });
  return {gx, gw, gb};
}

}  // namespace chainrule
