// A dense strided tensor: a view (shape, strides, offset, dtype) of a shared Storage.
// Copying a Tensor copies the view, never the elements.
#pragma once
#include <cstdint>
#include <memory>

#include "chainrule/dtype.h"
#include "chainrule/shape.h"
#include "chainrule/storage.h"

namespace chainrule {

class Tensor {
 public:
  Tensor() = default;
  Tensor(std::shared_ptr<Storage> storage, Shape shape, Shape strides, std::int64_t offset,
         DType dtype);

  // A fresh contiguous tensor (elements uninitialised).
  static Tensor empty(const Shape& shape, DType dtype);

  const Shape& shape() const { return shape_; }
  const Shape& strides() const { return strides_; }  // in elements
  std::int64_t offset() const { return offset_; }    // in elements
  DType dtype() const { return dtype_; }
  std::int64_t ndim() const { return static_cast<std::int64_t>(shape_.size()); }
  std::int64_t numel() const { return numel_; }
  std::int64_t size(std::int64_t dim) const;
  bool is_contiguous() const;
  bool defined() const { return storage_ != nullptr; }

  const std::shared_ptr<Storage>& storage() const { return storage_; }
  std::int64_t version() const { return storage_->version(); }
  void bump_version() const { storage_->bump_version(); }
  bool shares_storage(const Tensor& other) const { return storage_ == other.storage_; }

  void* data() const {
    return static_cast<char*>(storage_->data()) + offset_ * itemsize(dtype_);
  }
  template <typename T>
  T* data_as() const { return static_cast<T*>(data()); }

  // Views: they share storage with this tensor.
  Tensor as_strided(Shape shape, Shape strides, std::int64_t offset) const;
  Tensor transpose(std::int64_t dim0, std::int64_t dim1) const;
  Tensor permute(const std::vector<std::int64_t>& dims) const;
  Tensor expand(const Shape& shape) const;     // -1 keeps a size
  Tensor broadcast_to(const Shape& shape, const char* op) const;
  Tensor squeeze() const;
  Tensor squeeze(std::int64_t dim) const;
  Tensor unsqueeze(std::int64_t dim) const;
  Tensor slice(std::int64_t dim, std::int64_t start, std::int64_t stop, std::int64_t step) const;
  Tensor select(std::int64_t dim, std::int64_t index) const;
  // A view with a new shape (one -1 allowed), or ValueError when the strides cannot express it.
  Tensor view(const Shape& shape) const;
  // view() when possible, else a contiguous copy.
  Tensor reshape(const Shape& shape) const;
  Tensor flatten(std::int64_t start_dim, std::int64_t end_dim) const;

  // Copies: always new storage.
  Tensor contiguous() const;  // returns *this when already contiguous
  Tensor clone() const;
  Tensor to(DType dtype) const;  // returns *this when the dtype matches

 private:
  std::shared_ptr<Storage> storage_;
  Shape shape_;
  Shape strides_;
  std::int64_t offset_ = 0;
  std::int64_t numel_ = 0;
  DType dtype_ = DType::Float32;
};

// The shape with one -1 resolved against numel; ValueError when impossible.
Shape infer_shape(const Shape& shape, std::int64_t numel, const char* op);

}  // namespace chainrule
