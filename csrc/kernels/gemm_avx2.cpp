// The GEMM micro-kernel for the avx2 variant (see gemm_microkernel.inc).
#define CHAINRULE_GEMM_VECTOR_BYTES 32
#include "gemm_microkernel.inc"

namespace chainrule::gemm::avx2 {

// Register budget (16 ymm): the 6 x 16 float tile (6 x 8 double) is 12 accumulators, 2 for the
// row of B and 1 for the broadcast of A: 15. Each k step is 2 B loads, 6 broadcasts and 12 FMAs,
// 6 cycles on two FMA pipes with 12 independent chains (enough to cover a 4-5 cycle latency);
// 4 x 24 would need one fewer load but leaves no spare register. The narrow tile is 16 floats wide.
// Blocking: the L2 rule (b_panel_in_l1 false, kc up to 1024, see matmul.cpp's blocking_for):
// fewer passes over C, which cost more than streaming the panel of B from L2 on this Xeon
// (n = 1024 one thread, thread CPU time: f32 93 -> 104 GFLOP/s, f64 40 -> 50 with kc 342 -> 1024).
MicroKernel<float> kernel_f32() { return make_kernel<float, 6, 2, 6, 2>(false); }
MicroKernel<double> kernel_f64() { return make_kernel<double, 6, 2, 6, 2>(false); }

float fma_chains(std::int64_t iterations) { return fma_chains_body(iterations); }

}  // namespace chainrule::gemm::avx2
