#include "chainrule/storage.h"

#include <pthread.h>
#include <sys/mman.h>

#include <cstdlib>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

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

// Large buffers start on a 2 MiB boundary and ask for transparent huge pages: a fresh buffer
// then faults in 512 times fewer pages (as NumPy does for its large arrays).
constexpr std::size_t kHugePage = std::size_t{1} << 21;
constexpr std::size_t kHugeFrom = std::size_t{4} << 20;

struct Layout {
  std::size_t alignment, bytes;  // bytes: a multiple of the alignment, never 0 (aligned_alloc's rules)
};

Layout layout_of(std::int64_t nbytes) {
  const std::size_t alignment = static_cast<std::size_t>(nbytes) >= kHugeFrom ? kHugePage : 64;
  const std::size_t rounded = (static_cast<std::size_t>(nbytes) + alignment - 1) / alignment * alignment;
  return Layout{alignment, rounded == 0 ? alignment : rounded};
}

// Freed buffers of 128 KiB to 16 MiB, kept for the next request of the same size. A training
// step allocates the same sizes every iteration, and a buffer fresh from the system costs a page
// fault per 4 KiB page it touches: malloc hands buffers this large back to the system on free
// (mmap, or trimming the heap), so without this every step faulted its activations in again
// (the GRU char-RNN step, 64 x 32 x 128: 11 -> 8.7 ms). At most kKeptBytes are kept; past that
// a freed buffer goes back to the system as before. Off under AddressSanitizer, whose
// use-after-free checks need freed memory to stay freed.
class KeptBuffers {
 public:
  static constexpr std::size_t kFrom = std::size_t{128} << 10;
  static constexpr std::size_t kUpTo = std::size_t{16} << 20;
  static constexpr std::size_t kKeptBytes = std::size_t{128} << 20;

  static KeptBuffers& instance() {
    // Never destroyed: tensors may still be freed while the process exits.
    static KeptBuffers* kept = new KeptBuffers();
    return *kept;
  }
  void* take(std::size_t bytes) {
    if (!kEnabled || bytes < kFrom || bytes > kUpTo) return nullptr;
    std::lock_guard<std::mutex> lock(mutex_);
    auto found = by_size_.find(bytes);
    if (found == by_size_.end() || found->second.empty()) return nullptr;
    void* data = found->second.back();
    found->second.pop_back();
    kept_ -= bytes;
    return data;
  }
  bool keep(void* data, std::size_t bytes) {
    if (!kEnabled || bytes < kFrom || bytes > kUpTo) return false;
    std::lock_guard<std::mutex> lock(mutex_);
    if (kept_ + bytes > kKeptBytes) return false;
    try {  // called from ~Storage: no exception may leave
      by_size_[bytes].push_back(data);
    } catch (const std::bad_alloc&) {
      return false;
    }
    kept_ += bytes;
    return true;
  }

 private:
#if defined(__SANITIZE_ADDRESS__)
  static constexpr bool kEnabled = false;
#else
  static constexpr bool kEnabled = true;
#endif
  KeptBuffers() {
    // A child forked while another thread held the lock (a DataLoader worker) would wait for it
    // forever: the lock is taken around fork and released on both sides.
    pthread_atfork([] { instance().mutex_.lock(); }, [] { instance().mutex_.unlock(); },
                   [] { instance().mutex_.unlock(); });
  }
  std::mutex mutex_;
  std::unordered_map<std::size_t, std::vector<void*>> by_size_;
  std::size_t kept_ = 0;
};

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
  const Layout layout = layout_of(nbytes);
  void* data = KeptBuffers::instance().take(layout.bytes);
  if (data == nullptr) {
    data = std::aligned_alloc(layout.alignment, layout.bytes);
#ifdef MADV_HUGEPAGE
    if (layout.alignment == kHugePage && data != nullptr) madvise(data, layout.bytes, MADV_HUGEPAGE);  // a hint
#endif
  }
  if (data == nullptr) {
    fail<MemoryError>("cannot allocate ", nbytes, " bytes (", static_cast<double>(nbytes) / (1 << 30), " GiB)");
  }
  return noted(std::make_shared<Storage>(Private{}, data, nbytes, nullptr));
}

std::shared_ptr<Storage> Storage::wrap(void* data, std::int64_t nbytes, std::shared_ptr<void> owner) {
  return noted(std::make_shared<Storage>(Private{}, data, nbytes, std::move(owner)));
}

Storage::~Storage() {
  if (!owner_ && !inline_data_ && !KeptBuffers::instance().keep(data_, layout_of(nbytes_).bytes)) std::free(data_);
}

}  // namespace chainrule
