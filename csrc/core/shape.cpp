#include "chainrule/shape.h"

#include "chainrule/errors.h"

namespace chainrule {

std::int64_t checked_numel(const Shape& shape, const char* op) {
  std::int64_t n = 1;
  bool overflow = false;
  for (const std::int64_t size : shape) {
    if (size < 0) fail<ValueError>(op, ": negative size in shape ", shape);
  }
  for (const std::int64_t size : shape) {
    if (size == 0) return 0;
    if (__builtin_mul_overflow(n, size, &n)) overflow = true;
  }
  if (overflow) fail<ValueError>(op, ": shape ", shape, " has more elements than int64 can count");
  return n;
}

std::int64_t numel_of(const Shape& shape) {
  // A zero anywhere makes the count 0, even when the other sizes' product overflows.
  std::uint64_t n = 1;
  for (const std::int64_t size : shape) {
    if (size == 0) return 0;
    n *= static_cast<std::uint64_t>(size);
  }
  return static_cast<std::int64_t>(n);
}

Shape contiguous_strides(const Shape& shape) {
  // Unsigned arithmetic: a zero-element tensor may have dims whose product overflows, and
  // its strides are never used to address memory.
  Shape strides(shape.size());
  std::uint64_t stride = 1;
  for (std::size_t i = shape.size(); i-- > 0;) {
    strides[i] = static_cast<std::int64_t>(stride);
    stride *= shape[i] > 1 ? static_cast<std::uint64_t>(shape[i]) : 1;
  }
  return strides;
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  const std::size_t ndim = a.size() > b.size() ? a.size() : b.size();
  Shape out(ndim);
  for (std::size_t i = 0; i < ndim; ++i) {
    const std::int64_t da = i < ndim - a.size() ? 1 : a[i - (ndim - a.size())];
    const std::int64_t db = i < ndim - b.size() ? 1 : b[i - (ndim - b.size())];
    if (da != db && da != 1 && db != 1) {
      fail<ValueError>(op, ": shapes ", a, " and ", b, " cannot be broadcast together (dim ",
                       static_cast<std::int64_t>(i) - static_cast<std::int64_t>(ndim), ": ", da,
                       " != ", db, ")");
    }
    out[i] = da == 1 ? db : da;
  }
  return out;
}

std::int64_t wrap_dim(std::int64_t dim, std::int64_t ndim, const char* op) {
  const std::int64_t lo = ndim == 0 ? -1 : -ndim;
  const std::int64_t hi = ndim == 0 ? 0 : ndim - 1;
  if (dim < lo || dim > hi) {
    fail<IndexError>(op, ": dim ", dim, " is out of range for a tensor with ", ndim,
                     " dims (expected a dim in [", lo, ", ", hi, "])");
  }
  if (dim < 0) dim += ndim == 0 ? 1 : ndim;
  return dim;
}

std::int64_t existing_dim(std::int64_t dim, std::int64_t ndim, const char* op) {
  if (ndim == 0) fail<IndexError>(op, ": dim ", dim, " is out of range: the tensor is 0-d (it has no dims)");
  return wrap_dim(dim, ndim, op);
}

std::vector<bool> dim_mask(const std::vector<std::int64_t>& dims, std::int64_t ndim, const char* op) {
  std::vector<bool> mask(static_cast<std::size_t>(ndim), dims.empty());
  for (const std::int64_t dim : dims) {
    const std::int64_t d = wrap_dim(dim, ndim, op);
    if (ndim == 0) continue;
    if (mask[static_cast<std::size_t>(d)]) fail<ValueError>(op, ": dim ", d, " appears more than once");
    mask[static_cast<std::size_t>(d)] = true;
  }
  return mask;
}

}  // namespace chainrule
