// The GEMM micro-kernel contract (as in BLIS): given packed panels A (kc x MR, column by
// column) and B (kc x NR, row by row), compute the MR x NR tile C = A * B (or C += A * B
// when accumulate), writing only the top-left m x n part (m <= MR, n <= NR) of C, whose rows
// are ldc elements apart. One variant per ISA; the driver asks for the one the CPU runs.
#pragma once
#include <cstdint>

#include "chainrule/config.h"

namespace chainrule::gemm {

template <typename T>
using MicroKernelFn = void (*)(std::int64_t kc, const T* a, const T* b, T* c, std::int64_t ldc,
                               std::int64_t m, std::int64_t n, bool accumulate);

template <typename T>
struct MicroKernel {
  int mr;
  int nr;
  MicroKernelFn<T> run;
};

MicroKernel<float> micro_kernel_f32(Isa isa);
MicroKernel<double> micro_kernel_f64(Isa isa);

namespace generic {
MicroKernel<float> kernel_f32();
MicroKernel<double> kernel_f64();
}  // namespace generic
namespace avx2 {
MicroKernel<float> kernel_f32();
MicroKernel<double> kernel_f64();
}  // namespace avx2
namespace avx512 {
MicroKernel<float> kernel_f32();
MicroKernel<double> kernel_f64();
}  // namespace avx512

}  // namespace chainrule::gemm
