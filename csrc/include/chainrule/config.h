// Process-wide settings: thread count and the SIMD variant chosen at run time.
#pragma once
#include <cstdint>
#include <string>

namespace chainrule {

enum class Isa : std::int8_t { Generic = 0, Avx2 = 1, Avx512 = 2 };

// The variant in use: the best the CPU supports, unless CHAINRULE_ISA=generic|avx2|avx512
// names another (one the CPU supports).
Isa active_isa();
const char* isa_name(Isa isa);
bool cpu_supports(Isa isa);

// Calls the variant for `isa` of a function compiled once per ISA (generic, avx2, avx512, each
// in its own file with its own flags) and returns its result.
template <typename Generic, typename Avx2, typename Avx512>
auto call_for_isa(Isa isa, Generic generic, Avx2 avx2, Avx512 avx512) {
  switch (isa) {
    case Isa::Avx512: return avx512();
    case Isa::Avx2: return avx2();
    case Isa::Generic: break;
  }
  return generic();
}

// The data cache sizes in bytes (per core for L1 and L2) the GEMM sizes its blocks from: the
// CPU's, read once from Linux's sysfs (else sysconf, else 32 KiB / 256 KiB / 8 MiB), unless the
// environment variable CHAINRULE_CACHE_SIZES names others, e.g. "l1d=32K,l2=512K,l3=32M" (any
// of the three; K, M, G are powers of 1024), so that one machine can run the blocking chosen for
// another's caches. A value that does not parse is ignored (the Python package warns at import).
struct CacheSizes {
  std::int64_t l1, l2, l3;
};
const CacheSizes& cache_sizes();
const CacheSizes& detected_cache_sizes();
// `spec` in CHAINRULE_CACHE_SIZES's spelling applied over `base`; throws ValueError naming the
// bad entry when it does not parse or the sizes do not grow from L1 to L3.
CacheSizes parse_cache_sizes(const std::string& spec, const CacheSizes& base);

void set_num_threads(int n);
int get_num_threads();
// Threads worth using for `work` units when one thread should get at least `grain` of them.
int threads_for(std::int64_t work, std::int64_t grain);

// Elements per thread below which an elementwise op runs on fewer threads. Waking an OpenMP
// thread that has gone to sleep (chainrule's spin only briefly: python/chainrule/__init__.py)
// costs 30-50 us here, so an extra thread joins only when it gets about 30 us of an add's work:
// adds of 3e5 elements measured the same on 1 and 2 threads, of 6e5 and more faster on 2, of
// 1e5 slower (PyTorch's grain is 32768 elements).
constexpr std::int64_t kElementwiseGrain = std::int64_t{1} << 18;
// For the transcendental kernels (exp, sigmoid, tanh: 2-3x an add's work per element).
constexpr std::int64_t kTranscendentalGrain = std::int64_t{1} << 18;
// For reductions that split memory otherwise than the elementwise ops do (the convolution's bias
// gradient: channels, each across the batch), whose threads gain nothing from the caches the
// op before left behind (sums read at 40-50 GB/s: a thread's share must be larger). The sums
// of reduce.cpp split as the elementwise ops and take their grain.
constexpr std::int64_t kReductionGrain = std::int64_t{1} << 21;

}  // namespace chainrule
