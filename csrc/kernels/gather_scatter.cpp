// gather, scatter and scatter_add along a dim (chainrule/dim_ops.h), with PyTorch's shape
// rules. One traversal serves all three: the index (made contiguous) is walked row by row
// (a row: its last dim), and each element's position in the tensor that is read (gather) or
// written (scatter) is the row's base offset, plus the column times that tensor's last
// stride, plus the index value times its stride along `dim` (the base leaves `dim` out).
// Index values are checked before any element moves, so the loops read and write in bounds.
#include <algorithm>
#include <type_traits>
#include <vector>

#include "chainrule/config.h"
#include "chainrule/dim_ops.h"
#include "chainrule/errors.h"
#include "chainrule/ops.h"
#include "chainrule/record.h"
#include "parallel.h"

namespace chainrule {

using Ts = record::Tensors;  // a recorded op's tensor operands
namespace {

// Index elements per thread below which a gather or scatter stays on fewer threads: each
// element is a load, a dependent load and a store, about an add's work (and no SIMD).
constexpr std::int64_t kIndexGrain = std::int64_t{1} << 16;

// 0-d tensors take part as 1-d tensors of one element (PyTorch's ensure_nonempty_dim).
Tensor at_least_1d(const Tensor& t) { return t.ndim() == 0 ? t.reshape({1}) : t; }

// The checks common to gather and scatter: index dtype, number of dims, the dim itself.
std::int64_t check_index_and_dim(const Tensor& self, std::int64_t dim, const Tensor& index, const char* op) {
  if (index.dtype() != DType::Int64) {
    fail<IndexError>(op, ": the index must be an int64 tensor, got dtype ", index.dtype());
  }
  const std::int64_t ndim = std::max<std::int64_t>(self.ndim(), 1);
  if (std::max<std::int64_t>(index.ndim(), 1) != ndim) {
    fail<ValueError>(op, ": the index must have as many dims as the tensor (", self.ndim(), "), got an index of shape ",
                     index.shape());
  }
  return wrap_dim(dim, ndim, op);
}

// Checks each index value lies in [0, size); IndexError naming the first one that does not.
void check_index_values(const Tensor& index, std::int64_t size, std::int64_t dim, const char* op) {
  const std::int64_t* values = index.data_as<std::int64_t>();
  const std::int64_t n = index.numel();
  // The test reads at memory speed: threads only for large indexes, each with its own flag.
  const int threads = threads_for(n, kElementwiseGrain);
  std::vector<char> bad_in(static_cast<std::size_t>(threads), 0);
  const std::int64_t chunk = (n + threads - 1) / threads;
  detail::parallel_for(threads, threads, [&](std::int64_t t) {
    bool bad = false;
    for (std::int64_t i = t * chunk; i < std::min(n, (t + 1) * chunk); ++i) {  // branch-free: vectorizes
      bad |= static_cast<std::uint64_t>(values[i]) >= static_cast<std::uint64_t>(size);
    }
    bad_in[t] = bad;
  });
  if (std::find(bad_in.begin(), bad_in.end(), 1) == bad_in.end()) return;
  for (std::int64_t i = 0; i < n; ++i) {
    if (values[i] < 0 || values[i] >= size) {
      fail<IndexError>(op, ": index ", values[i], " is out of bounds for dim ", dim, " with size ", size);
    }
  }
}

// The walk over a contiguous index of shape `sizes` (>= 1-d): rows are its last dim. For
// each row, `base[k]` is operand k's offset of the row's first element, where operand k has
// `strides[k]` (the target's stride along the scattered dim is zero in it: the index value
// supplies that coordinate).
template <int K>
struct RowWalk {
  Shape sizes;
  std::vector<Shape> stride_store;  // per operand
  std::int64_t ndim = 0, columns = 0, rows = 0;

  // body(row_offsets[K], first_column, end_column) over rows [r0, r1); `coord` is scratch for
  // ndim - 1 counters (given by the caller: nothing allocates inside a team).
  template <typename Body>
  void rows_between(std::int64_t r0, std::int64_t r1, std::int64_t c0, std::int64_t c1, std::int64_t* coord,
                    Body&& body) const {
    if (r0 >= r1 || c0 >= c1) return;
    const std::int64_t outer = ndim - 1;  // the dims a row's position is made of
    std::int64_t offsets[K] = {};
    std::int64_t rest = r0;
    for (std::int64_t d = outer - 1; d >= 0; --d) {
      coord[d] = rest % sizes[d];
      rest /= sizes[d];
      for (int k = 0; k < K; ++k) offsets[k] += coord[d] * stride_store[k][d];
    }
    for (std::int64_t r = r0; r < r1; ++r) {
      body(offsets, c0, c1);
      for (std::int64_t d = outer - 1; d >= 0; --d) {  // next row: carry through the dims
        for (int k = 0; k < K; ++k) offsets[k] += stride_store[k][d];
        if (++coord[d] < sizes[d]) break;
        for (int k = 0; k < K; ++k) offsets[k] -= coord[d] * stride_store[k][d];
        coord[d] = 0;
      }
    }
  }
};

// Builds the walk over `index` (contiguous, >= 1-d) for operands of `strides` (each as many
// as the index has dims), with operand 0's stride along `dim` zeroed.
template <int K>
RowWalk<K> make_walk(const Tensor& index, std::int64_t dim, std::vector<Shape> strides) {
  RowWalk<K> walk;
  walk.sizes = index.shape();
  walk.ndim = index.ndim();
  walk.columns = walk.sizes.back();
  walk.rows = walk.columns > 0 ? index.numel() / walk.columns : 0;
  strides[0][dim] = 0;
  walk.stride_store = std::move(strides);
  return walk;
}

// Runs `row(offsets, c0, c1)` over every row of the walk, threaded when the work is large.
// `columns_may_split`: different columns of one row never write the same element (gather, or
// a scatter along another dim than the last); `rows_may_split`: different rows never do
// (a scatter along the last dim, or gather).
template <int K, typename Row>
void run_walk(const RowWalk<K>& walk, bool rows_may_split, bool columns_may_split, Row&& row) {
  const std::int64_t total = walk.rows * walk.columns;
  const int threads = threads_for(total, kIndexGrain);
  const std::int64_t width = std::max<std::int64_t>(walk.ndim, 1);
  std::vector<std::int64_t> coords(static_cast<std::size_t>(threads * width));  // each thread's counters
  if (threads > 1 && rows_may_split && walk.rows >= 4 * threads) {
    const std::int64_t chunk = (walk.rows + threads - 1) / threads;
    detail::parallel_for(threads, threads, [&](std::int64_t t) {
      walk.rows_between(t * chunk, std::min(walk.rows, (t + 1) * chunk), 0, walk.columns, &coords[t * width], row);
    });
  } else if (threads > 1 && columns_may_split && walk.columns >= 64 * threads) {
    // Whole cache lines per thread: chunks of columns in multiples of 16.
    const std::int64_t chunk = ((walk.columns + threads - 1) / threads + 15) & ~std::int64_t{15};
    detail::parallel_for(threads, threads, [&](std::int64_t t) {
      walk.rows_between(0, walk.rows, std::min(walk.columns, t * chunk), std::min(walk.columns, (t + 1) * chunk),
                        &coords[t * width], row);
    });
  } else {
    walk.rows_between(0, walk.rows, 0, walk.columns, coords.data(), row);
  }
}

// The shape rule of a scatter: index no larger than out in every dim but `dim`, and no larger
// than src in any dim.
void check_scatter_shapes(const Tensor& out, std::int64_t d, const Tensor& index, const Tensor* src, const char* op) {
  bool fits = true;
  for (std::int64_t k = 0; k < index.ndim(); ++k) {
    fits = fits && (k == d || index.shape()[k] <= out.shape()[k]) && (src == nullptr || index.shape()[k] <= src->shape()[k]);
  }
  if (!fits) {
    if (src == nullptr) {
      fail<ValueError>(op, ": an index of shape ", index.shape(), " must be no larger than the tensor's shape ",
                       out.shape(), " apart from dim ", d);
    }
    fail<ValueError>(op, ": an index of shape ", index.shape(), " must be no larger than the tensor's shape ", out.shape(),
                     " apart from dim ", d, " and no larger than src's shape ", src->shape());
  }
}

// A tensor written in place must not have two elements in one place (an expanded view).
void check_writable(const Tensor& out, const char* op) {
  for (std::int64_t k = 0; k < out.ndim(); ++k) {
    if (out.strides()[k] == 0 && out.shape()[k] > 1) {
      fail<ValueError>(op, ": the tensor written in place (shape ", out.shape(),
                       ") has elements that share memory (an expanded view); clone() it first");
    }
  }
}

enum class ScatterKind { Copy, Value, Add };

// The one scatter kernel: out (>= 1-d, any strides) along dim d, at the validated index.
void scatter_kernel(ScatterKind kind, const Tensor& out, std::int64_t d, const Tensor& index, const Tensor* src,
                    const Scalar& value) {
  const std::int64_t dim_stride = out.strides()[d];
  const bool last = d == index.ndim() - 1;
  dispatch_dtype(out.dtype(), [&](auto zero) {
    using T = decltype(zero);
    T* to = out.data_as<T>();
    const std::int64_t* positions = index.data_as<std::int64_t>();
    if (kind == ScatterKind::Value) {
      const T v = value.as<T>();
      const RowWalk<2> walk = make_walk<2>(index, d, {out.strides(), contiguous_strides(index.shape())});
      const std::int64_t out_last = walk.stride_store[0].back();
      run_walk(walk, last, !last, [&](const std::int64_t* base, std::int64_t c0, std::int64_t c1) {
        for (std::int64_t c = c0; c < c1; ++c) to[base[0] + c * out_last + positions[base[1] + c] * dim_stride] = v;
      });
      return;
    }
    const T* from = src->data_as<T>();
    const RowWalk<3> walk = make_walk<3>(index, d, {out.strides(), contiguous_strides(index.shape()), src->strides()});
    const std::int64_t out_last = walk.stride_store[0].back(), src_last = walk.stride_store[2].back();
    run_walk(walk, last, !last, [&](const std::int64_t* base, std::int64_t c0, std::int64_t c1) {
      const std::int64_t* at = positions + base[1];
      T* row_out = to + base[0];
      const T* row_src = from + base[2];
      if (kind == ScatterKind::Copy) {
        for (std::int64_t c = c0; c < c1; ++c) row_out[c * out_last + at[c] * dim_stride] = row_src[c * src_last];
      } else if constexpr (std::is_same_v<T, bool>) {
        for (std::int64_t c = c0; c < c1; ++c) {
          bool& slot = row_out[c * out_last + at[c] * dim_stride];
          slot = slot || row_src[c * src_last];
        }
      } else if (out_last == 0 && dim_stride == 1 && src_last == 1) {  // along a contiguous last dim
        for (std::int64_t c = c0; c < c1; ++c) row_out[at[c]] += row_src[c];
      } else if (out_last == 1 && src_last == 1) {  // along another dim, rows contiguous
        for (std::int64_t c = c0; c < c1; ++c) row_out[c + at[c] * dim_stride] += row_src[c];
      } else {
        for (std::int64_t c = c0; c < c1; ++c) row_out[c * out_last + at[c] * dim_stride] += row_src[c * src_last];
      }
    });
  });
}

// `fresh`: out was just made (the out-of-place forms), so writing it is not a modification.
void scatter_any_(ScatterKind kind, const char* op, const Tensor& out_in, std::int64_t dim, const Tensor& index_in,
                  const Tensor* src_in, const Scalar& value, bool fresh) {
  const std::int64_t d = check_index_and_dim(out_in, dim, index_in, op);
  const Tensor out = at_least_1d(out_in);
  Tensor index = at_least_1d(index_in);
  Tensor src;
  if (src_in != nullptr) {
    if (src_in->dtype() != out.dtype()) {
      fail<TypeError>(op, ": src must have the dtype of the tensor written (", out.dtype(), "), got ", src_in->dtype());
    }
    src = at_least_1d(*src_in);
    if (src.ndim() != out.ndim()) {
      fail<ValueError>(op, ": src must have as many dims as the tensor (", out_in.ndim(), "), got shape ", src_in->shape());
    }
  }
  check_scatter_shapes(out, d, index, src_in != nullptr ? &src : nullptr, op);
  check_writable(out, op);
  if (index.numel() == 0) return;
  // An operand that shares memory with what is written is read from a copy.
  index = index.shares_storage(out) ? index.clone() : index.contiguous();
  if (src.defined() && src.shares_storage(out)) src = src.clone();
  check_index_values(index, out.shape()[d], d, op);
  scatter_kernel(kind, out, d, index, src.defined() ? &src : nullptr, value);
  if (!fresh) out.bump_version();
}

}  // namespace

Tensor gather(const Tensor& a, std::int64_t dim, const Tensor& index) {
  if (record::active()) return record::result("gather", {a, index}, [dim](const Ts& x) { return gather(x[0], dim, x[1]); });
  const std::int64_t d = check_index_and_dim(a, dim, index, "gather");
  const Tensor input = at_least_1d(a);
  const Tensor positions = at_least_1d(index).contiguous();
  for (std::int64_t k = 0; k < input.ndim(); ++k) {
    if (k != d && positions.shape()[k] > input.shape()[k]) {
      fail<ValueError>("gather: an index of shape ", index.shape(), " must be no larger than the input's shape ",
                       a.shape(), " apart from dim ", d);
    }
  }
  Tensor out = Tensor::empty(index.shape(), a.dtype());
  if (out.numel() == 0) return out;
  check_index_values(positions, input.shape()[d], d, "gather");
  const std::int64_t dim_stride = input.strides()[d];
  dispatch_dtype(a.dtype(), [&](auto zero) {
    using T = decltype(zero);
    const T* from = input.data_as<T>();
    T* to = out.data_as<T>();
    const std::int64_t* at = positions.data_as<std::int64_t>();
    const RowWalk<2> walk = make_walk<2>(positions, d, {input.strides(), contiguous_strides(positions.shape())});
    const std::int64_t in_last = walk.stride_store[0].back();
    run_walk(walk, true, true, [&](const std::int64_t* base, std::int64_t c0, std::int64_t c1) {
      // out and the index are both contiguous with the index's shape: one offset serves both.
      const T* row_in = from + base[0];
      const std::int64_t* row_at = at + base[1];
      T* row_out = to + base[1];
      if (in_last == 0 && dim_stride == 1) {  // along a contiguous last dim: a plain table lookup
        for (std::int64_t c = c0; c < c1; ++c) row_out[c] = row_in[row_at[c]];
      } else if (in_last == 1) {  // along another dim of a row-contiguous input
        for (std::int64_t c = c0; c < c1; ++c) row_out[c] = row_in[c + row_at[c] * dim_stride];
      } else {
        for (std::int64_t c = c0; c < c1; ++c) row_out[c] = row_in[c * in_last + row_at[c] * dim_stride];
      }
    });
  });
  return out;
}

void scatter_(const Tensor& out, std::int64_t dim, const Tensor& index, const Tensor& src) {
  if (record::active()) return record::in_place("scatter_", {out, index, src}, [dim](const Ts& x) { scatter_(x[0], dim, x[1], x[2]); });
  scatter_any_(ScatterKind::Copy, "scatter_", out, dim, index, &src, Scalar{}, false);
}

void scatter_value_(const Tensor& out, std::int64_t dim, const Tensor& index, const Scalar& value) {
  if (record::active()) {
    return record::in_place("scatter_value_", {out, index}, [dim, value](const Ts& x) { scatter_value_(x[0], dim, x[1], value); });
  }
  scatter_any_(ScatterKind::Value, "scatter_", out, dim, index, nullptr, value, false);
}

void scatter_add_(const Tensor& out, std::int64_t dim, const Tensor& index, const Tensor& src) {
  if (record::active()) {
    return record::in_place("scatter_add_", {out, index, src}, [dim](const Ts& x) { scatter_add_(x[0], dim, x[1], x[2]); });
  }
  scatter_any_(ScatterKind::Add, "scatter_add_", out, dim, index, &src, Scalar{}, false);
}

Tensor scatter(const Tensor& a, std::int64_t dim, const Tensor& index, const Tensor& src) {
  if (record::active()) return record::result("scatter", {a, index, src}, [dim](const Ts& x) { return scatter(x[0], dim, x[1], x[2]); });
  Tensor out = a.clone();
  scatter_any_(ScatterKind::Copy, "scatter", out, dim, index, &src, Scalar{}, true);
  return out;
}

Tensor scatter_value(const Tensor& a, std::int64_t dim, const Tensor& index, const Scalar& value) {
  if (record::active()) {
    return record::result("scatter_value", {a, index}, [dim, value](const Ts& x) { return scatter_value(x[0], dim, x[1], value); });
  }
  Tensor out = a.clone();
  scatter_any_(ScatterKind::Value, "scatter", out, dim, index, nullptr, value, true);
  return out;
}

Tensor scatter_add(const Tensor& a, std::int64_t dim, const Tensor& index, const Tensor& src) {
  if (record::active()) {
    return record::result("scatter_add", {a, index, src}, [dim](const Ts& x) { return scatter_add(x[0], dim, x[1], x[2]); });
  }
  Tensor out = a.clone();
  scatter_any_(ScatterKind::Add, "scatter_add", out, dim, index, &src, Scalar{}, true);
  return out;
}

}  // namespace chainrule
