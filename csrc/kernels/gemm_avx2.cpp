// The GEMM micro-kernel for the avx2 variant (see gemm_microkernel.inc).
#define CHAINRULE_GEMM_VECTOR_BYTES 32
#include "gemm_microkernel.inc"

namespace chainrule::gemm::avx2 {

// 12 accumulators of the 16 registers; the narrow tile is 16 floats wide.
MicroKernel<float> kernel_f32() { return make_kernel<float, 6, 2, 6, 2>(true); }
MicroKernel<double> kernel_f64() { return make_kernel<double, 6, 2, 6, 2>(true); }

float fma_chains(std::int64_t iterations) { return fma_chains_body(iterations); }

}  // namespace chainrule::gemm::avx2
