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
std::int64_t wrap_dim(std::int64_t dim, std::int64_t ndim, const char* op);
// A set of dims as a bitmask over [0, ndim); empty `dims` means all of them.
std::vector<bool> dim_mask(const std::vector<std::int64_t>& dims, std::int64_t ndim, const char* op);

}  // namespace chainrule
