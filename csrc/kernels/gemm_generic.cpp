// The GEMM micro-kernel for the generic variant (see gemm_microkernel.inc).
#define CHAINRULE_GEMM_VECTOR_BYTES 16
#include "gemm_microkernel.inc"

namespace chainrule::gemm::generic {

// SSE has 16 registers and no broadcast from memory: each row of A in a k step costs a load and
// a shuffle, on a port the adds use too. The 3 x 16 float tile (3 x 8 double) is 12 accumulators
// with 3 shuffles a step for 12 multiplies and 12 adds; the 4 x 8 tile it replaces had 4 for 8
// and 8 (one thread, thread CPU time, 2026-12-03: float32 256^3 32.2 -> 35.8 GFLOP/s, 1024^3
// 30.6 -> 34.9, 64x64 @ 64x128 30.3 -> 32.4; float64 14.5-14.7 -> 16.8-17.0; 2 x 24 was no
// better and slower on the small product). The narrow tile stays 2 rows of 16 floats.
// The blocked GEMM's packed panels of A hold each element already broadcast (four floats or two
// doubles: MicroKernel::a_lanes), so its k steps load A with no shuffle at all: 1024^3 float32
// 34.9 -> 38.5 GFLOP/s, float64 16.8 -> 19.4. The products that read A in place (up to k = 1024
// with a small operand: 256^3, 128x784 @ 784x256) still shuffle.
MicroKernel<float> kernel_f32() { return make_kernel<float, 3, 4, 2, 4, true>(true); }
MicroKernel<double> kernel_f64() { return make_kernel<double, 3, 4, 2, 4, true>(true); }

float fma_chains(std::int64_t iterations) { return fma_chains_body(iterations); }

}  // namespace chainrule::gemm::generic
