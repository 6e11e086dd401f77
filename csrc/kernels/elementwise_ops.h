// The elementwise functors: one small struct per op with `apply`, shared by elementwise.cpp
// (every dtype, any strides, compiled for any x86-64) and elementwise_simd.inc (contiguous
// float32 and float64 runs, compiled once per ISA). An op with a vector slot (kSlot >= 0) has an
// ISA-compiled loop in elementwise_simd::Functions; the others (comparisons, pow, transcendental
// functions with their own paths) run the portable loop.
//
// Everything here has internal linkage (an unnamed namespace): each translation unit keeps its
// own copy, compiled with its own ISA flags. With external linkage a build that did not inline
// them (-O0) could have the linker keep the AVX-512 copy for the portable loop too.
#pragma once
#include <cmath>
#include <type_traits>

namespace chainrule::elementwise_ops {
namespace {

// NaN test that also compiles (as false) for integer and bool element types.
template <typename T>
inline bool is_nan(T x) {
  if constexpr (std::is_floating_point_v<T>) return std::isnan(x);
  return false;
}

// int64 arithmetic wraps around in two's complement, as in PyTorch and NumPy; in C++ a signed
// overflow is undefined behaviour (UBSan stops on it, and the optimizer may assume it never
// happens). So integer +, -, * and negation run in the unsigned type, where wrapping is defined,
// and convert back (modulo 2^64: GCC defines it, C++20 requires it). Floats and bools are
// computed as written.
template <typename T>
constexpr bool kWraps = std::is_integral_v<T> && !std::is_same_v<T, bool>;
template <typename T>
inline T wrapping_add(T a, T b) {
  if constexpr (kWraps<T>) return static_cast<T>(std::make_unsigned_t<T>(a) + std::make_unsigned_t<T>(b));
  else return static_cast<T>(a + b);
}
template <typename T>
inline T wrapping_sub(T a, T b) {
  if constexpr (kWraps<T>) return static_cast<T>(std::make_unsigned_t<T>(a) - std::make_unsigned_t<T>(b));
  else return static_cast<T>(a - b);
}
template <typename T>
inline T wrapping_mul(T a, T b) {
  if constexpr (kWraps<T>) return static_cast<T>(std::make_unsigned_t<T>(a) * std::make_unsigned_t<T>(b));
  else return static_cast<T>(a * b);
}
template <typename T>
inline T wrapping_neg(T x) {
  if constexpr (kWraps<T>) return static_cast<T>(std::make_unsigned_t<T>(0) - std::make_unsigned_t<T>(x));
  else return static_cast<T>(-x);
}

// ---- binary functors: R apply(T a, T b) ----
#define CHAINRULE_BINARY(Name, Slot, R, expr)                          \
  template <typename T>                                                 \
  struct Name {                                                         \
    using Result = R;                                                   \
    static constexpr int kSlot = Slot;                                  \
    static Result apply(T a, T b) { return static_cast<Result>(expr); } \
  };
CHAINRULE_BINARY(AddF, 0, T, wrapping_add(a, b))
CHAINRULE_BINARY(SubF, 1, T, wrapping_sub(a, b))
CHAINRULE_BINARY(MulF, 2, T, wrapping_mul(a, b))
CHAINRULE_BINARY(DivF, 3, T, a / b)
CHAINRULE_BINARY(MaximumF, 4, T, (a > b || is_nan(a)) ? a : b)
CHAINRULE_BINARY(MinimumF, 5, T, (a < b || is_nan(a)) ? a : b)
CHAINRULE_BINARY(SigmoidBackwardF, 6, T, a * b * (T(1) - b))
CHAINRULE_BINARY(TanhBackwardF, 7, T, a * (T(1) - b * b))
CHAINRULE_BINARY(ReluBackwardF, 8, T, b <= T(0) ? T(0) : a)  // NaN passes a (PyTorch)
CHAINRULE_BINARY(EqF, -1, bool, a == b)
CHAINRULE_BINARY(NeF, -1, bool, a != b)
CHAINRULE_BINARY(LtF, -1, bool, a < b)
CHAINRULE_BINARY(LeF, -1, bool, a <= b)
CHAINRULE_BINARY(GtF, -1, bool, a > b)
CHAINRULE_BINARY(GeF, -1, bool, a >= b)
#undef CHAINRULE_BINARY
constexpr int kBinarySlots = 9;

// ---- unary functors: R apply(T x) ----
#define CHAINRULE_UNARY(Name, Slot, R, expr)                        \
  template <typename T>                                              \
  struct Name {                                                      \
    using Result = R;                                                \
    static constexpr int kSlot = Slot;                               \
    static Result apply(T x) { return static_cast<Result>(expr); }   \
  };
CHAINRULE_UNARY(NegF, 0, T, wrapping_neg(x))
CHAINRULE_UNARY(AbsF, 1, T, x < T(0) ? wrapping_neg(x) : x)
CHAINRULE_UNARY(ReluF, 2, T, x < T(0) ? T(0) : x)
CHAINRULE_UNARY(SquareF, 3, T, wrapping_mul(x, x))
CHAINRULE_UNARY(SqrtF, 4, T, std::sqrt(x))
CHAINRULE_UNARY(ExpF, -1, T, std::exp(x))
CHAINRULE_UNARY(LogF, -1, T, std::log(x))
CHAINRULE_UNARY(SigmoidF, -1, T, T(1) / (T(1) + std::exp(-x)))
CHAINRULE_UNARY(TanhF, -1, T, std::tanh(x))
CHAINRULE_UNARY(SinF, -1, T, std::sin(x))
CHAINRULE_UNARY(CosF, -1, T, std::cos(x))
CHAINRULE_UNARY(SignF, -1, T, (x > T(0)) - (x < T(0)))
CHAINRULE_UNARY(LogicalNotF, -1, bool, !x)
CHAINRULE_UNARY(ErfF, -1, T, std::erf(x))
#undef CHAINRULE_UNARY
constexpr int kUnarySlots = 5;

}  // namespace
}  // namespace chainrule::elementwise_ops
