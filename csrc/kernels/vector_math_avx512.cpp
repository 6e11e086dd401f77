// The vectorized float32 exp / sigmoid / tanh of the avx512 variant (see vector_math.inc).
#define CHAINRULE_VECTOR_BYTES 64
#define CHAINRULE_ISA_NAMESPACE avx512
#include "vector_math.inc"
