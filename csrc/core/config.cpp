#include "chainrule/config.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <unistd.h>

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

// The size of CPU 0's level-`level` data or unified cache from sysfs ("48K"), or 0.
std::int64_t sysfs_cache_bytes(int level) {
  for (int index = 0; index < 8; ++index) {
    const std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(index) + "/";
    std::ifstream level_file(dir + "level"), type_file(dir + "type"), size_file(dir + "size");
    int found_level = 0;
    std::string type, size;
    if (!(level_file >> found_level) || !(type_file >> type) || !(size_file >> size)) continue;
    if (found_level != level || type == "Instruction" || size.empty()) continue;
    std::int64_t bytes = std::atoll(size.c_str());
    if (size.back() == 'K') bytes <<= 10;
    if (size.back() == 'M') bytes <<= 20;
    return bytes;
  }
  return 0;
}

std::int64_t cache_bytes(int level, int sysconf_name, std::int64_t fallback) {
  std::int64_t bytes = sysfs_cache_bytes(level);
  if (bytes <= 0) bytes = sysconf(sysconf_name);
  return bytes > 0 ? bytes : fallback;
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

const CacheSizes& cache_sizes() {
  static const CacheSizes sizes{cache_bytes(1, _SC_LEVEL1_DCACHE_SIZE, 32 << 10),
                                cache_bytes(2, _SC_LEVEL2_CACHE_SIZE, 256 << 10),
                                cache_bytes(3, _SC_LEVEL3_CACHE_SIZE, 8 << 20)};
  return sizes;
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
