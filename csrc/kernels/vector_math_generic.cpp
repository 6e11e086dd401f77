// The vectorized float32 exp / sigmoid / tanh of the generic variant (see vector_math.inc).
#define CHAINRULE_VECTOR_BYTES 16
#define CHAINRULE_ISA_NAMESPACE generic
#include "vector_math.inc"

namespace chainrule::vector_math {

const Functions& functions() {
  static const Functions chosen =
      call_for_isa(active_isa(), generic::functions, avx2::functions, avx512::functions);
  return chosen;
}

}  // namespace chainrule::vector_math
