#include "chainrule/storage.h"

#include <cstdlib>
#include <new>

#include "chainrule/errors.h"

namespace chainrule {

std::shared_ptr<Storage> Storage::allocate(std::int64_t nbytes) {
  constexpr std::size_t kAlignment = 64;
  // Round up so aligned_alloc's size is a multiple of the alignment; never allocate 0 bytes.
  const std::size_t rounded = (static_cast<std::size_t>(nbytes) + kAlignment - 1) / kAlignment * kAlignment;
  void* data = std::aligned_alloc(kAlignment, rounded == 0 ? kAlignment : rounded);
  if (data == nullptr) {
    fail<MemoryError>("cannot allocate ", nbytes, " bytes (", static_cast<double>(nbytes) / (1 << 30), " GiB)");
  }
  return std::make_shared<Storage>(Private{}, data, nbytes, nullptr);
}

std::shared_ptr<Storage> Storage::wrap(void* data, std::int64_t nbytes, std::shared_ptr<void> owner) {
  return std::make_shared<Storage>(Private{}, data, nbytes, std::move(owner));
}

Storage::~Storage() {
  if (!owner_) std::free(data_);
}

}  // namespace chainrule
