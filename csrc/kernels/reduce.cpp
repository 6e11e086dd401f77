// Reductions (sum, mean, amax, amin, argmax, argmin) over any set of dims, and sum_to.
// The input is seen as a 2-D problem: K kept positions by R reduced positions, each with one
// stride when the dims coalesce (else a contiguous copy makes them). Rows reduce with a
// contiguous inner loop; a reduction over the leading dim walks rows and accumulates columns,
// so both stay vectorizable. float32 sums accumulate in double: 1e7 elements stay exact to
// float32's precision.
#include <omp.h>

#include <cmath>
#include <cstdlib>
#include <limits>
#include <memory>
#include <numeric>
#include <type_traits>
#include <vector>

#include "chainrule/config.h"
#include "chainrule/errors.h"
#include "chainrule/record.h"
#include "chainrule/ops.h"
#include "numeric.h"
#include "parallel.h"
#include "vector_math.h"

namespace chainrule {

using Ts = record::Tensors;  // a recorded op's tensor operands
using detail::parallel_for;
namespace {

// Elements a thread. A whole sum, or sums along contiguous rows, split the memory as the
// elementwise ops do, so a reduction of what a two-thread op just made reads each half where
// it was written: x * 2 then x.sum() on 1e6 floats took 272 us with the sum on one thread
// (half the lines from the other core's cache), 72-91 us on two (AVX2; x.sum(1) 284 -> 93-100).
// The grain had been 2^21 (sums read at 40-50 GB/s, and waking a sleeping thread costs 30-50
// us): after a pause of a millisecond, the team asleep, two threads now cost 0-20% more than
// one did (1000 x 1000: 106-127 us on one, 115-141 on two).
constexpr std::int64_t kReduceGrain = kElementwiseGrain;

using detail::is_nan;

// Integer sums accumulate in uint64: they wrap around on overflow as PyTorch's int64 sums do,
// where a signed accumulator would be undefined behaviour. total() reads the sum back signed.
template <typename T>
struct SumReducer {
  using Acc = std::conditional_t<std::is_floating_point_v<T>, double, std::uint64_t>;
  static Acc init() { return Acc(0); }
  static Acc step(Acc acc, T x) { return acc + static_cast<Acc>(x); }
  static Acc combine(Acc a, Acc b) { return a + b; }
  static auto total(Acc acc) {
    if constexpr (std::is_floating_point_v<T>) return acc;
    else return static_cast<std::int64_t>(acc);
  }
};

template <typename T>
struct MaxReducer {
  using Acc = T;
  static Acc init() {
    if constexpr (std::is_floating_point_v<T>) return -std::numeric_limits<T>::infinity();
    else return std::numeric_limits<T>::lowest();
  }
  static Acc step(Acc acc, T x) { return (x > acc || is_nan(x)) ? x : acc; }
  static Acc combine(Acc a, Acc b) { return step(a, b); }
};

template <typename T>
struct MinReducer {
  using Acc = T;
  static Acc init() {
    if constexpr (std::is_floating_point_v<T>) return std::numeric_limits<T>::infinity();
    else return std::numeric_limits<T>::max();
  }
  static Acc step(Acc acc, T x) { return (x < acc || is_nan(x)) ? x : acc; }
  static Acc combine(Acc a, Acc b) { return step(a, b); }
};

// Workspace for n trivially-copyable values; MemoryError (not std::bad_alloc) when it fails.
template <typename T>
std::unique_ptr<T[], decltype(&std::free)> workspace(std::int64_t n) {
  // 64-byte aligned: the column sums load and store whole vectors of accumulators, and a
  // vector across two cache lines costs two.
  const std::size_t bytes = (static_cast<std::size_t>(std::max<std::int64_t>(n, 1)) * sizeof(T) + 63) / 64 * 64;
  void* data = std::aligned_alloc(64, bytes);
  if (data == nullptr) fail<MemoryError>("reduce: cannot allocate ", n * static_cast<std::int64_t>(sizeof(T)), " bytes of workspace");
  return {static_cast<T*>(data), &std::free};
}

// K outputs, each the reduction of R inputs: x[k * k_stride + r * r_stride] (elements).
struct Problem {
  std::int64_t K, k_stride, R, r_stride;
};

template <typename Reducer, typename T>
typename Reducer::Acc reduce_row(const T* x, std::int64_t n, std::int64_t stride) {
  using Acc = typename Reducer::Acc;
  Acc acc = Reducer::init();
  if (stride == 1) {
    if constexpr (std::is_same_v<Reducer, SumReducer<T>> && std::is_same_v<T, float>) {
      // Blocked, in float lanes and double blocks, vectorized per ISA (vector_math.inc): about
      // as fast as a float loop, about as accurate as a double one.
      acc = vector_math::functions().sum(x, n);
    } else if constexpr (std::is_same_v<Reducer, SumReducer<T>>) {
#pragma omp simd reduction(+ : acc)
      for (std::int64_t i = 0; i < n; ++i) acc += static_cast<Acc>(x[i]);
    } else {
      for (std::int64_t i = 0; i < n; ++i) acc = Reducer::step(acc, x[i]);
    }
  } else {
    for (std::int64_t i = 0; i < n; ++i) acc = Reducer::step(acc, x[i * stride]);
  }
  return acc;
}

// Reduces into acc[K]; finish() turns each accumulator into the output element.
template <typename Reducer, typename T, typename Finish>
void run_problem(const T* x, const Problem& p, Finish finish) {
  using Acc = typename Reducer::Acc;
  const int max_threads = threads_for(p.K * p.R, kReduceGrain);
  if (p.K == 1) {
    // One long row: split it, then combine the partials in a fixed order.
    // Not std::vector: vector<bool> packs bits, and threads would race on neighbouring ones.
    auto partial = workspace<Acc>(max_threads);
    for (int t = 0; t < max_threads; ++t) partial[t] = Reducer::init();
    const std::int64_t chunk = (p.R + max_threads - 1) / max_threads;
    parallel_for(max_threads, max_threads, [&](std::int64_t t) {
      const std::int64_t begin = std::min(p.R, t * chunk);
      const std::int64_t end = std::min(p.R, begin + chunk);
      partial[t] = reduce_row<Reducer>(x + begin * p.r_stride, end - begin, p.r_stride);
    });
    Acc acc = Reducer::init();
    for (int t = 0; t < max_threads; ++t) acc = Reducer::combine(acc, partial[t]);
    finish(0, acc);
    return;
  }
  if (p.r_stride != 1 && p.k_stride == 1) {
    // Columns: walk the R rows in order, each a contiguous run over k. Every thread's
    // accumulators are allocated here, before the parallel region: nothing in it throws.
    // With rows enough for a few whole blocks a thread (kColumnBlock, the float column sums'
    // block), each thread takes a run of whole rows into accumulators of its own, and the runs'
    // sums are combined in order after: so each thread reads, from its own core's cache, mostly
    // the memory that the same thread wrote when an elementwise op on the team made x (both give
    // thread t the t-th of near-equal runs; parallel_chunks lets a thread that starts late find
    // some of its run done by the other). Split by columns instead, each thread read half of every row,
    // half of it from the other core: a two-thread x * 2 then x.sum(0) on 1000 x 1000 floats,
    // 269 us on one thread (half the rows from the other core), 144 us split by columns,
    // 85-108 us by rows (AVX2; 126 us when one thread made x).
    const int threads = threads_for(p.K * p.R, kReduceGrain);
    constexpr std::int64_t kColumnBlock = 64;
    const bool by_rows = threads > 1 && p.R >= 4 * kColumnBlock * threads;
    const std::int64_t row_chunk = (p.R + threads - 1) / threads;  // as parallel_for splits the elements
    const std::int64_t column_chunk = by_rows ? p.K : (p.K + threads - 1) / threads;
    auto accumulators = workspace<Acc>(by_rows ? p.K * threads : p.K);
    parallel_for(threads, threads, [&](std::int64_t t) {
      const std::int64_t begin = by_rows ? 0 : std::min(p.K, t * column_chunk);
      const std::int64_t end = by_rows ? p.K : std::min(p.K, begin + column_chunk);
      const std::int64_t r0 = by_rows ? std::min(p.R, t * row_chunk) : 0;
      const std::int64_t r1 = by_rows ? std::min(p.R, r0 + row_chunk) : p.R;
      Acc* acc = accumulators.get() + (by_rows ? t * p.K : begin);
      const T* rows = x + r0 * p.r_stride + begin;
      for (std::int64_t k = 0; k < end - begin; ++k) acc[k] = Reducer::init();
      if constexpr (std::is_same_v<Reducer, SumReducer<T>> && std::is_same_v<T, float>) {
        // Blocks of 64 rows in float, added in double, vectorized per ISA (vector_math.inc).
        vector_math::functions().sum_columns(rows, r1 - r0, end - begin, p.r_stride, acc);
      } else {
        for (std::int64_t r = 0; r < r1 - r0; ++r) {
          const T* row = rows + r * p.r_stride;
          for (std::int64_t k = 0; k < end - begin; ++k) acc[k] = Reducer::step(acc[k], row[k]);
        }
      }
      if (!by_rows) {
        for (std::int64_t k = begin; k < end; ++k) finish(k, acc[k - begin]);
      }
    });
    if (by_rows) {
      const Acc* acc = accumulators.get();
      for (std::int64_t k = 0; k < p.K; ++k) {
        Acc total = acc[k];
        for (int t = 1; t < threads; ++t) total = Reducer::combine(total, acc[t * p.K + k]);
        finish(k, total);
      }
    }
    return;
  }
  const int threads = std::min<std::int64_t>(max_threads, p.K);
  parallel_for(threads, p.K, [&](std::int64_t k) {
    finish(k, reduce_row<Reducer>(x + k * p.k_stride, p.R, p.r_stride));
  });
}

// Merges dims into one (size, stride) when they are contiguous with each other.
bool coalesce(const Shape& shape, const Shape& strides, std::int64_t* size, std::int64_t* stride) {
  std::int64_t n = 1, s = 1;
  bool first = true;
  for (std::size_t i = shape.size(); i-- > 0;) {
    if (shape[i] == 1) continue;
    if (first) {
      s = strides[i];
      first = false;
    } else if (strides[i] != s * n) {
      return false;
    }
    n *= shape[i];
  }
  *size = n;
  *stride = s;
  return true;
}

// Splits `a` into kept and reduced dims and finds a Problem over `*source`.
Problem plan_problem(const Tensor& a, const std::vector<bool>& reduced, Tensor* source) {
  Shape kept_shape, kept_strides, red_shape, red_strides;
  std::vector<std::int64_t> order;
  for (std::int64_t d = 0; d < a.ndim(); ++d) {
    if (!reduced[d]) {
      kept_shape.push_back(a.shape()[d]);
      kept_strides.push_back(a.strides()[d]);
      order.push_back(d);
    }
  }
  for (std::int64_t d = 0; d < a.ndim(); ++d) {
    if (reduced[d]) {
      red_shape.push_back(a.shape()[d]);
      red_strides.push_back(a.strides()[d]);
      order.push_back(d);
    }
  }
  Problem p{};
  if (coalesce(kept_shape, kept_strides, &p.K, &p.k_stride) &&
      coalesce(red_shape, red_strides, &p.R, &p.r_stride)) {
    *source = a;
    return p;
  }
  *source = a.permute(order).contiguous();
  p.K = numel_of(kept_shape);
  p.R = numel_of(red_shape);
  p.k_stride = p.R;
  p.r_stride = 1;
  return p;
}

Shape reduced_shape(const Tensor& a, const std::vector<bool>& reduced, bool keepdim) {
  Shape shape;
  for (std::int64_t d = 0; d < a.ndim(); ++d) {
    if (!reduced[d]) shape.push_back(a.shape()[d]);
    else if (keepdim) shape.push_back(1);
  }
  return shape;
}

const char* reduce_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum: return "sum";
    case ReduceOp::Mean: return "mean";
    case ReduceOp::Amax: return "amax";
    case ReduceOp::Amin: return "amin";
  }
  return "?";
}

template <typename T>
void reduce_typed(ReduceOp op, const Tensor& source, const Problem& p, const Tensor& out) {
  switch (op) {
    case ReduceOp::Sum:
    case ReduceOp::Mean: {
      using Acc = typename SumReducer<T>::Acc;
      const double scale = op == ReduceOp::Mean ? 1.0 / static_cast<double>(p.R) : 1.0;
      dispatch_dtype(out.dtype(), [&](auto zero) {
        using R = decltype(zero);
        R* o = out.data_as<R>();
        run_problem<SumReducer<T>>(source.data_as<T>(), p, [&](std::int64_t k, Acc acc) {
          const auto total = SumReducer<T>::total(acc);
          if (op == ReduceOp::Mean) o[k] = static_cast<R>(static_cast<double>(total) * scale);
          else o[k] = static_cast<R>(total);
        });
      });
      return;
    }
    case ReduceOp::Amax: {
      T* o = out.data_as<T>();
      run_problem<MaxReducer<T>>(source.data_as<T>(), p, [o](std::int64_t k, T acc) { o[k] = acc; });
      return;
    }
    case ReduceOp::Amin: {
      T* o = out.data_as<T>();
      run_problem<MinReducer<T>>(source.data_as<T>(), p, [o](std::int64_t k, T acc) { o[k] = acc; });
      return;
    }
  }
}

template <typename T, bool Largest>
void arg_reduce(const T* x, const Problem& p, std::int64_t* out) {
  for (std::int64_t k = 0; k < p.K; ++k) {
    const T* row = x + k * p.k_stride;
    std::int64_t best = 0;
    T best_value = row[0];
    if (!is_nan(best_value)) {
      for (std::int64_t r = 1; r < p.R; ++r) {
        const T v = row[r * p.r_stride];
        if (is_nan(v)) {  // NaN wins, as in NumPy
          best = r;
          break;
        }
        if (Largest ? v > best_value : v < best_value) {
          best = r;
          best_value = v;
        }
      }
    }
    out[k] = best;
  }
}

Tensor arg_extreme(const Tensor& a, std::optional<std::int64_t> dim, bool keepdim, bool largest) {
  const char* name = largest ? "argmax" : "argmin";
  std::vector<bool> reduced(static_cast<std::size_t>(a.ndim()), !dim.has_value());
  if (dim) {
    const std::int64_t d = wrap_dim(*dim, a.ndim(), name);
    if (a.ndim() > 0) reduced[d] = true;
  }
  Shape shape = reduced_shape(a, reduced, keepdim);
  std::int64_t count = 1;
  for (std::int64_t d = 0; d < a.ndim(); ++d) {
    if (reduced[d]) count *= a.shape()[d];
  }
  if (count == 0) fail<ValueError>(name, ": cannot take the ", name, " of an empty dim (shape ", a.shape(), ")");
  Tensor out = Tensor::empty(shape, DType::Int64);
  Tensor source;
  const Problem p = plan_problem(a, reduced, &source);
  dispatch_dtype(a.dtype(), [&](auto zero) {
    using T = decltype(zero);
    if (largest) arg_reduce<T, true>(source.data_as<T>(), p, out.data_as<std::int64_t>());
    else arg_reduce<T, false>(source.data_as<T>(), p, out.data_as<std::int64_t>());
  });
  return out;
}

}  // namespace

namespace {

// The work of reduce(op, a, dims, keepdim) written into `out` (the result's dtype, and its
// elements in its order: the keepdim shape or not).
void reduce_into(ReduceOp op, const Tensor& out, const Tensor& a, const std::vector<std::int64_t>& dims) {
  const char* name = reduce_name(op);
  const std::vector<bool> reduced = dim_mask(dims, a.ndim(), name);
  std::int64_t count = 1;
  for (std::int64_t d = 0; d < a.ndim(); ++d) {
    if (reduced[d]) count *= a.shape()[d];
  }
  const DType result = out.dtype();
  if (out.numel() == 0) return;
  if (count == 0) {
    if (op == ReduceOp::Amax || op == ReduceOp::Amin) {
      fail<ValueError>(name, ": cannot reduce over an empty dim (shape ", a.shape(),
                       "): the operation has no identity");
    }
    fill_(out, op == ReduceOp::Sum ? Scalar::from_int(0) : Scalar::from_double(std::nan("")));
    return;
  }
  // Mean reduces in the float dtype of its result; sums of bool reduce as int64.
  Tensor input = a;
  if (op == ReduceOp::Mean) input = a.to(result);
  if (op == ReduceOp::Sum && a.dtype() == DType::Bool) input = a.to(DType::Int64);
  Tensor source;
  const Problem p = plan_problem(input, reduced, &source);
  dispatch_dtype(input.dtype(), [&](auto zero) { reduce_typed<decltype(zero)>(op, source, p, out); });
}

// For a replay (record.h): when a reduction of `a` needs no cast and no copy of its input
// (its dims coalesce), its loop plan depends on shapes and strides alone, which do not change
// between replays: it is made once, and a replay runs the kernel on the plan straight away.
record::Into planned_reduce(ReduceOp op, const Tensor& a, const std::vector<std::int64_t>& dims) {
  const bool cast = (op == ReduceOp::Mean && a.dtype() != float_result(a.dtype())) ||
                    (op == ReduceOp::Sum && a.dtype() == DType::Bool);
  if (cast || a.numel() == 0) return [op, dims](const Ts& x, const Tensor& out) { reduce_into(op, out, x[0], dims); };
  Tensor source;
  const Problem p = plan_problem(a, dim_mask(dims, a.ndim(), reduce_name(op)), &source);
  if (!source.shares_storage(a) || source.offset() != a.offset() || p.K * p.R != a.numel()) {
    return [op, dims](const Ts& x, const Tensor& out) { reduce_into(op, out, x[0], dims); };
  }
  return [op, p](const Ts& x, const Tensor& out) {
    dispatch_dtype(x[0].dtype(), [&](auto zero) { reduce_typed<decltype(zero)>(op, x[0], p, out); });
  };
}

}  // namespace

Tensor reduce(ReduceOp op, const Tensor& a, const std::vector<std::int64_t>& dims, bool keepdim) {
  if (record::active()) {
    return record::result("reduce", {a}, [=](const Ts& x) { return reduce(op, x[0], dims, keepdim); },
                          planned_reduce(op, a, dims));
  }
  const Shape shape = reduced_shape(a, dim_mask(dims, a.ndim(), reduce_name(op)), keepdim);
  DType result = a.dtype();
  if (op == ReduceOp::Sum && !is_floating(result)) result = DType::Int64;
  if (op == ReduceOp::Mean) result = float_result(result);
  Tensor out = Tensor::empty(shape, result);
  reduce_into(op, out, a, dims);
  return out;
}

Tensor argmax(const Tensor& a, std::optional<std::int64_t> dim, bool keepdim) {
  if (record::active()) return record::result("argmax", {a}, [=](const Ts& x) { return argmax(x[0], dim, keepdim); });
  return arg_extreme(a, dim, keepdim, true);
}

Tensor argmin(const Tensor& a, std::optional<std::int64_t> dim, bool keepdim) {
  if (record::active()) return record::result("argmin", {a}, [=](const Ts& x) { return argmin(x[0], dim, keepdim); });
  return arg_extreme(a, dim, keepdim, false);
}

namespace {

// The dims sum_to(a, shape) sums over (empty: none).
std::vector<std::int64_t> summed_dims(const Shape& from, const Shape& shape) {
  const std::size_t lead = from.size() - shape.size();
  std::vector<std::int64_t> dims;
  for (std::size_t d = 0; d < from.size(); ++d) {
    if (d < lead || (shape[d - lead] == 1 && from[d] != 1)) dims.push_back(static_cast<std::int64_t>(d));
  }
  return dims;
}

}  // namespace

Tensor sum_to(const Tensor& a, const Shape& shape) {
  if (a.shape() == shape) return a;
  if (record::active()) {
    const std::vector<std::int64_t> dims = summed_dims(a.shape(), shape);
    record::Into into;  // with nothing to sum, sum_to returns a view or a copy: rerun it
    if (!dims.empty() && shape.size() <= a.shape().size()) into = planned_reduce(ReduceOp::Sum, a, dims);
    return record::result("sum_to", {a}, [shape](const Ts& x) { return sum_to(x[0], shape); }, std::move(into));
  }
  if (shape.size() > a.shape().size() || broadcast_shapes(shape, a.shape(), "sum_to") != a.shape()) {
    fail<ValueError>("sum_to: shape ", a.shape(), " cannot be summed down to ", shape);
  }
  const std::vector<std::int64_t> dims = summed_dims(a.shape(), shape);
  if (dims.empty()) return a.reshape(shape);
  return reduce(ReduceOp::Sum, a, dims, true).reshape(shape);
}

}  // namespace chainrule
