// The GEMM micro-kernel for the avx512 variant (see gemm_microkernel.inc).
#define CHAINRULE_GEMM_VECTOR_BYTES 64
#include "gemm_microkernel.inc"

namespace chainrule::gemm::avx512 {

// 12 accumulators (of 32 registers) keep both FMA pipes busy; the narrow tile is 16 wide.
MicroKernel<float> kernel_f32() { return make_kernel<float, 6, 2, 8, 1>(); }
MicroKernel<double> kernel_f64() { return make_kernel<double, 6, 2, 8, 2>(); }

}  // namespace chainrule::gemm::avx512
