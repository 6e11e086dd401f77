// Vectorized float32 exp, sigmoid and tanh over contiguous arrays, one variant per ISA.
//
// exp: x = n ln2 + r with |r| <= ln2/2, exp(r) by a degree-7 polynomial (Cephes' expf
// coefficients), 2^n built in the exponent bits in two halves so results down in the
// subnormal range stay accurate. Maximum relative error against float64 exp: below 2e-7 over
// the whole float range where the result is normal (tests/kernel_check.py measures it).
// sigmoid = 1 / (1 + exp(-x)); tanh: an odd polynomial for |x| < 0.625 (Cephes' tanhf), else
// 1 - 2 / (exp(2x) + 1). NaN propagates; +-inf give the limits.
//
// Float sums (sum, sum_columns): blocks of floats are added in float (4 terms per lane for a
// row, 32 rows for columns), and the block sums in double. Every ISA does the same additions in
// the same order (16 lanes, however many vectors that takes), so all give the same bits. A sum
// that comes out inf or NaN is redone in double: float overflow inside a block then cannot turn
// a finite total into inf.
#pragma once
#include <cstdint>

#include "chainrule/config.h"

namespace chainrule::vector_math {

using ArrayFn = void (*)(const float* x, float* out, std::int64_t n);
// Sum of n contiguous floats, as a double.
using SumFn = double (*)(const float* x, std::int64_t n);
// acc[k] = sum over r < rows of x[r * row_stride + k], for k < cols (column sums).
using ColumnSumFn = void (*)(const float* x, std::int64_t rows, std::int64_t cols, std::int64_t row_stride,
                             double* acc);

struct Functions {
  ArrayFn exp;
  ArrayFn sigmoid;
  ArrayFn tanh;
  SumFn sum;
  ColumnSumFn sum_columns;
};

// The variant for the ISA in use.
const Functions& functions();

namespace generic { Functions functions(); }
namespace avx2 { Functions functions(); }
namespace avx512 { Functions functions(); }

}  // namespace chainrule::vector_math
