// One way into OpenMP for the kernels: a loop over [0, count) on a team of `threads`, or a plain
// loop when the team would be one thread. An OpenMP construct costs about a microsecond even
// when its `if` clause is false (libgomp still sets up a team), which is more than a small
// tensor's whole op: small work must not enter one at all.
#pragma once
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <vector>

namespace chainrule::detail {

// body(i) for every i in [0, count), iterations split statically over the team. The body must
// not throw when threads > 1 (callers collect errors and rethrow after the loop).
template <typename Body>
void parallel_for(int threads, std::int64_t count, Body&& body) {
  if (threads <= 1) {
    for (std::int64_t i = 0; i < count; ++i) body(i);
    return;
  }
#pragma omp parallel for num_threads(threads) schedule(static)
  for (std::int64_t i = 0; i < count; ++i) body(i);
}

// body(thread) once on each thread of a team of `threads`, thread = 0, 1, ... (the team's own
// numbering; body(0) is called directly when threads <= 1, even from inside another team,
// where omp_get_thread_num() would give the outer team's number).
template <typename Body>
void parallel_region(int threads, Body&& body) {
  if (threads <= 1) {
    body(0);
    return;
  }
#pragma omp parallel num_threads(threads)
  body(omp_get_thread_num());
}

// body(begin, end) over [0, count) in chunks, on a team of at most `threads`. Each thread owns
// an equal run of chunks and works through it from the front; a thread done with its own takes
// chunks from the back of the others' runs. A thread that joins late (one that had gone to
// sleep takes 30-50 us to wake here, and a busy neighbour can keep one off its core) then finds
// its run partly done instead of a fixed half still waiting for it, so the op takes about as
// long as the other thread alone needs, not that plus the wake-up; while each thread keeps to
// the same part of the arrays from call to call, as a static split does (taking chunks from one
// shared counter instead cost a 1e6-float relu 30%: the lines moved between the cores' caches).
// Chunks are whole multiples of `align` elements, about eight per thread. The body must not
// throw when threads > 1.
template <typename Body>
void parallel_chunks(int threads, std::int64_t count, std::int64_t align, Body&& body) {
  if (threads <= 1 || count <= align) {
    if (count > 0) body(std::int64_t{0}, count);
    return;
  }
  const std::int64_t wanted = (count + 8 * threads - 1) / (8 * threads);
  const std::int64_t chunk = std::max<std::int64_t>(align, (wanted + align - 1) / align * align);
  const std::int64_t chunks = (count + chunk - 1) / chunk;
  const std::int64_t per_thread = (chunks + threads - 1) / threads;
  // Thread t's run: chunks [first, end), packed in one word (first << 32 | end) so that the owner
  // (first + 1) and a thief (end - 1) can never take the same chunk.
  struct alignas(64) Run {
    std::atomic<std::uint64_t> range;
  };
  std::vector<Run> runs(static_cast<std::size_t>(threads));
  for (int t = 0; t < threads; ++t) {
    const std::uint64_t first = static_cast<std::uint64_t>(std::min(chunks, t * per_thread));
    const std::uint64_t end = static_cast<std::uint64_t>(std::min(chunks, (t + 1) * per_thread));
    runs[t].range.store(first << 32 | end, std::memory_order_relaxed);
  }
  auto take = [&](Run& run, bool front) -> std::int64_t {
    std::uint64_t range = run.range.load(std::memory_order_relaxed);
    for (;;) {
      const std::uint64_t first = range >> 32, end = range & 0xffffffffu;
      if (first >= end) return -1;
      const std::uint64_t taken = front ? (first + 1) << 32 | end : first << 32 | (end - 1);
      if (run.range.compare_exchange_weak(range, taken, std::memory_order_relaxed)) {
        return static_cast<std::int64_t>(front ? first : end - 1);
      }
    }
  };
  auto run_chunk = [&](std::int64_t c) { body(c * chunk, std::min(count, (c + 1) * chunk)); };
#pragma omp parallel num_threads(threads)
  {
    const int me = omp_get_thread_num();
    for (std::int64_t c = take(runs[me], true); c >= 0; c = take(runs[me], true)) run_chunk(c);
    for (int other = 1; other < threads; ++other) {
      Run& run = runs[(me + other) % threads];
      for (std::int64_t c = take(run, false); c >= 0; c = take(run, false)) run_chunk(c);
    }
  }
}

}  // namespace chainrule::detail
