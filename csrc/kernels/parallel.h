// One way into OpenMP for the kernels: a loop over [0, count) on a team of `threads`, or a plain
// loop when the team would be one thread. An OpenMP construct costs about a microsecond even
// when its `if` clause is false (libgomp still sets up a team), which is more than a small
// tensor's whole op: small work must not enter one at all.
#pragma once
#include <cstdint>

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

// body() once on each thread of a team of `threads` (with omp_get_thread_num() telling them
// apart); called directly when threads <= 1.
template <typename Body>
void parallel_region(int threads, Body&& body) {
  if (threads <= 1) {
    body();
    return;
  }
#pragma omp parallel num_threads(threads)
  body();
}

}  // namespace chainrule::detail
