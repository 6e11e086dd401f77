// 2-D convolution as GEMM over im2col columns. For one image and one group, the columns are a
// (C/g * kH * kW) x (OH * OW) matrix whose column p holds the input patch under output position
// p; the output is then weight (O/g x C/g*kH*kW) @ columns, straight into (O, OH, OW). The
// backward runs the same products transposed: the input's gradient is weight^T @ grad scattered
// back by col2im (overlapping patches add up), the weight's is grad @ columns^T summed over the
// images. A 1x1 kernel with stride 1 and no padding needs no columns: the input is the matrix.
//
// Work is split over images when there are at least as many as threads (each thread its own
// columns and, for the weight's gradient, its own sum), else each product gets the whole team.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>

#include "chainrule/config.h"
#include "chainrule/errors.h"
#include "chainrule/record.h"
#include "chainrule/nn_ops.h"
#include "gemm.h"
#include "parallel.h"
#include "vector_math.h"

namespace chainrule {

using Ts = record::Tensors;  // a recorded op's tensor operands
namespace {

// Multiply-adds per thread worth waking one (30-50 us here; a 3x3 convolution runs at about
// 50 GFLOP/s on one core, so 2^21 multiply-adds take about 80 us).
constexpr std::int64_t kConvGrain = std::int64_t{1} << 21;

// Uninitialised scratch memory, 64-byte aligned.
template <typename T>
struct ScratchBuffer {
  std::unique_ptr<T, decltype(&std::free)> data{nullptr, &std::free};
  explicit ScratchBuffer(std::int64_t count) {
    const std::size_t bytes = (static_cast<std::size_t>(std::max<std::int64_t>(count, 1)) * sizeof(T) + 63) / 64 * 64;
    data.reset(static_cast<T*>(std::aligned_alloc(64, bytes)));
    if (!data) throw std::bad_alloc();
  }
  T* get() const { return data.get(); }
};

struct Geometry {
  std::int64_t batch, channels, height, width;
  std::int64_t out_channels, kernel_h, kernel_w;
  std::int64_t out_h, out_w;
  Conv2dSettings s;
  std::int64_t group_channels() const { return channels / s.groups; }
  std::int64_t group_out() const { return out_channels / s.groups; }
  std::int64_t patch() const { return group_channels() * kernel_h * kernel_w; }  // GEMM's k
  std::int64_t positions() const { return out_h * out_w; }
  bool pointwise() const {  // 1x1, stride 1, no padding: the input plane is its own column matrix
    return kernel_h == 1 && kernel_w == 1 && s.stride_h == 1 && s.stride_w == 1 && s.padding_h == 0 &&
           s.padding_w == 0;
  }
};

Geometry check_conv(const char* op, const Shape& input, const Shape& weight, const Conv2dSettings& s) {
  if (s.stride_h < 1 || s.stride_w < 1 || s.dilation_h < 1 || s.dilation_w < 1 || s.padding_h < 0 ||
      s.padding_w < 0 || s.groups < 1) {
    fail<ValueError>(op, ": stride (", s.stride_h, ", ", s.stride_w, ") and dilation (", s.dilation_h, ", ",
                     s.dilation_w, ") must be positive, padding (", s.padding_h, ", ", s.padding_w,
                     ") non-negative and groups (", s.groups, ") positive");
  }
  if (input.size() != 4 || weight.size() != 4) {
    fail<ValueError>(op, ": expected a 4-D input (N, C, H, W) and a 4-D weight (O, C / groups, kH, kW), got "
                     "shapes ", input, " and ", weight);
  }
  Geometry g{input[0], input[1], input[2], input[3], weight[0], weight[2], weight[3], 0, 0, s};
  if (weight[1] * s.groups != g.channels || g.out_channels % s.groups != 0) {
    fail<ValueError>(op, ": input of shape ", input, " and weight of shape ", weight, " with groups=", s.groups,
                     " do not fit (expected weight.shape[1] * groups == ", g.channels,
                     " input channels and out_channels divisible by groups)");
  }
  const std::int64_t span_h = s.dilation_h * (g.kernel_h - 1) + 1, span_w = s.dilation_w * (g.kernel_w - 1) + 1;
  const std::int64_t padded_h = g.height + 2 * s.padding_h, padded_w = g.width + 2 * s.padding_w;
  if (padded_h < span_h || padded_w < span_w) {
    fail<ValueError>(op, ": the padded input (", padded_h, " x ", padded_w, ") of shape ", input,
                     " is smaller than the dilated kernel (", span_h, " x ", span_w, ") of weight shape ", weight);
  }
  g.out_h = (padded_h - span_h) / s.stride_h + 1;
  g.out_w = (padded_w - span_w) / s.stride_w + 1;
  return g;
}

void check_dtypes(const char* op, const Tensor& a, const Tensor& b, const Tensor* c = nullptr) {
  if (!is_floating(a.dtype()) || a.dtype() != b.dtype() || (c != nullptr && c->dtype() != a.dtype())) {
    fail<TypeError>(op, ": expected float32 or float64 tensors of one dtype, got ", a.dtype(), " and ", b.dtype(),
                    c != nullptr ? " and " : "", c != nullptr ? dtype_name(c->dtype()) : "");
  }
}

// The range [first, last) of output positions o whose input position o * stride + offset lies in
// [0, size).
inline void inside_range(std::int64_t offset, std::int64_t stride, std::int64_t size, std::int64_t count,
                         std::int64_t& first, std::int64_t& last) {
  first = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
  last = offset > size - 1 ? 0 : std::min(count, (size - 1 - offset) / stride + 1);
  first = std::min(first, last);
}

// columns (C/g * kH * kW rows of OH * OW) from one image's group of channels x (C/g, H, W).
template <typename T>
void im2col(const T* x, const Geometry& g, T* columns) {
  const Conv2dSettings& s = g.s;
  const std::int64_t positions = g.positions();
  for (std::int64_t c = 0; c < g.group_channels(); ++c) {
    for (std::int64_t i = 0; i < g.kernel_h; ++i) {
      for (std::int64_t j = 0; j < g.kernel_w; ++j) {
        T* row = columns + ((c * g.kernel_h + i) * g.kernel_w + j) * positions;
        const std::int64_t w_offset = j * s.dilation_w - s.padding_w;
        std::int64_t first, last;
        inside_range(w_offset, s.stride_w, g.width, g.out_w, first, last);
        for (std::int64_t oh = 0; oh < g.out_h; ++oh) {
          T* out = row + oh * g.out_w;
          const std::int64_t ih = oh * s.stride_h + i * s.dilation_h - s.padding_h;
          if (ih < 0 || ih >= g.height) {
            std::fill(out, out + g.out_w, T(0));
            continue;
          }
          const T* in = x + (c * g.height + ih) * g.width + w_offset;
          std::fill(out, out + first, T(0));
          if (s.stride_w == 1) {
            std::memcpy(out + first, in + first, static_cast<std::size_t>(last - first) * sizeof(T));
          } else {
            for (std::int64_t ow = first; ow < last; ++ow) out[ow] = in[ow * s.stride_w];
          }
          std::fill(out + last, out + g.out_w, T(0));
        }
      }
    }
  }
}

// x (C/g, H, W) += columns scattered back to where im2col read them.
template <typename T>
void col2im_add(const T* columns, const Geometry& g, T* x) {
  const Conv2dSettings& s = g.s;
  const std::int64_t positions = g.positions();
  for (std::int64_t c = 0; c < g.group_channels(); ++c) {
    for (std::int64_t i = 0; i < g.kernel_h; ++i) {
      for (std::int64_t j = 0; j < g.kernel_w; ++j) {
        const T* row = columns + ((c * g.kernel_h + i) * g.kernel_w + j) * positions;
        const std::int64_t w_offset = j * s.dilation_w - s.padding_w;
        std::int64_t first, last;
        inside_range(w_offset, s.stride_w, g.width, g.out_w, first, last);
        for (std::int64_t oh = 0; oh < g.out_h; ++oh) {
          const std::int64_t ih = oh * s.stride_h + i * s.dilation_h - s.padding_h;
          if (ih < 0 || ih >= g.height) continue;
          const T* in = row + oh * g.out_w;
          T* out = x + (c * g.height + ih) * g.width + w_offset;
          for (std::int64_t ow = first; ow < last; ++ow) out[ow * s.stride_w] += in[ow];
        }
      }
    }
  }
}

// body(image, thread, gemm_threads) for every image: images split over the team when there are
// enough of them, else one after another with each product on the whole team. Exceptions
// (packing space) are collected and rethrown after the team is done.
template <typename Body>
void for_each_image(const Geometry& g, std::int64_t work, Body&& body) {
  const int threads = threads_for(work, kConvGrain);
  const int image_threads = g.batch >= threads ? threads : 1;
  const int gemm_threads = image_threads > 1 ? 1 : threads;
  std::exception_ptr error;
  const std::int64_t per_thread = (g.batch + image_threads - 1) / image_threads;
  detail::parallel_region(image_threads, [&](int thread) {
    try {
      const std::int64_t end = std::min(g.batch, (thread + 1) * per_thread);
      for (std::int64_t n = thread * per_thread; n < end; ++n) body(n, thread, gemm_threads);
    } catch (...) {
#pragma omp critical(chainrule_conv_error)
      if (!error) error = std::current_exception();
    }
  });
  if (error) std::rethrow_exception(error);
}

int team_size(const Geometry& g, std::int64_t work) {
  const int threads = threads_for(work, kConvGrain);
  return g.batch >= threads ? threads : 1;
}

}  // namespace

Tensor conv2d(const Tensor& input, const Tensor& weight, const Tensor* bias, const Conv2dSettings& settings) {
  if (record::active()) {
    return record::result("conv2d", {input, weight, record::optional(bias)},
                          [settings](const Ts& x) { return conv2d(x[0], x[1], record::optional(x[2]), settings); });
  }
  const Geometry g = check_conv("conv2d", input.shape(), weight.shape(), settings);
  check_dtypes("conv2d", input, weight, bias);
  if (bias != nullptr && (bias->ndim() != 1 || bias->shape()[0] != g.out_channels)) {
    fail<ValueError>("conv2d: bias of shape ", bias->shape(), " does not fit a weight of shape ", weight.shape(),
                     " (expected (", g.out_channels, ",))");
  }
  const Tensor x = input.contiguous(), w = weight.contiguous();
  const Tensor b = bias != nullptr ? bias->contiguous() : Tensor();
  Tensor out = Tensor::empty({g.batch, g.out_channels, g.out_h, g.out_w}, input.dtype());
  dispatch_dtype(input.dtype(), [&](auto zero) {
    using T = decltype(zero);
    if constexpr (std::is_floating_point_v<T>) {
      const std::int64_t K = g.patch(), P = g.positions(), Og = g.group_out();
      const std::int64_t work = g.batch * g.out_channels * K * P;
      const std::int64_t column_size = g.pointwise() ? 0 : K * P;
      ScratchBuffer<T> columns(column_size * team_size(g, work));
      for_each_image(g, work, [&](std::int64_t n, int thread, int gemm_threads) {
        T* col = columns.get() + thread * column_size;
        for (std::int64_t grp = 0; grp < g.s.groups; ++grp) {
          const T* x_group = x.data_as<T>() + (n * g.channels + grp * g.group_channels()) * g.height * g.width;
          if (!g.pointwise()) im2col(x_group, g, col);
          T* y = out.data_as<T>() + (n * g.out_channels + grp * Og) * P;
          gemm::product<T>(Og, P, K, w.data_as<T>() + grp * Og * K, K, 1, g.pointwise() ? x_group : col, P, 1, y,
                           P, gemm_threads);
        }
        if (b.defined()) {
          for (std::int64_t o = 0; o < g.out_channels; ++o) {
            const T shift = b.data_as<T>()[o];
            T* y = out.data_as<T>() + (n * g.out_channels + o) * P;
            for (std::int64_t p = 0; p < P; ++p) y[p] += shift;
          }
        }
      });
    }
  });
  return out;
}

Tensor conv2d_backward_input(const Tensor& grad, const Tensor& weight, const Shape& input_shape,
                             const Conv2dSettings& settings) {
  if (record::active()) {
    return record::result("conv2d_backward_input", {grad, weight}, [input_shape, settings](const Ts& x) {
      return conv2d_backward_input(x[0], x[1], input_shape, settings);
    });
  }
  const Geometry g = check_conv("conv2d_backward_input", input_shape, weight.shape(), settings);
  check_dtypes("conv2d_backward_input", grad, weight);
  const Shape expected{g.batch, g.out_channels, g.out_h, g.out_w};
  if (grad.shape() != expected) {
    fail<ValueError>("conv2d_backward_input: gradient of shape ", grad.shape(), " for an output of shape ", expected);
  }
  const Tensor gy = grad.contiguous(), w = weight.contiguous();
  Tensor gx = Tensor::empty(input_shape, grad.dtype());
  dispatch_dtype(grad.dtype(), [&](auto zero) {
    using T = decltype(zero);
    if constexpr (std::is_floating_point_v<T>) {
      const std::int64_t K = g.patch(), P = g.positions(), Og = g.group_out();
      const std::int64_t plane = g.height * g.width;
      const std::int64_t work = g.batch * g.out_channels * K * P;
      const std::int64_t column_size = g.pointwise() ? 0 : K * P;
      ScratchBuffer<T> columns(column_size * team_size(g, work));
      for_each_image(g, work, [&](std::int64_t n, int thread, int gemm_threads) {
        T* col = columns.get() + thread * column_size;
        T* gx_image = gx.data_as<T>() + n * g.channels * plane;
        if (!g.pointwise()) std::fill(gx_image, gx_image + g.channels * plane, T(0));
        for (std::int64_t grp = 0; grp < g.s.groups; ++grp) {
          T* gx_group = gx_image + grp * g.group_channels() * plane;
          // columns (K x P) = weight_group^T (K x O/g) @ grad (O/g x P)
          gemm::product<T>(K, P, Og, w.data_as<T>() + grp * Og * K, 1, K,
                           gy.data_as<T>() + (n * g.out_channels + grp * Og) * P, P, 1,
                           g.pointwise() ? gx_group : col, P, gemm_threads);
          if (!g.pointwise()) col2im_add(col, g, gx_group);
        }
      });
    }
  });
  return gx;
}

Tensor conv2d_backward_weight(const Tensor& grad, const Tensor& input, const Shape& weight_shape,
                              const Conv2dSettings& settings) {
  if (record::active()) {
    return record::result("conv2d_backward_weight", {grad, input}, [weight_shape, settings](const Ts& x) {
      return conv2d_backward_weight(x[0], x[1], weight_shape, settings);
    });
  }
  const Geometry g = check_conv("conv2d_backward_weight", input.shape(), weight_shape, settings);
  check_dtypes("conv2d_backward_weight", grad, input);
  const Shape expected{g.batch, g.out_channels, g.out_h, g.out_w};
  if (grad.shape() != expected) {
    fail<ValueError>("conv2d_backward_weight: gradient of shape ", grad.shape(), " for an output of shape ", expected);
  }
  const Tensor gy = grad.contiguous(), x = input.contiguous();
  Tensor gw = Tensor::empty(weight_shape, grad.dtype());
  dispatch_dtype(grad.dtype(), [&](auto zero) {
    using T = decltype(zero);
    if constexpr (std::is_floating_point_v<T>) {
      const std::int64_t K = g.patch(), P = g.positions(), Og = g.group_out();
      const std::int64_t weight_size = g.out_channels * K;
      const std::int64_t work = g.batch * g.out_channels * K * P;
      const int team = team_size(g, work);
      const std::int64_t column_size = g.pointwise() ? 0 : K * P;
      // Per thread: its columns, one product's result, and its running sum over its images.
      const std::int64_t per_thread = column_size + Og * K + weight_size;
      ScratchBuffer<T> scratch(per_thread * team);
      for (int t = 0; t < team; ++t) {
        T* sum = scratch.get() + t * per_thread + column_size + Og * K;
        std::fill(sum, sum + weight_size, T(0));
      }
      for_each_image(g, work, [&](std::int64_t n, int thread, int gemm_threads) {
        T* col = scratch.get() + thread * per_thread;
        T* product = col + column_size;
        T* sum = product + Og * K;
        for (std::int64_t grp = 0; grp < g.s.groups; ++grp) {
          const T* x_group = x.data_as<T>() + (n * g.channels + grp * g.group_channels()) * g.height * g.width;
          if (!g.pointwise()) im2col(x_group, g, col);
          // product (O/g x K) = grad (O/g x P) @ columns^T (P x K)
          gemm::product<T>(Og, K, P, gy.data_as<T>() + (n * g.out_channels + grp * Og) * P, P, 1,
                           g.pointwise() ? x_group : col, 1, P, product, K, gemm_threads);
          T* target = sum + grp * Og * K;
          for (std::int64_t e = 0; e < Og * K; ++e) target[e] += product[e];
        }
      });
      T* result = gw.data_as<T>();
      std::copy(scratch.get() + column_size + Og * K, scratch.get() + column_size + Og * K + weight_size, result);
      for (int t = 1; t < team; ++t) {
        const T* sum = scratch.get() + t * per_thread + column_size + Og * K;
        for (std::int64_t e = 0; e < weight_size; ++e) result[e] += sum[e];
      }
    }
  });
  return gw;
}

Tensor conv2d_backward_bias(const Tensor& grad) {
  if (record::active()) return record::result("conv2d_backward_bias", {grad}, [](const Ts& x) { return conv2d_backward_bias(x[0]); });
  if (grad.ndim() != 4 || !is_floating(grad.dtype())) {
    fail<ValueError>("conv2d_backward_bias: expected a float gradient (N, O, H, W), got shape ", grad.shape(),
                     " and dtype ", grad.dtype());
  }
  const std::int64_t batch = grad.shape()[0], channels = grad.shape()[1];
  const std::int64_t plane = grad.shape()[2] * grad.shape()[3];
  const Tensor g = grad.contiguous();
  Tensor out = Tensor::empty({channels}, grad.dtype());
  dispatch_dtype(grad.dtype(), [&](auto zero) {
    using T = decltype(zero);
    if constexpr (std::is_floating_point_v<T>) {
      // Each channel's planes are contiguous runs: summed by the vectorised float sum (in double
      // across the images), channels split over the team.
      const int threads = static_cast<int>(std::min<std::int64_t>(threads_for(g.numel(), kReductionGrain), channels));
      detail::parallel_for(threads, channels, [&](std::int64_t o) {
        double total = 0;
        for (std::int64_t n = 0; n < batch; ++n) {
          const T* run = g.data_as<T>() + (n * channels + o) * plane;
          if constexpr (std::is_same_v<T, float>) {
            total += vector_math::functions().sum(run, plane);
          } else {
            for (std::int64_t e = 0; e < plane; ++e) total += run[e];
          }
        }
        out.data_as<T>()[o] = static_cast<T>(total);
      });
    }
  });
  return out;
}

}  // namespace chainrule
