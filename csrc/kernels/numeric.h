// Small numeric helpers shared by the kernels.
#pragma once
#include <cmath>
#include <type_traits>

namespace chainrule::detail {

// NaN test that also compiles (as false) for integer and bool element types.
template <typename T>
bool is_nan(T x) {
  if constexpr (std::is_floating_point_v<T>) return std::isnan(x);
  return false;
}

}  // namespace chainrule::detail
