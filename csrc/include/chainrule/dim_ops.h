// The dim-wise index and scan ops (csrc/kernels/gather_scatter.cpp, sort_scan.cpp), with
// PyTorch's semantics: gather/scatter along a dim by an int64 index of the same number of
// dims, sort/topk along a dim, cumulative sums and products. Inputs may be any strided view;
// results are fresh and contiguous; a name ending in an underscore writes in place. A 0-d
// tensor counts as a 1-d tensor of one element (dim 0 or -1), as in PyTorch.
#pragma once
#include <cstdint>
#include <utility>

#include "chainrule/tensor.h"

namespace chainrule {

// out[i][j][k] = a[i][index[i][j][k]][k] for dim 1 (likewise for any dim); out has index's
// shape. index is int64 with a's number of dims, no larger than a in every dim but `dim`,
// and its values lie in [0, a.size(dim)) (IndexError naming the value and the dim).
Tensor gather(const Tensor& a, std::int64_t dim, const Tensor& index);

// out[i][index[i][j][k]][k] = src[i][j][k] for dim 1 (likewise for any dim), in place. src
// has out's dtype and is no smaller than index in any dim; index is no larger than out in
// every dim but `dim`. With repeated positions, the last write wins (in index order).
void scatter_(const Tensor& out, std::int64_t dim, const Tensor& index, const Tensor& src);
// The same with one value for every position.
void scatter_value_(const Tensor& out, std::int64_t dim, const Tensor& index, const Scalar& value);
// out[i][index[i][j][k]][k] += src[i][j][k]: repeated positions add up.
void scatter_add_(const Tensor& out, std::int64_t dim, const Tensor& index, const Tensor& src);
// The out-of-place forms: a contiguous copy of `a` with the scatter applied.
Tensor scatter(const Tensor& a, std::int64_t dim, const Tensor& index, const Tensor& src);
Tensor scatter_value(const Tensor& a, std::int64_t dim, const Tensor& index, const Scalar& value);
Tensor scatter_add(const Tensor& a, std::int64_t dim, const Tensor& index, const Tensor& src);

// (values, int64 indices) of `a` sorted along dim. Equal elements keep their order (every
// sort is stable); NaN sorts above every number, as in PyTorch.
std::pair<Tensor, Tensor> sort(const Tensor& a, std::int64_t dim, bool descending);
// The k largest (smallest) elements along dim and their indices, in sorted order; k in
// [0, a.size(dim)] (IndexError otherwise). Not for bool tensors (TypeError), as in PyTorch.
std::pair<Tensor, Tensor> topk(const Tensor& a, std::int64_t k, std::int64_t dim, bool largest);

// Cumulative sum (product) along dim; `reverse` runs from the end (the sum's backward).
// int64 and bool give int64; float32 accumulates in float64, as PyTorch's CPU kernel does.
Tensor cumsum(const Tensor& a, std::int64_t dim, bool reverse);
Tensor cumprod(const Tensor& a, std::int64_t dim);

}  // namespace chainrule
