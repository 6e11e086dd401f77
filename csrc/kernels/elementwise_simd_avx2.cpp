// The elementwise loops of the avx2 variant (see elementwise_simd.inc).
#define CHAINRULE_ISA_NAMESPACE avx2
#include "elementwise_simd.inc"
