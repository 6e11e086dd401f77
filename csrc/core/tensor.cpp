#include "chainrule/tensor.h"

#include <algorithm>

#include "chainrule/errors.h"
#include "chainrule/ops.h"

namespace chainrule {

Tensor::Tensor(std::shared_ptr<Storage> storage, Shape shape, Shape strides, std::int64_t offset,
               DType dtype)
    : storage_(std::move(storage)),
      shape_(std::move(shape)),
      strides_(std::move(strides)),
      offset_(offset),
      numel_(numel_of(shape_)),
      dtype_(dtype) {}

Tensor Tensor::empty(const Shape& shape, DType dtype) {
  const std::int64_t n = checked_numel(shape, "empty");
  std::int64_t nbytes = 0;
  if (__builtin_mul_overflow(n, itemsize(dtype), &nbytes)) {
    fail<ValueError>("empty: shape ", shape, " of ", dtype, " needs more bytes than int64 can count");
  }
  try {
    return Tensor(Storage::allocate(nbytes), shape, contiguous_strides(shape), 0, dtype);
  } catch (const MemoryError& error) {
    fail<MemoryError>("out of memory for a tensor of shape ", shape, " and dtype ", dtype, ": ", error.what());
  }
}

std::int64_t Tensor::size(std::int64_t dim) const { return shape_[existing_dim(dim, ndim(), "size")]; }

bool Tensor::is_contiguous() const {
  std::int64_t expected = 1;
  for (std::size_t i = shape_.size(); i-- > 0;) {
    if (shape_[i] == 1) continue;
    if (strides_[i] != expected) return numel_ == 0;
    expected *= shape_[i];
  }
  return true;
}

Tensor Tensor::as_strided(Shape shape, Shape strides, std::int64_t offset) const {
  return Tensor(storage_, std::move(shape), std::move(strides), offset, dtype_);
}

Tensor Tensor::transpose(std::int64_t dim0, std::int64_t dim1) const {
  if (ndim() == 0) {
    wrap_dim(dim0, 0, "transpose");
    wrap_dim(dim1, 0, "transpose");
    return *this;
  }
  const std::int64_t d0 = wrap_dim(dim0, ndim(), "transpose");
  const std::int64_t d1 = wrap_dim(dim1, ndim(), "transpose");
  Shape shape = shape_, strides = strides_;
  std::swap(shape[d0], shape[d1]);
  std::swap(strides[d0], strides[d1]);
  return as_strided(shape, strides, offset_);
}

Tensor Tensor::permute(const std::vector<std::int64_t>& dims) const {
  if (static_cast<std::int64_t>(dims.size()) != ndim()) {
    fail<ValueError>("permute: got ", dims.size(), " dims for a tensor of shape ", shape_,
                     " with ", ndim(), " dims");
  }
  Shape shape(dims.size()), strides(dims.size());
  std::vector<bool> seen(dims.size(), false);
  for (std::size_t i = 0; i < dims.size(); ++i) {
    const std::int64_t d = wrap_dim(dims[i], ndim(), "permute");
    if (seen[d]) fail<ValueError>("permute: dim ", d, " appears more than once in the permutation");
    seen[d] = true;
    shape[i] = shape_[d];
    strides[i] = strides_[d];
  }
  return as_strided(shape, strides, offset_);
}

Tensor Tensor::expand(const Shape& target) const {
  if (target.size() < shape_.size()) {
    fail<ValueError>("expand: cannot expand shape ", shape_, " to ", target,
                     " (the target has fewer dims)");
  }
  const std::size_t lead = target.size() - shape_.size();
  Shape shape(target.size()), strides(target.size());
  for (std::size_t i = 0; i < target.size(); ++i) {
    const bool existing = i >= lead;
    const std::int64_t size = existing ? shape_[i - lead] : 1;
    const std::int64_t want = target[i];
    if (want == -1) {
      if (!existing) fail<ValueError>("expand: -1 is not allowed for the new leading dim ", i, " in ", target);
      shape[i] = size;
      strides[i] = strides_[i - lead];
    } else if (want < 0) {
      fail<ValueError>("expand: negative size in shape ", target);
    } else if (size == want) {
      shape[i] = size;
      strides[i] = existing ? strides_[i - lead] : 0;
    } else if (size == 1) {
      shape[i] = want;
      strides[i] = 0;
    } else {
      fail<ValueError>("expand: cannot expand shape ", shape_, " to ", target, " (dim ", i,
                       ": size ", size, " is not 1 and differs from ", want, ")");
    }
  }
  checked_numel(shape, "expand");
  return as_strided(shape, strides, offset_);
}

Tensor Tensor::broadcast_to(const Shape& target, const char* op) const {
  if (target == shape_) return *this;
  const Shape result = broadcast_shapes(shape_, target, op);
  if (result != target) {
    fail<ValueError>(op, ": shape ", shape_, " cannot be broadcast to ", target);
  }
  return expand(target);
}

Tensor Tensor::squeeze() const {
  Shape shape, strides;
  for (std::size_t i = 0; i < shape_.size(); ++i) {
    if (shape_[i] != 1) {
      shape.push_back(shape_[i]);
      strides.push_back(strides_[i]);
    }
  }
  return as_strided(shape, strides, offset_);
}

Tensor Tensor::squeeze(std::int64_t dim) const {
  const std::int64_t d = wrap_dim(dim, ndim(), "squeeze");
  if (ndim() == 0 || shape_[d] != 1) return *this;
  Shape shape = shape_, strides = strides_;
  shape.erase(shape.begin() + d);
  strides.erase(strides.begin() + d);
  return as_strided(shape, strides, offset_);
}

Tensor Tensor::unsqueeze(std::int64_t dim) const {
  const std::int64_t d = wrap_dim(dim, ndim() + 1, "unsqueeze");
  Shape shape = shape_, strides = strides_;
  const std::int64_t stride = d < ndim() ? strides_[d] * shape_[d] : 1;
  shape.insert(shape.begin() + d, 1);
  strides.insert(strides.begin() + d, stride);
  return as_strided(shape, strides, offset_);
}

Tensor Tensor::slice(std::int64_t dim, std::int64_t start, std::int64_t stop, std::int64_t step) const {
  const std::int64_t d = existing_dim(dim, ndim(), "slice");
  if (step <= 0) fail<ValueError>("slice: step must be positive, got ", step);
  const std::int64_t size = shape_[d];
  auto clip = [size](std::int64_t i) {
    if (i < 0) i += size;
    return std::clamp<std::int64_t>(i, 0, size);
  };
  start = clip(start);
  stop = std::max(clip(stop), start);
  Shape shape = shape_, strides = strides_;
  shape[d] = stop > start ? (stop - start - 1) / step + 1 : 0;  // no overflow for huge steps
  // With two or more elements, step < size and the product stays within the storage; a
  // single element never uses its stride (and a huge step would overflow it).
  strides[d] = shape[d] > 1 ? strides_[d] * step : strides_[d];
  return as_strided(shape, strides, offset_ + start * strides_[d]);
}

Tensor Tensor::select(std::int64_t dim, std::int64_t index) const {
  const std::int64_t d = existing_dim(dim, ndim(), "select");
  const std::int64_t size = shape_[d];
  if (index < -size || index >= size) {
    fail<IndexError>("index ", index, " is out of bounds for dim ", d, " with size ", size);
  }
  if (index < 0) index += size;
  Shape shape = shape_, strides = strides_;
  shape.erase(shape.begin() + d);
  strides.erase(strides.begin() + d);
  return as_strided(shape, strides, offset_ + index * strides_[d]);
}

Shape infer_shape(const Shape& shape, std::int64_t numel, const char* op) {
  Shape out = shape;
  std::int64_t known = 1;
  std::int64_t infer_at = -1;
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (out[i] == -1) {
      if (infer_at >= 0) fail<ValueError>(op, ": only one dim can be -1, got shape ", shape);
      infer_at = static_cast<std::int64_t>(i);
    } else if (out[i] < 0) {
      fail<ValueError>(op, ": negative size in shape ", shape);
    } else if (__builtin_mul_overflow(known, out[i], &known)) {
      fail<ValueError>(op, ": shape ", shape, " has more elements than int64 can count");
    }
  }
  if (infer_at >= 0) {
    if (known == 0 || numel % known != 0) {
      fail<ValueError>(op, ": shape ", shape, " is invalid for input of size ", numel);
    }
    out[infer_at] = numel / known;
  } else if (known != numel) {
    fail<ValueError>(op, ": shape ", shape, " is invalid for input of size ", numel);
  }
  return out;
}

namespace {

// Strides for viewing a tensor as `target` without copying, or false when the memory layout
// cannot express it. Groups of old dims that are contiguous with each other can be split and
// merged freely; a new dim may not straddle two such groups (PyTorch's computeStride).
bool view_strides(const Shape& old_shape, const Shape& old_strides, const Shape& target, Shape* out) {
  Shape strides(target.size());
  if (old_shape.empty()) {
    std::fill(strides.begin(), strides.end(), 1);
    *out = strides;
    return true;
  }
  if (numel_of(old_shape) == 0) {
    *out = contiguous_strides(target);
    return true;
  }
  std::int64_t view_d = static_cast<std::int64_t>(target.size()) - 1;
  std::int64_t chunk_base_stride = old_strides.back();
  std::int64_t tensor_numel = 1;
  std::int64_t view_numel = 1;
  for (std::int64_t tensor_d = static_cast<std::int64_t>(old_shape.size()) - 1; tensor_d >= 0; --tensor_d) {
    tensor_numel *= old_shape[tensor_d];
    if (tensor_d == 0 ||
        (old_shape[tensor_d - 1] != 1 && old_strides[tensor_d - 1] != tensor_numel * chunk_base_stride)) {
      while (view_d >= 0 && (view_numel < tensor_numel || target[view_d] == 1)) {
        strides[view_d] = view_numel * chunk_base_stride;
        view_numel *= target[view_d];
        --view_d;
      }
      if (view_numel != tensor_numel) return false;
      if (tensor_d > 0) {
        chunk_base_stride = old_strides[tensor_d - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  if (view_d != -1) return false;
  *out = strides;
  return true;
}

}  // namespace

Tensor Tensor::view(const Shape& shape) const {
  const Shape target = infer_shape(shape, numel_, "view");
  Shape strides;
  if (!view_strides(shape_, strides_, target, &strides)) {
    fail<ValueError>("view: shape ", target, " is not compatible with the strides ", strides_,
                     " of a tensor of shape ", shape_, "; use reshape() instead");
  }
  return as_strided(target, strides, offset_);
}

Tensor Tensor::reshape(const Shape& shape) const {
  const Shape target = infer_shape(shape, numel_, "reshape");
  Shape strides;
  if (view_strides(shape_, strides_, target, &strides)) return as_strided(target, strides, offset_);
  return contiguous().as_strided(target, contiguous_strides(target), 0);
}

Tensor Tensor::flatten(std::int64_t start_dim, std::int64_t end_dim) const {
  if (ndim() == 0) return reshape({1});
  const std::int64_t s = wrap_dim(start_dim, ndim(), "flatten");
  const std::int64_t e = wrap_dim(end_dim, ndim(), "flatten");
  if (s > e) fail<ValueError>("flatten: start_dim ", s, " comes after end_dim ", e);
  Shape shape(shape_.begin(), shape_.begin() + s);
  std::int64_t merged = 1;
  for (std::int64_t i = s; i <= e; ++i) merged *= shape_[i];
  shape.push_back(merged);
  shape.insert(shape.end(), shape_.begin() + e + 1, shape_.end());
  return reshape(shape);
}

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  return clone();
}

Tensor Tensor::clone() const {
  Tensor out = empty(shape_, dtype_);
  copy_into_new(out, *this);
  return out;
}

Tensor Tensor::to(DType dtype) const {
  if (dtype == dtype_) return *this;
  Tensor out = empty(shape_, dtype);
  copy_into_new(out, *this);
  return out;
}

}  // namespace chainrule
