// The vectorized float32 exp / sigmoid / tanh of the generic variant (see vector_math.inc).
#define CHAINRULE_VECTOR_BYTES 16
#define CHAINRULE_ISA_NAMESPACE generic
#include "vector_math.inc"

namespace chainrule::vector_math {

const Functions& functions() {
  static const Functions chosen = [] {
    switch (active_isa()) {
      case Isa::Avx512: return avx512::functions();
      case Isa::Avx2: return avx2::functions();
      case Isa::Generic: break;
    }
    return generic::functions();
  }();
  return chosen;
}

}  // namespace chainrule::vector_math
