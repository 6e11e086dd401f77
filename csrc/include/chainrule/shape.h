// Shapes, strides and broadcasting: plain integer arithmetic with checked errors.
#pragma once
#include <cstdint>
#include <vector>

namespace chainrule {

using Shape = std::vector<std::int64_t>;


// Product of sizes; ValueError for negative sizes or a count that overflows int64.
std::int64_t checked_numel(const Shape& shape, const char* op);
std::int64_t numel_of(const Shape& shape);
Shape contiguous_strides(const Shape& shape);

// NumPy broadcasting of two shapes; ValueError naming `op` and both shapes otherwise.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);

// A possibly negative dim wrapped into [0, ndim); IndexError naming `op` when out of range.
// A 0-d tensor takes dim 0 or -1 as if it were 1-d (as PyTorch's reductions and transpose do)
// and gets 0 back, which is NOT an index into its (empty) shape: code that reads shape[d] or
// strides[d] must use existing_dim.
std::int64_t wrap_dim(std::int64_t dim, std::int64_t ndim, const char* op);
// wrap_dim for a dim that must exist (one whose size or stride is read): IndexError for any
// dim of a 0-d tensor.
std::int64_t existing_dim(std::int64_t dim, std::int64_t ndim, const char* op);
// A set of dims as a bitmask over [0, ndim); empty `dims` means all of them.
std::vector<bool> dim_mask(const std::vector<std::int64_t>& dims, std::int64_t ndim, const char* op);

}  // namespace chainrule
