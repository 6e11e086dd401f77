// The GEMM micro-kernel for the generic variant (see gemm_microkernel.inc).
#define CHAINRULE_GEMM_VECTOR_BYTES 16
#include "gemm_microkernel.inc"

namespace chainrule::gemm::generic {

// SSE has 16 registers: 8 accumulators in either tile.
MicroKernel<float> kernel_f32() { return make_kernel<float, 4, 2, 2, 4>(true); }
MicroKernel<double> kernel_f64() { return make_kernel<double, 4, 2, 2, 4>(true); }

float fma_chains(std::int64_t iterations) { return fma_chains_body(iterations); }

}  // namespace chainrule::gemm::generic
