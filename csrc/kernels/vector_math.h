// Vectorized float32 exp, sigmoid and tanh over contiguous arrays (and the LSTM cell built on
// them), one variant per ISA.
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

// One LSTM step's pointwise work over `rows` samples (recurrent.cpp), rows of the gates 4H apart
// and of the states H apart: gates come in as the pre-activations i, f, g, o and leave as their
// activations (sigmoid, sigmoid, tanh, sigmoid); c = f c_prev + i g, tanh_c = tanh(c) and
// h = o tanh_c, written also to h_next (rows h_next_stride apart: the next step's GEMM input)
// unless it is null. One pass, each value loaded once, instead of an array pass per function.
using LstmCellForwardFn = void (*)(float* gates, const float* c_prev, float* c, float* tanh_c, float* h,
                                   float* h_next, std::int64_t h_next_stride, std::int64_t rows, std::int64_t hidden);
// Its backward: from the step's saved activations, tanh_c and c_prev, the gradient reaching h
// (grad_output + grad_h_carried, the latter's rows carried_stride apart) and grad_c (the cell
// state's, carried in, and out as c_prev's), the gates' pre-activation gradients into d.
using LstmCellBackwardFn = void (*)(const float* gates, const float* tanh_c, const float* c_prev,
                                    const float* grad_output, const float* grad_h_carried,
                                    std::int64_t carried_stride, float* grad_c, float* d, std::int64_t rows,
                                    std::int64_t hidden);

struct Functions {
  ArrayFn exp;
  ArrayFn sigmoid;
  ArrayFn tanh;
  SumFn sum;
  ColumnSumFn sum_columns;
  LstmCellForwardFn lstm_cell_forward;
  LstmCellBackwardFn lstm_cell_backward;
};

// The variant for the ISA in use.
const Functions& functions();

namespace generic { Functions functions(); }
namespace avx2 { Functions functions(); }
namespace avx512 { Functions functions(); }

}  // namespace chainrule::vector_math
