// sort, topk, cumsum and cumprod along a dim (chainrule/dim_ops.h). The input is made
// contiguous and seen as (outer, n, inner): n elements along the dim, `inner` apart. Each of
// the outer * inner lines is sorted (scanned) on its own, so lines are the unit of threading.
#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

#include "chainrule/config.h"
#include "chainrule/dim_ops.h"
#include "chainrule/errors.h"
#include "chainrule/record.h"
#include "numeric.h"
#include "parallel.h"

namespace chainrule {

using Ts = record::Tensors;  // a recorded op's tensor operands
namespace {

// Elements per thread below which a sort stays on fewer threads (a sort costs tens of
// nanoseconds per element: far more than an add).
constexpr std::int64_t kSortGrain = std::int64_t{1} << 14;
// For the scans: an add per element, like the elementwise ops.
constexpr std::int64_t kScanGrain = kElementwiseGrain;

struct Lines {
  std::int64_t outer = 1, n = 1, inner = 1;
};

// The (outer, n, inner) view of a contiguous tensor of `shape` along dim d (>= 1-d shapes).
Lines lines_of(const Shape& shape, std::int64_t d) {
  Lines lines;
  lines.n = shape[d];
  for (std::int64_t k = 0; k < d; ++k) lines.outer *= shape[k];
  for (std::int64_t k = d + 1; k < static_cast<std::int64_t>(shape.size()); ++k) lines.inner *= shape[k];
  return lines;
}

Tensor at_least_1d(const Tensor& t) { return t.ndim() == 0 ? t.reshape({1}) : t; }

// PyTorch's order: NaN above every number, NaNs equal to each other.
template <typename T>
bool before(T x, T y) {
  if constexpr (std::is_floating_point_v<T>) return !detail::is_nan(x) && (detail::is_nan(y) || x < y);
  else return x < y;
}

// A total order on (value, position) pairs: by value (descending or not), then by position,
// which makes an unstable sort give the stable order.
template <typename T>
struct PairOrder {
  bool descending;
  bool operator()(const std::pair<T, std::int64_t>& a, const std::pair<T, std::int64_t>& b) const {
    const bool first = descending ? before(b.first, a.first) : before(a.first, b.first);
    if (first) return true;
    const bool second = descending ? before(a.first, b.first) : before(b.first, a.first);
    return !second && a.second < b.second;
  }
};

// topk takes the one-pass selection below for k up to kScanTopkMax and at most 1/8 of the line:
// an element costs one comparison, or at worst (an ascending line, for the largest) k moves.
constexpr std::int64_t kScanTopkMax = 32;
constexpr std::int64_t kScanTopkRatio = 8;

// The first k (0 < k <= n) of a line of n elements `stride` apart in `order`, sorted, into
// buffer[0, k): a pass that keeps the best k so far, the worst of them last. An element
// arrives after every element of lower position, so it displaces the worst only when its
// value comes strictly first: ties keep the lower position, as the full sort does.
template <typename T>
void select_by_scan(const T* in, std::int64_t n, std::int64_t stride, std::int64_t k, const PairOrder<T>& order,
                    std::pair<T, std::int64_t>* buffer) {
  for (std::int64_t j = 0; j < k; ++j) buffer[j] = {in[j * stride], j};
  std::sort(buffer, buffer + k, order);
  T worst = buffer[k - 1].first;
  for (std::int64_t j = k; j < n; ++j) {
    const T x = in[j * stride];
    if (!(order.descending ? before(worst, x) : before(x, worst))) continue;
    std::int64_t at = k - 1;  // insert, shifting the worse ones down by one
    while (at > 0 && (order.descending ? before(buffer[at - 1].first, x) : before(x, buffer[at - 1].first))) {
      buffer[at] = buffer[at - 1];
      --at;
    }
    buffer[at] = {x, j};
    worst = buffer[k - 1].first;
  }
}

// Sorts (or selects the first k of) every line of `src` (contiguous) into values and indices
// of shape `out_shape` (the same, with k along the dim).
template <typename T>
void sort_lines(const Tensor& src, const Lines& lines, std::int64_t k, bool descending, bool select_k,
                const Tensor& values, const Tensor& indices) {
  const T* from = src.data_as<T>();
  T* to_values = values.data_as<T>();
  std::int64_t* to_indices = indices.data_as<std::int64_t>();
  const std::int64_t count = lines.outer * lines.inner;
  const int threads = std::min<std::int64_t>(threads_for(src.numel(), kSortGrain), count);
  // One buffer per thread, allocated here: nothing may throw inside the team.
  std::vector<std::pair<T, std::int64_t>> buffers(static_cast<std::size_t>(std::max(threads, 1) * lines.n));
  const PairOrder<T> order{descending};
  const std::int64_t chunk = (count + std::max(threads, 1) - 1) / std::max(threads, 1);
  auto write = [&](std::int64_t o, std::int64_t i, const std::pair<T, std::int64_t>* buffer) {
    const std::int64_t base = o * k * lines.inner + i;
    for (std::int64_t j = 0; j < k; ++j) {
      to_values[base + j * lines.inner] = buffer[j].first;
      to_indices[base + j * lines.inner] = buffer[j].second;
    }
  };
  detail::parallel_for(threads, std::max(threads, 1), [&](std::int64_t t) {
    std::pair<T, std::int64_t>* buffer = buffers.data() + t * lines.n;
    for (std::int64_t line = t * chunk; line < std::min(count, (t + 1) * chunk); ++line) {
      const std::int64_t o = line / lines.inner, i = line % lines.inner;
      const T* in = from + o * lines.n * lines.inner + i;
      if (select_k && k > 0 && k <= kScanTopkMax && k * kScanTopkRatio <= lines.n) {
        // A few of many: one pass keeping the best k so far (sorted, the worst last); most
        // elements lose to the worst at one comparison.
        select_by_scan(in, lines.n, lines.inner, k, order, buffer);
        write(o, i, buffer);
        continue;
      }
      for (std::int64_t j = 0; j < lines.n; ++j) buffer[j] = {in[j * lines.inner], j};
      if (!select_k || k == lines.n) {
        std::sort(buffer, buffer + lines.n, order);
      } else if (k > 0) {
        std::nth_element(buffer, buffer + k, buffer + lines.n, order);
        std::sort(buffer, buffer + k, order);
      }
      write(o, i, buffer);
    }
  });
}

std::pair<Tensor, Tensor> sort_or_topk(const Tensor& a, std::int64_t k, std::int64_t dim, bool descending, bool select_k,
                                       const char* op) {
  const Tensor src = at_least_1d(a).contiguous();
  const std::int64_t d = wrap_dim(dim, src.ndim(), op);
  const Lines lines = lines_of(src.shape(), d);
  if (select_k && (k < 0 || k > lines.n)) {
    fail<IndexError>(op, ": k (", k, ") is out of range for dim ", dim, " of size ", lines.n, " (shape ", a.shape(), ")");
  }
  Shape shape = a.shape();
  if (!shape.empty()) shape[d] = select_k ? k : lines.n;
  Tensor values = Tensor::empty(shape, a.dtype());
  Tensor indices = Tensor::empty(shape, DType::Int64);
  if (values.numel() == 0) return {values, indices};
  dispatch_dtype(a.dtype(), [&](auto zero) {
    sort_lines<decltype(zero)>(src, lines, select_k ? k : lines.n, descending, select_k, values, indices);
  });
  return {values, indices};
}

// The accumulator of a scan: float32 and float64 in double (PyTorch's CPU kernel), integers
// in uint64 (wrapping on overflow as PyTorch's int64 does, without signed-overflow UB).
template <typename T>
using ScanAcc = std::conditional_t<std::is_floating_point_v<T>, double, std::uint64_t>;

template <bool Product, typename Acc>
inline Acc scan_step(Acc acc, Acc x) {
  if constexpr (Product) return acc * x;
  else return acc + x;
}

// out[..., j, ...] = x[..., 0, ...] op ... op x[..., j, ...] along the lines (from the end
// when `reverse`). T: the input's type; R: the result's (int64 for bool and int64 inputs).
template <bool Product, typename T, typename R>
void scan_lines(const Tensor& src, const Lines& lines, bool reverse, const Tensor& out) {
  using Acc = ScanAcc<T>;
  const T* from = src.data_as<T>();
  R* to = out.data_as<R>();
  const Acc init = Product ? Acc(1) : Acc(0);
  const std::int64_t n = lines.n, inner = lines.inner;
  const std::int64_t first = reverse ? n - 1 : 0, step = reverse ? -1 : 1;
  if (inner == 1) {  // rows: one running accumulator each
    const int threads = std::min<std::int64_t>(threads_for(src.numel(), kScanGrain), lines.outer);
    detail::parallel_for(threads, lines.outer, [&](std::int64_t o) {
      const T* in = from + o * n;
      R* row = to + o * n;
      Acc acc = init;
      for (std::int64_t j = 0, at = first; j < n; ++j, at += step) {
        acc = scan_step<Product>(acc, static_cast<Acc>(in[at]));
        row[at] = static_cast<R>(acc);
      }
    });
    return;
  }
  // Blocks of up to kBlock neighbouring lines scan together: the inner loop runs over
  // contiguous memory and vectorizes.
  constexpr std::int64_t kBlock = 256;
  const std::int64_t blocks = (inner + kBlock - 1) / kBlock;
  const std::int64_t items = lines.outer * blocks;
  const int threads = std::min<std::int64_t>(threads_for(src.numel(), kScanGrain), items);
  detail::parallel_for(threads, items, [&](std::int64_t item) {
    const std::int64_t o = item / blocks, i0 = item % blocks * kBlock;
    const std::int64_t width = std::min(kBlock, inner - i0);
    Acc acc[kBlock];
    for (std::int64_t i = 0; i < width; ++i) acc[i] = init;
    const T* in = from + o * n * inner + i0;
    R* block = to + o * n * inner + i0;
    for (std::int64_t j = 0, at = first; j < n; ++j, at += step) {
      const T* x = in + at * inner;
      R* y = block + at * inner;
      for (std::int64_t i = 0; i < width; ++i) {
        acc[i] = scan_step<Product>(acc[i], static_cast<Acc>(x[i]));
        y[i] = static_cast<R>(acc[i]);
      }
    }
  });
}

template <bool Product>
Tensor scan(const Tensor& a, std::int64_t dim, bool reverse, const char* op) {
  const Tensor src = at_least_1d(a).contiguous();
  const std::int64_t d = wrap_dim(dim, src.ndim(), op);
  const DType result = is_floating(a.dtype()) ? a.dtype() : DType::Int64;
  Tensor out = Tensor::empty(a.shape(), result);
  if (out.numel() == 0) return out;
  const Lines lines = lines_of(src.shape(), d);
  dispatch_dtype(a.dtype(), [&](auto zero) {
    using T = decltype(zero);
    using R = std::conditional_t<std::is_floating_point_v<T>, T, std::int64_t>;
    scan_lines<Product, T, R>(src, lines, reverse, out);
  });
  return out;
}

}  // namespace

std::pair<Tensor, Tensor> sort(const Tensor& a, std::int64_t dim, bool descending) {
  if (record::active()) {
    const Ts results = record::run("sort", {a}, {}, [dim, descending](const Ts& x) {
      auto [values, indices] = sort(x[0], dim, descending);
      return Ts{values, indices};
    });
    return {results[0], results[1]};
  }
  return sort_or_topk(a, 0, dim, descending, false, "sort");
}

std::pair<Tensor, Tensor> topk(const Tensor& a, std::int64_t k, std::int64_t dim, bool largest) {
  if (record::active()) {
    const Ts results = record::run("topk", {a}, {}, [k, dim, largest](const Ts& x) {
      auto [values, indices] = topk(x[0], k, dim, largest);
      return Ts{values, indices};
    });
    return {results[0], results[1]};
  }
  if (a.dtype() == DType::Bool) fail<TypeError>("topk: not supported for bool tensors (as in PyTorch)");
  return sort_or_topk(a, k, dim, largest, true, "topk");
}

Tensor cumsum(const Tensor& a, std::int64_t dim, bool reverse) {
  if (record::active()) {
    return record::result("cumsum", {a}, [dim, reverse](const Ts& x) { return cumsum(x[0], dim, reverse); });
  }
  return scan<false>(a, dim, reverse, "cumsum");
}

Tensor cumprod(const Tensor& a, std::int64_t dim) {
  if (record::active()) return record::result("cumprod", {a}, [dim](const Ts& x) { return cumprod(x[0], dim); });
  return scan<true>(a, dim, false, "cumprod");
}

}  // namespace chainrule
