// The vectorized float32 exp / sigmoid / tanh of the avx2 variant (see vector_math.inc).
#define CHAINRULE_VECTOR_BYTES 32
#define CHAINRULE_ISA_NAMESPACE avx2
#include "vector_math.inc"
