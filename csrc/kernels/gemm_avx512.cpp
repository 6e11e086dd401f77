// The GEMM micro-kernel for the avx512 variant (see gemm_microkernel.inc).
#define CHAINRULE_GEMM_VECTOR_BYTES 64
#include "gemm_microkernel.inc"

namespace chainrule::gemm::avx512 {

MicroKernel<float> kernel_f32() {
  constexpr int kRows = 6, kVectors = 2;
  constexpr int kNarrowRows = 8, kNarrowVectors = 1;  // a 16-wide narrow tile
  return {kRows, kVectors * CHAINRULE_GEMM_VECTOR_BYTES / 4, &micro_kernel<float, kRows, kVectors>,
          kNarrowRows, kNarrowVectors * CHAINRULE_GEMM_VECTOR_BYTES / 4, &narrow_kernel<float, kNarrowRows, kNarrowVectors>,
          &dot_kernel<float>, &narrow_kernel<float, kRows, kVectors>};
}

MicroKernel<double> kernel_f64() {
  constexpr int kRows = 6, kVectors = 2;
  constexpr int kNarrowRows = 8, kNarrowVectors = 2;  // a 16-wide narrow tile
  return {kRows, kVectors * CHAINRULE_GEMM_VECTOR_BYTES / 8, &micro_kernel<double, kRows, kVectors>,
          kNarrowRows, kNarrowVectors * CHAINRULE_GEMM_VECTOR_BYTES / 8, &narrow_kernel<double, kNarrowRows, kNarrowVectors>,
          &dot_kernel<double>, &narrow_kernel<double, kRows, kVectors>};
}

}  // namespace chainrule::gemm::avx512
