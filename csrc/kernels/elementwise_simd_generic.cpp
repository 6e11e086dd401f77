// The elementwise loops of the generic variant (see elementwise_simd.inc).
#define CHAINRULE_ISA_NAMESPACE generic
#include "elementwise_simd.inc"

namespace chainrule::elementwise_simd {

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

}  // namespace chainrule::elementwise_simd
