// Max and average pooling over the last two dims of (N, C, H, W) or (C, H, W): every plane is
// pooled on its own, planes split over the team when the work is large. Window positions follow
// PyTorch: output size floor((H + 2p - d(k - 1) - 1) / s) + 1 (ceil with ceil_mode, less the
// last window when it would start in the right padding).
#include <algorithm>
#include <cmath>
#include <limits>

#include "chainrule/config.h"
#include "chainrule/errors.h"
#include "chainrule/record.h"
#include "chainrule/nn_ops.h"
#include "parallel.h"

namespace chainrule {

using Ts = record::Tensors;  // a recorded op's tensor operands
namespace {

// Elements read per thread worth waking one.
constexpr std::int64_t kPoolGrain = std::int64_t{1} << 17;

struct PoolGeometry {
  std::int64_t planes, height, width, out_h, out_w;
  Shape out_shape;
};

std::int64_t pooled_size(std::int64_t size, std::int64_t kernel, std::int64_t stride, std::int64_t padding,
                         std::int64_t dilation, bool ceil_mode) {
  const std::int64_t span = dilation * (kernel - 1) + 1;
  const std::int64_t room = size + 2 * padding - span;
  if (room < 0) return 0;  // the window does not fit (C++ division would round -1 / s up to 0)
  std::int64_t out = (ceil_mode ? (room + stride - 1) / stride : room / stride) + 1;
  // the last window must start inside the input or the left padding
  if (ceil_mode && (out - 1) * stride >= size + padding) --out;
  return out;
}

PoolGeometry check_pool(const char* op, const Shape& shape, const Pool2dSettings& s) {
  if (shape.size() != 3 && shape.size() != 4) {
    fail<ValueError>(op, ": expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, got shape ", shape);
  }
  if (s.kernel_h < 1 || s.kernel_w < 1 || s.stride_h < 1 || s.stride_w < 1 || s.dilation_h < 1 ||
      s.dilation_w < 1 || s.padding_h < 0 || s.padding_w < 0) {
    fail<ValueError>(op, ": kernel_size (", s.kernel_h, ", ", s.kernel_w, "), stride (", s.stride_h, ", ",
                     s.stride_w, ") and dilation (", s.dilation_h, ", ", s.dilation_w,
                     ") must be positive and padding (", s.padding_h, ", ", s.padding_w, ") non-negative");
  }
  if (s.padding_h > s.kernel_h / 2 || s.padding_w > s.kernel_w / 2) {
    fail<ValueError>(op, ": padding (", s.padding_h, ", ", s.padding_w, ") must be at most half of kernel_size (",
                     s.kernel_h, ", ", s.kernel_w, ")");
  }
  const std::int64_t rank = static_cast<std::int64_t>(shape.size());
  PoolGeometry g;
  g.height = shape[rank - 2];
  g.width = shape[rank - 1];
  g.planes = numel_of(shape) / std::max<std::int64_t>(1, g.height * g.width);
  g.out_h = pooled_size(g.height, s.kernel_h, s.stride_h, s.padding_h, s.dilation_h, s.ceil_mode);
  g.out_w = pooled_size(g.width, s.kernel_w, s.stride_w, s.padding_w, s.dilation_w, s.ceil_mode);
  if (g.out_h < 1 || g.out_w < 1) {
    fail<ValueError>(op, ": input of shape ", shape, " is too small for kernel_size (", s.kernel_h, ", ", s.kernel_w,
                     ") with padding (", s.padding_h, ", ", s.padding_w, ") and dilation (", s.dilation_h, ", ",
                     s.dilation_w, "): the output would be ", g.out_h, " x ", g.out_w);
  }
  g.out_shape = shape;
  g.out_shape[rank - 2] = g.out_h;
  g.out_shape[rank - 1] = g.out_w;
  return g;
}

void check_float(const char* op, const Tensor& t) {
  if (!is_floating(t.dtype())) fail<TypeError>(op, ": expected a float32 or float64 input, got dtype ", t.dtype());
}

template <typename Body>
void for_each_plane(std::int64_t planes, std::int64_t work, Body&& body) {
  const int threads = static_cast<int>(std::min<std::int64_t>(threads_for(work, kPoolGrain), planes));
  detail::parallel_for(threads, planes, body);
}

// The average window of output (oh, ow): its clipped bounds and its divisor.
struct AvgWindow {
  std::int64_t h0, h1, w0, w1, divisor;
};

AvgWindow avg_window(const PoolGeometry& g, const Pool2dSettings& s, std::int64_t oh, std::int64_t ow) {
  std::int64_t h0 = oh * s.stride_h - s.padding_h, w0 = ow * s.stride_w - s.padding_w;
  std::int64_t h1 = std::min(h0 + s.kernel_h, g.height + s.padding_h);
  std::int64_t w1 = std::min(w0 + s.kernel_w, g.width + s.padding_w);
  const std::int64_t padded_count = (h1 - h0) * (w1 - w0);
  h0 = std::max<std::int64_t>(h0, 0);
  w0 = std::max<std::int64_t>(w0, 0);
  h1 = std::min(h1, g.height);
  w1 = std::min(w1, g.width);
  const std::int64_t divisor =
      s.divisor_override > 0 ? s.divisor_override : s.count_include_pad ? padded_count : (h1 - h0) * (w1 - w0);
  return {h0, h1, w0, w1, divisor};
}

}  // namespace

std::pair<Tensor, Tensor> max_pool2d(const Tensor& input, const Pool2dSettings& s) {
  if (record::active()) {
    const Ts out = record::run("max_pool2d", {input}, {}, [s](const Ts& x) {
      auto [values, indices] = max_pool2d(x[0], s);
      return Ts{values, indices};
    });
    return {out[0], out[1]};
  }
  const PoolGeometry g = check_pool("max_pool2d", input.shape(), s);
  check_float("max_pool2d", input);
  const Tensor x = input.contiguous();
  Tensor out = Tensor::empty(g.out_shape, input.dtype());
  Tensor indices = Tensor::empty(g.out_shape, DType::Int64);
  std::int64_t* index = indices.data_as<std::int64_t>();
  dispatch_dtype(input.dtype(), [&](auto zero) {
    using T = decltype(zero);
    if constexpr (std::is_floating_point_v<T>) {
      const std::int64_t in_plane = g.height * g.width, out_plane = g.out_h * g.out_w;
      const std::int64_t work = g.planes * out_plane * s.kernel_h * s.kernel_w;
      for_each_plane(g.planes, work, [&](std::int64_t plane) {
        const T* src = x.data_as<T>() + plane * in_plane;
        T* dst = out.data_as<T>() + plane * out_plane;
        std::int64_t* where = index + plane * out_plane;
        for (std::int64_t oh = 0; oh < g.out_h; ++oh) {
          for (std::int64_t ow = 0; ow < g.out_w; ++ow) {
            const std::int64_t h_start = oh * s.stride_h - s.padding_h, w_start = ow * s.stride_w - s.padding_w;
            T best = -std::numeric_limits<T>::infinity();  // stays so for a window all in padding
            std::int64_t best_at = -1;
            // The first maximum wins ties; a NaN wins and ends the scan (PyTorch's rule).
            auto scan = [&] {
              for (std::int64_t i = 0; i < s.kernel_h; ++i) {
                const std::int64_t ih = h_start + i * s.dilation_h;
                if (ih < 0 || ih >= g.height) continue;
                for (std::int64_t j = 0; j < s.kernel_w; ++j) {
                  const std::int64_t iw = w_start + j * s.dilation_w;
                  if (iw < 0 || iw >= g.width) continue;
                  const T value = src[ih * g.width + iw];
                  if (best_at < 0 || value > best || std::isnan(value)) {
                    best = value;
                    best_at = ih * g.width + iw;
                    if (std::isnan(value)) return;
                  }
                }
              }
            };
            scan();
            dst[oh * g.out_w + ow] = best;
            where[oh * g.out_w + ow] = best_at;
          }
        }
      });
    }
  });
  return {out, indices};
}

Tensor max_pool2d_backward(const Tensor& grad, const Tensor& indices, const Shape& input_shape) {
  if (record::active()) {
    return record::result("max_pool2d_backward", {grad, indices},
                          [input_shape](const Ts& x) { return max_pool2d_backward(x[0], x[1], input_shape); });
  }
  check_float("max_pool2d_backward", grad);
  if (grad.shape() != indices.shape() || indices.dtype() != DType::Int64 || grad.ndim() != static_cast<std::int64_t>(input_shape.size()) || grad.ndim() < 3) {
    fail<ValueError>("max_pool2d_backward: gradient of shape ", grad.shape(), " and int64 indices of shape ",
                     indices.shape(), " do not fit an input of shape ", input_shape);
  }
  const std::int64_t rank = grad.ndim();
  const std::int64_t in_plane = input_shape[rank - 2] * input_shape[rank - 1];
  const std::int64_t out_plane = grad.shape()[rank - 2] * grad.shape()[rank - 1];
  const std::int64_t planes = out_plane > 0 ? grad.numel() / out_plane : 0;
  const Tensor gy = grad.contiguous(), where = indices.contiguous();
  Tensor gx = Tensor::empty(input_shape, grad.dtype());
  dispatch_dtype(grad.dtype(), [&](auto zero) {
    using T = decltype(zero);
    if constexpr (std::is_floating_point_v<T>) {
      for_each_plane(planes, planes * (in_plane + out_plane), [&](std::int64_t plane) {
        T* dst = gx.data_as<T>() + plane * in_plane;
        std::fill(dst, dst + in_plane, T(0));
        const T* src = gy.data_as<T>() + plane * out_plane;
        const std::int64_t* at = where.data_as<std::int64_t>() + plane * out_plane;
        for (std::int64_t o = 0; o < out_plane; ++o) {
          if (at[o] >= 0 && at[o] < in_plane) dst[at[o]] += src[o];
        }
      });
    }
  });
  return gx;
}

Tensor avg_pool2d(const Tensor& input, const Pool2dSettings& s) {
  if (record::active()) return record::result("avg_pool2d", {input}, [s](const Ts& x) { return avg_pool2d(x[0], s); });
  if (s.dilation_h != 1 || s.dilation_w != 1) fail<ValueError>("avg_pool2d: dilation is not supported");
  const PoolGeometry g = check_pool("avg_pool2d", input.shape(), s);
  check_float("avg_pool2d", input);
  const Tensor x = input.contiguous();
  Tensor out = Tensor::empty(g.out_shape, input.dtype());
  dispatch_dtype(input.dtype(), [&](auto zero) {
    using T = decltype(zero);
    if constexpr (std::is_floating_point_v<T>) {
      const std::int64_t in_plane = g.height * g.width, out_plane = g.out_h * g.out_w;
      for_each_plane(g.planes, g.planes * out_plane * s.kernel_h * s.kernel_w, [&](std::int64_t plane) {
        const T* src = x.data_as<T>() + plane * in_plane;
        T* dst = out.data_as<T>() + plane * out_plane;
        for (std::int64_t oh = 0; oh < g.out_h; ++oh) {
          for (std::int64_t ow = 0; ow < g.out_w; ++ow) {
            const AvgWindow w = avg_window(g, s, oh, ow);
            T total = 0;
            for (std::int64_t ih = w.h0; ih < w.h1; ++ih) {
              for (std::int64_t iw = w.w0; iw < w.w1; ++iw) total += src[ih * g.width + iw];
            }
            dst[oh * g.out_w + ow] = total / static_cast<T>(w.divisor);
          }
        }
      });
    }
  });
  return out;
}

Tensor avg_pool2d_backward(const Tensor& grad, const Shape& input_shape, const Pool2dSettings& s) {
  if (record::active()) {
    return record::result("avg_pool2d_backward", {grad},
                          [input_shape, s](const Ts& x) { return avg_pool2d_backward(x[0], input_shape, s); });
  }
  const PoolGeometry g = check_pool("avg_pool2d_backward", input_shape, s);
  check_float("avg_pool2d_backward", grad);
  if (grad.shape() != g.out_shape) {
    fail<ValueError>("avg_pool2d_backward: gradient of shape ", grad.shape(), " for an output of shape ", g.out_shape);
  }
  const Tensor gy = grad.contiguous();
  Tensor gx = Tensor::empty(input_shape, grad.dtype());
  dispatch_dtype(grad.dtype(), [&](auto zero) {
    using T = decltype(zero);
    if constexpr (std::is_floating_point_v<T>) {
      const std::int64_t in_plane = g.height * g.width, out_plane = g.out_h * g.out_w;
      for_each_plane(g.planes, g.planes * out_plane * s.kernel_h * s.kernel_w, [&](std::int64_t plane) {
        T* dst = gx.data_as<T>() + plane * in_plane;
        std::fill(dst, dst + in_plane, T(0));
        const T* src = gy.data_as<T>() + plane * out_plane;
        for (std::int64_t oh = 0; oh < g.out_h; ++oh) {
          for (std::int64_t ow = 0; ow < g.out_w; ++ow) {
            const AvgWindow w = avg_window(g, s, oh, ow);
            const T share = src[oh * g.out_w + ow] / static_cast<T>(w.divisor);
            for (std::int64_t ih = w.h0; ih < w.h1; ++ih) {
              for (std::int64_t iw = w.w0; iw < w.w1; ++iw) dst[ih * g.width + iw] += share;
            }
          }
        }
      });
    }
  });
  return gx;
}

}  // namespace chainrule
