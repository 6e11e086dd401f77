#include "chainrule/storage.h"

#include <sys/mman.h>

#include <cstdlib>
#include <new>

#include "chainrule/errors.h"
#include "chainrule/record.h"

namespace chainrule {

namespace {

// Memory that appears outside any op while cr.compile records: the recorder must know that its
// contents do not come from a recorded op (record.h).
std::shared_ptr<Storage> noted(std::shared_ptr<Storage> storage) {
  if (record::Recorder* recorder = record::active()) recorder->allocated(storage);
  return storage;
}

}  // namespace

std::shared_ptr<Storage> Storage::allocate(std::int64_t nbytes) {
  // A small tensor's bytes (up to 16 floats) share one allocation with the storage and its
  // reference count: a tiny model makes and frees dozens of them per step, and an aligned
  // allocation of its own would cost more than the arithmetic.
  constexpr std::int64_t kInlineBytes = 64;
  struct SmallStorage final : Storage {
    SmallStorage() : Storage(Private{}, nullptr, 0, nullptr) {}
    alignas(16) unsigned char bytes[kInlineBytes];  // the default new alignment: no aligned allocation
  };
  if (nbytes >= 0 && nbytes <= kInlineBytes) {
    auto small = std::make_shared<SmallStorage>();
    small->data_ = small->bytes;
    small->nbytes_ = nbytes;
    small->inline_data_ = true;
    return noted(std::move(small));
  }
  // Large buffers start on a 2 MiB boundary and ask for transparent huge pages: a fresh
  // buffer then faults in 512 times fewer pages (as NumPy does for its large arrays).
  constexpr std::size_t kHugePage = std::size_t{1} << 21;
  constexpr std::size_t kHugeFrom = std::size_t{4} << 20;
  const bool huge = static_cast<std::size_t>(nbytes) >= kHugeFrom;
  const std::size_t alignment = huge ? kHugePage : 64;
  // Round up so aligned_alloc's size is a multiple of the alignment; never allocate 0 bytes.
  const std::size_t rounded = (static_cast<std::size_t>(nbytes) + alignment - 1) / alignment * alignment;
  void* data = std::aligned_alloc(alignment, rounded == 0 ? alignment : rounded);
#ifdef MADV_HUGEPAGE
  if (huge && data != nullptr) madvise(data, rounded, MADV_HUGEPAGE);  // a hint: failure is fine
#endif
  if (data == nullptr) {
    fail<MemoryError>("cannot allocate ", nbytes, " bytes (", static_cast<double>(nbytes) / (1 << 30), " GiB)");
  }
  return noted(std::make_shared<Storage>(Private{}, data, nbytes, nullptr));
}

std::shared_ptr<Storage> Storage::wrap(void* data, std::int64_t nbytes, std::shared_ptr<void> owner) {
  return noted(std::make_shared<Storage>(Private{}, data, nbytes, std::move(owner)));
}

Storage::~Storage() {
  if (!owner_ && !inline_data_) std::free(data_);
}

}  // namespace chainrule
