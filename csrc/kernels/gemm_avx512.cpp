// The GEMM micro-kernel for the avx512 variant (see gemm_microkernel.inc).
#define CHAINRULE_GEMM_VECTOR_BYTES 64
#include "gemm_microkernel.inc"

namespace chainrule::gemm::avx512 {

// 8 x 2 vectors: 16 accumulators of the 32 registers, two B loads and eight broadcasts per 16
// FMAs; 8 rows divide the usual sizes (6 x 2 measured 3-8% slower on 128..1024, 12 x 2 worse
// still). The narrow tile is 16 wide.
MicroKernel<float> kernel_f32() { return make_kernel<float, 8, 2, 8, 1>(false); }
MicroKernel<double> kernel_f64() { return make_kernel<double, 8, 2, 8, 2>(false); }

float fma_chains(std::int64_t iterations) { return fma_chains_body(iterations); }

}  // namespace chainrule::gemm::avx512
