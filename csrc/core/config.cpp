#include "chainrule/config.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>

#include "chainrule/errors.h"

namespace chainrule {
namespace {

Isa detect_best_isa() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl")) {
    return Isa::Avx512;
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::Avx2;
  return Isa::Generic;
}

Isa choose_isa() {
  const Isa best = detect_best_isa();
  const char* forced = std::getenv("CHAINRULE_ISA");
  if (forced == nullptr || *forced == '\0') return best;
  for (const Isa isa : {Isa::Generic, Isa::Avx2, Isa::Avx512}) {
    if (std::strcmp(forced, isa_name(isa)) == 0) {
      // Asking for more than the CPU has would crash on the first instruction: fall back.
      return isa <= best ? isa : best;
    }
  }
  return best;
}

std::atomic<int> g_num_threads{0};  // 0: not set yet, use OpenMP's default

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Generic: return "generic";
    case Isa::Avx2: return "avx2";
    case Isa::Avx512: return "avx512";
  }
  return "?";
}

bool cpu_supports(Isa isa) { return isa <= detect_best_isa(); }

Isa active_isa() {
  static const Isa isa = choose_isa();
  return isa;
}

void set_num_threads(int n) {
  if (n < 1) fail<ValueError>("set_num_threads: expected a positive thread count, got ", n);
  g_num_threads.store(n);
}

int get_num_threads() {
  const int n = g_num_threads.load();
  return n > 0 ? n : omp_get_max_threads();
}

int threads_for(std::int64_t work, std::int64_t grain) {
  const std::int64_t by_work = grain > 0 ? work / grain : work;
  const std::int64_t n = std::min<std::int64_t>(get_num_threads(), by_work);
  return n < 1 ? 1 : static_cast<int>(n);
}

}  // namespace chainrule
