// The elementwise loops of the generic variant (see elementwise_simd.inc).
#define CHAINRULE_ISA_NAMESPACE generic
#include "elementwise_simd.inc"

namespace chainrule::elementwise_simd {

const Functions& functions() {
  static const Functions chosen =
      call_for_isa(active_isa(), generic::functions, avx2::functions, avx512::functions);
  return chosen;
}

}  // namespace chainrule::elementwise_simd
