// A reference-counted block of memory that tensors view, with a version counter that
// in-place writes bump (autograd checks it to refuse stale saved tensors).
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>

namespace chainrule {

class Storage {
  struct Private {};  // only allocate() and wrap() construct, through make_shared

 public:
  // Allocates nbytes, 64-byte aligned (2 MiB and huge pages from 4 MiB up); up to 64 bytes go
  // in the same allocation as the storage itself, 16-byte aligned. Throws MemoryError when the
  // memory is not there.
  static std::shared_ptr<Storage> allocate(std::int64_t nbytes);
  // Wraps memory owned by someone else (a NumPy array, say); `owner` keeps it alive and is
  // released when the last tensor viewing the storage goes.
  static std::shared_ptr<Storage> wrap(void* data, std::int64_t nbytes, std::shared_ptr<void> owner);

  // Public for std::make_shared (one allocation for storage and count), but unusable outside.
  Storage(Private, void* data, std::int64_t nbytes, std::shared_ptr<void> owner)
      : data_(data), nbytes_(nbytes), owner_(std::move(owner)) {}
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  ~Storage();

  void* data() const { return data_; }
  std::int64_t nbytes() const { return nbytes_; }
  // True for memory chainrule allocated; false for memory wrapped from NumPy, DLPack, ...
  bool owns_memory() const { return !owner_; }
  std::int64_t version() const { return version_.load(std::memory_order_relaxed); }
  void bump_version() { version_.fetch_add(1, std::memory_order_relaxed); }

 private:
  void* data_;
  std::int64_t nbytes_;
  std::shared_ptr<void> owner_;  // empty when we allocated data_ ourselves
  bool inline_data_ = false;     // data_ lives in this object's own allocation (small tensors)
  std::atomic<std::int64_t> version_{0};
};

}  // namespace chainrule
