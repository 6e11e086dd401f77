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

const CacheSizes& detected_cache_sizes() {
  static const CacheSizes sizes{cache_bytes(1, _SC_LEVEL1_DCACHE_SIZE, 32 << 10),
                                cache_bytes(2, _SC_LEVEL2_CACHE_SIZE, 256 << 10),
                                cache_bytes(3, _SC_LEVEL3_CACHE_SIZE, 8 << 20)};
  return sizes;
}

CacheSizes parse_cache_sizes(const std::string& spec, const CacheSizes& base) {
  CacheSizes sizes = base;
  std::size_t start = 0;
  while (start <= spec.size()) {
    const std::size_t comma = std::min(spec.find(',', start), spec.size());
    const std::string entry = spec.substr(start, comma - start);
    start = comma + 1;
    if (entry.empty()) continue;
    const std::size_t equals = entry.find('=');
    const std::string name = entry.substr(0, std::min(equals, entry.size()));
    std::int64_t* target = name == "l1d" || name == "l1" ? &sizes.l1
                           : name == "l2"                ? &sizes.l2
                           : name == "l3"                ? &sizes.l3
                                                         : nullptr;
    if (target == nullptr || equals == std::string::npos) {
      fail<ValueError>("CHAINRULE_CACHE_SIZES: '", entry, "' in '", spec,
                       "' is not l1d=SIZE, l2=SIZE or l3=SIZE (e.g. l1d=32K,l2=512K,l3=32M)");
    }
    const std::string value = entry.substr(equals + 1);
    std::size_t digits = 0;
    while (digits < value.size() && value[digits] >= '0' && value[digits] <= '9') ++digits;
    std::string unit = value.substr(digits);
    if (unit.size() > 1 && (unit.back() == 'B' || unit.back() == 'b')) unit.pop_back();  // "32KiB", "32KB"
    if (unit.size() > 1 && unit.back() == 'i') unit.pop_back();
    const int shift = unit.empty() ? 0 : unit == "K" || unit == "k" ? 10 : unit == "M" || unit == "m" ? 20
                      : unit == "G" || unit == "g" ? 30 : -1;
    constexpr std::int64_t kMaxBytes = std::int64_t{1} << 40;
    const std::int64_t number = digits > 0 && digits <= 15 ? std::stoll(value.substr(0, digits)) : 0;
    const std::int64_t bytes = shift < 0 || number > (kMaxBytes >> shift) ? 0 : number << shift;
    if (bytes < (std::int64_t{1} << 10) || bytes > kMaxBytes) {
      fail<ValueError>("CHAINRULE_CACHE_SIZES: '", entry, "' in '", spec,
                       "': expected a size from 1K to 1024G such as 48K, 2M or 1048576 (bytes)");
    }
    *target = bytes;
  }
  if (!(sizes.l1 <= sizes.l2 && sizes.l2 <= sizes.l3)) {
    fail<ValueError>("CHAINRULE_CACHE_SIZES: '", spec, "' gives L1d ", sizes.l1, ", L2 ", sizes.l2, ", L3 ",
                     sizes.l3, " bytes (with the detected sizes for those not named): each must be at most the next");
  }
  return sizes;
}

const CacheSizes& cache_sizes() {
  static const CacheSizes sizes = [] {
    const char* spec = std::getenv("CHAINRULE_CACHE_SIZES");
    if (spec == nullptr || *spec == '\0') return detected_cache_sizes();
    try {
      return parse_cache_sizes(spec, detected_cache_sizes());
    } catch (const ValueError&) {
      return detected_cache_sizes();  // chainrule/__init__.py warns with the parser's message
    }
  }();
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
