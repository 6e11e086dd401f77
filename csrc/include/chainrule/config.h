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

void set_num_threads(int n);
int get_num_threads();
// Threads worth using for `work` units when one thread should get at least `grain` of them.
int threads_for(std::int64_t work, std::int64_t grain);

// PyTorch's grain: below this many elements an elementwise op runs on one thread.
constexpr std::int64_t kElementwiseGrain = 32768;

}  // namespace chainrule
