// The elementwise loops of the avx512 variant (see elementwise_simd.inc).
#define CHAINRULE_ISA_NAMESPACE avx512
#include "elementwise_simd.inc"
