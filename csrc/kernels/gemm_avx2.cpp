// The GEMM micro-kernel for the avx2 variant (see gemm_microkernel.inc).
#define CHAINRULE_GEMM_VECTOR_BYTES 32
#include "gemm_microkernel.inc"

namespace chainrule::gemm::avx2 {

MicroKernel<float> kernel_f32() {
  constexpr int kRows = 6, kVectors = 2;
  return {kRows, kVectors * CHAINRULE_GEMM_VECTOR_BYTES / 4, &micro_kernel<float, kRows, kVectors>};
}

MicroKernel<double> kernel_f64() {
  constexpr int kRows = 6, kVectors = 2;
  return {kRows, kVectors * CHAINRULE_GEMM_VECTOR_BYTES / 8, &micro_kernel<double, kRows, kVectors>};
}

}  // namespace chainrule::gemm::avx2
