// One way into OpenMP for the kernels: a loop over [0, count) on a team of `threads`, or a plain
// loop when the team would be one thread. An OpenMP construct costs about a microsecond even
// when its `if` clause is false (libgomp still sets up a team), which is more than a small
// tensor's whole op: small work must not enter one at all.
#pragma once
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

namespace chainrule::detail {

// The end of a team's work: each thread but the first counts itself in and out, and the first
// (the calling thread) waits for the others to be out before it reaches the region's closing
// barrier, yielding the core while it waits. Reaching the barrier first, it would spin there for
// about a microsecond (GOMP_SPINCOUNT=300: python/chainrule/__init__.py) and then sleep, and
// waking it when the last thread arrives takes 30-50 us here (a 256^3 product on two threads
// took 40 us from both threads' last tile to the region's end, a tenth of its time); arriving
// last, it passes the barrier at once. The wait is bounded: 200 us while every thread is at work,
// 50 us (about a wake-up) while one has not started, which with a busy neighbour on the other
// core may not run for milliseconds; the first thread then sleeps at the barrier as before,
// leaving its core to the late one.
class TeamEnd {
 public:
  void start(int thread) {
    if (thread != 0) started_.fetch_add(1, std::memory_order_relaxed);
  }
  void finish(int thread, int team) {
    if (thread != 0) {
      done_.fetch_add(1, std::memory_order_release);
      return;
    }
    if (done_.load(std::memory_order_acquire) >= team - 1) return;
    using Clock = std::chrono::steady_clock;
    const Clock::time_point since = Clock::now();
    while (done_.load(std::memory_order_acquire) < team - 1) {
      const bool all_started = started_.load(std::memory_order_relaxed) >= team - 1;
      if (Clock::now() - since > std::chrono::microseconds(all_started ? 200 : 50)) return;
      std::this_thread::yield();
    }
  }

 private:
  std::atomic<int> started_{0}, done_{0};
};

// body(i) for every i in [0, count), iterations split statically over the team (as OpenMP's
// schedule(static): thread t of T takes the t-th of T runs of near-equal length), the first
// thread ending last (TeamEnd). The body must not throw when threads > 1 (callers collect
// errors and rethrow after the loop).
template <typename Body>
void parallel_for(int threads, std::int64_t count, Body&& body) {
  if (threads <= 1) {
    for (std::int64_t i = 0; i < count; ++i) body(i);
    return;
  }
  TeamEnd end;
#pragma omp parallel num_threads(threads)
  {
    const int thread = omp_get_thread_num(), team = omp_get_num_threads();
    end.start(thread);
    const std::int64_t share = count / team, longer = count % team;
    const std::int64_t first = thread * share + std::min<std::int64_t>(thread, longer);
    const std::int64_t last = first + share + (thread < longer ? 1 : 0);
    for (std::int64_t i = first; i < last; ++i) body(i);
    end.finish(thread, team);
  }
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
  TeamEnd end;
#pragma omp parallel num_threads(threads)
  {
    const int thread = omp_get_thread_num();
    end.start(thread);
    body(thread);
    end.finish(thread, omp_get_num_threads());
  }
}

// parallel_chunks (below) with chunks_per_thread chunks a thread (at least; whole multiples of `align`)
// and body(thread, begin, end), thread being the team's number of the thread that runs the chunk
// (0 when the team is one thread): for bodies that keep state per thread from chunk to chunk.
template <typename Body>
void parallel_chunks_of(int threads, std::int64_t count, std::int64_t align, std::int64_t chunks_per_thread,
                        Body&& body) {
  if (threads <= 1 || count <= align) {
    if (count > 0) body(0, std::int64_t{0}, count);
    return;
  }
  const std::int64_t wanted = (count + chunks_per_thread * threads - 1) / (chunks_per_thread * threads);
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
  auto run_chunk = [&](int thread, std::int64_t c) { body(thread, c * chunk, std::min(count, (c + 1) * chunk)); };
  TeamEnd team_end;
#pragma omp parallel num_threads(threads)
  {
    const int me = omp_get_thread_num();
    team_end.start(me);
    for (std::int64_t c = take(runs[me], true); c >= 0; c = take(runs[me], true)) run_chunk(me, c);
    for (int other = 1; other < threads; ++other) {
      Run& run = runs[(me + other) % threads];
      for (std::int64_t c = take(run, false); c >= 0; c = take(run, false)) run_chunk(me, c);
    }
    team_end.finish(me, omp_get_num_threads());
  }
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
  parallel_chunks_of(threads, count, align, 8, [&](int, std::int64_t begin, std::int64_t end) { body(begin, end); });
}

}  // namespace chainrule::detail
