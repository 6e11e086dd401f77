// The GEMM micro-kernel contract (as in BLIS): given packed panels A (kc x MR, column by
// column) and B (kc x NR, row by row), compute the MR x NR tile C = A * B (or C += A * B
// when accumulate), writing only the top-left m x n part (m <= MR, n <= NR) of C, whose rows
// are ldc elements apart. One variant per ISA; the driver asks for the one the CPU runs.
#pragma once
#include <cstdint>
#include <memory>

#include "chainrule/config.h"

namespace chainrule::gemm {

// b_prefetch (may be null): kc / 4 cache lines from there are fetched into L2 while the tile
// runs, one every 4 steps of k (BLIS passes the next panels' addresses the same way).
template <typename T>
using MicroKernelFn = void (*)(std::int64_t kc, const T* a, const T* b, T* c, std::int64_t ldc,
                               std::int64_t m, std::int64_t n, bool accumulate, const T* b_prefetch);

// The MR x NR tile C = A * B (or +=) with A read in place, element (i, p) at a[i * rs + p * cs]
// (no packing), and B as kc rows of NR elements, ldb apart (packed: ldb = NR; or B itself).
// For a narrow C (n <= NR, a classifier's outputs), and for products small enough that packing
// would cost as much as the arithmetic.
template <typename T>
using NarrowKernelFn = void (*)(std::int64_t kc, const T* a, std::int64_t rs, std::int64_t cs, const T* b,
                                std::int64_t ldb, T* c, std::int64_t ldc, std::int64_t m, std::int64_t n,
                                bool accumulate);

// A matrix-vector product: c[i * ldc] = sum over p < k of a[i * rs + p] * b[p * bs], i < m
// (rows of A contiguous).
// The unpacked tile (as NarrowKernelFn) that also copies the kc x NR block of B it reads to
// b_copy (NR elements a row, contiguous), for the tiles after it to read there.
template <typename T>
using CopyingKernelFn = void (*)(std::int64_t kc, const T* a, std::int64_t rs, std::int64_t cs, const T* b,
                                 std::int64_t ldb, T* c, std::int64_t ldc, std::int64_t m, std::int64_t n,
                                 bool accumulate, T* b_copy);

template <typename T>
using DotKernelFn = void (*)(std::int64_t m, std::int64_t k, const T* a, std::int64_t rs, const T* b,
                             std::int64_t bs, T* c, std::int64_t ldc);

// Packing for the micro-kernel: rows x kc of A (element (i, p) at a[i * rs + p * cs], rows <= MR)
// into an MR-wide panel, or kc x cols of B (element (p, j) at b[p * rs + j * cs]) into NR-wide
// panels, one after another (kc * NR elements each), the last zero-padded to the full width.
template <typename T>
using PackFn = void (*)(std::int64_t kc, const T* src, std::int64_t rs, std::int64_t cs, std::int64_t width,
                        T* out);

template <typename T>
struct MicroKernel {
  int mr;
  int nr;
  MicroKernelFn<T> run;
  int narrow_mr;  // the narrow kernel's tile
  int narrow_nr;
  NarrowKernelFn<T> narrow;
  DotKernelFn<T> dot;
  NarrowKernelFn<T> unpacked;  // the mr x nr tile with A and B read in place
  PackFn<T> pack_a;
  PackFn<T> pack_b;
  PackFn<T> pack_narrow_b;  // B into narrow_nr-wide panels
  // Blocking: true sizes kc so that a kc x nr panel of B stays in L1 while the micro-kernel runs
  // it against every panel of A (as BLIS does for AVX2); false lets kc grow to 1024, the panel
  // then streaming from L2 with fewer passes over C (faster for the AVX-512 tile on a Zen 5, and
  // for the AVX2 tile on an Intel Xeon with 2 MiB of L2: matmul.cpp).
  bool b_panel_in_l1;
  // C's bottom edge: tiles of at most short_mr rows (4; mr when mr <= 4) by the same nr, reading
  // the same MR-wide packed panels (run_short) or A in place (unpacked_short). A 2-row edge then
  // costs 4 rows' FMAs, not mr's (m = 128 by 6-row tiles: 22 tiles' work for 21.3).
  int short_mr;
  MicroKernelFn<T> run_short;
  NarrowKernelFn<T> unpacked_short;
  CopyingKernelFn<T> unpacked_copy;  // unpacked (m <= mr rows), B's strip copied on the way
  // Copies of each element of A in pack_a's panels (an MR x kc panel takes mr * kc * a_lanes
  // elements): 1, or the vector's width when the panel holds A already broadcast, for an ISA
  // without a broadcast load (SSE: a load and a shuffle per row of A and step of k otherwise).
  int a_lanes;
};

MicroKernel<float> micro_kernel_f32(Isa isa);
MicroKernel<double> micro_kernel_f64(Isa isa);

// The yardstick of the micro-kernels: the float32 GFLOP/s of one core running 12 independent
// chains of `isa`'s vector multiply-adds (FMAs for avx2 and avx512, SSE multiplies and adds for
// generic), no loads: the best of runs of about 2 ms for `seconds`. Float64 peaks at half of it.
double fma_peak_gflops(Isa isa, double seconds);

// C (m x n, rows ldc apart) = A (m x k) * B (k x n), element (i, p) of A at a[i * a_rs + p * a_cs]
// and (p, j) of B at b[p * b_rs + j * b_cs], on at most `threads` threads: matmul's GEMM for
// kernels that lay out their operands themselves (convolution's im2col columns). May throw
// std::bad_alloc (packing space).
template <typename T>
void product(std::int64_t m, std::int64_t n, std::int64_t k, const T* a, std::int64_t a_rs, std::int64_t a_cs,
             const T* b, std::int64_t b_rs, std::int64_t b_cs, T* c, std::int64_t ldc, int threads);

// B (k x n, element (p, j) at b[p * rs + j * cs]) packed once into the micro-kernel's NR-wide
// panels, for many products that read it: a recurrent layer's weights, which every step of a
// sequence multiplies. Packed per product, the char-RNN copied its weights' strips 128 times a
// training step (42 MB, a tenth of the step). B itself must outlive it (a product too large for
// the panels' path reads B as matmul does). May throw std::bad_alloc.
template <typename T>
class PackedB {
 public:
  PackedB(std::int64_t k, std::int64_t n, const T* b, std::int64_t rs, std::int64_t cs);
  std::int64_t k() const { return k_; }
  std::int64_t n() const { return n_; }
  const MicroKernel<T>& kernel() const { return kernel_; }  // the one it is packed for
  const T* panels() const { return panels_.get(); }         // k x NR each, the last zero-padded
  const T* b() const { return b_; }                         // B itself
  std::int64_t rs() const { return rs_; }
  std::int64_t cs() const { return cs_; }

 private:
  std::int64_t k_, n_;
  const T* b_;
  std::int64_t rs_, cs_;
  MicroKernel<T> kernel_;
  std::unique_ptr<T, void (*)(void*)> panels_;
};

// C (m x n, rows ldc apart) = A (m x k) * B for a packed B, A read in place (element (i, p) at
// a[i * a_rs + p * a_cs]), on at most `threads` threads.
template <typename T>
void product(std::int64_t m, const T* a, std::int64_t a_rs, std::int64_t a_cs, const PackedB<T>& b, T* c,
             std::int64_t ldc, int threads);

// Per ISA: `iterations` rounds of the 12 chains; returns their sum, so nothing is elided.
namespace generic {
MicroKernel<float> kernel_f32();
MicroKernel<double> kernel_f64();
float fma_chains(std::int64_t iterations);
}  // namespace generic
namespace avx2 {
MicroKernel<float> kernel_f32();
MicroKernel<double> kernel_f64();
float fma_chains(std::int64_t iterations);
}  // namespace avx2
namespace avx512 {
MicroKernel<float> kernel_f32();
MicroKernel<double> kernel_f64();
float fma_chains(std::int64_t iterations);
}  // namespace avx512

}  // namespace chainrule::gemm
