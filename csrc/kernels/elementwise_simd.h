// The elementwise ops' loops over contiguous float32 and float64 runs, compiled once per ISA
// (elementwise_simd_<isa>.cpp) from the functors of elementwise_ops.h, and chosen at run time
// like the GEMM and vector_math variants. elementwise.cpp calls them for contiguous runs and
// runs its portable loop everywhere else.
//
// These files are compiled with -ffp-contract=off: a * (1 - b * b) must not become a fused
// multiply-add under AVX2 when the portable loop (and NumPy) round after each operation. The
// results are the same bits under every ISA. And with -fno-math-errno, so that sqrt is one
// vector instruction (it never needs to set errno here: a NaN says it all).
#pragma once
#include <cstdint>
#include <type_traits>

#include "chainrule/config.h"
#include "elementwise_ops.h"

namespace chainrule::elementwise_simd {

// out[i] = op(x[i], y[i]) for i < n over contiguous arrays; with scalar_side 1, x is one value
// (x[0] for every i), with 2, y is. out may be x or y (an in-place op), never overlap otherwise.
template <typename T>
using BinaryFn = void (*)(const T* x, const T* y, T* out, std::int64_t n, int scalar_side);
// out[i] = op(x[i]) for i < n over contiguous arrays (out may be x).
template <typename T>
using UnaryFn = void (*)(const T* x, T* out, std::int64_t n);

// Adam's update of n contiguous elements (fused.cpp's adam_step_ forms these numbers once per
// step): PyTorch's single-tensor Adam, in its order of operations, so every ISA gives its bits.
template <typename T>
struct AdamConstants {
  T one_minus_b1, b2, one_minus_b2, eps, weight_decay, step_size, bias_correction2_sqrt, decay;
  bool decayed;    // weight_decay != 0 (as a double: a decay that rounds to 0 in T still counts)
  bool decoupled;  // AdamW: the parameter decays by `decay`; Adam: weight_decay * p joins g
};
template <typename T>
using AdamFn = void (*)(T* p, const T* g, T* m, T* v, std::int64_t n, const AdamConstants<T>& c);

// The ops with a vector slot (elementwise_ops.h), indexed by it; Adam's update.
struct Functions {
  BinaryFn<float> binary_f32[elementwise_ops::kBinarySlots];
  BinaryFn<double> binary_f64[elementwise_ops::kBinarySlots];
  UnaryFn<float> unary_f32[elementwise_ops::kUnarySlots];
  UnaryFn<double> unary_f64[elementwise_ops::kUnarySlots];
  AdamFn<float> adam_f32;
  AdamFn<double> adam_f64;
};

// The variant for the ISA in use.
const Functions& functions();

namespace generic { Functions functions(); }
namespace avx2 { Functions functions(); }
namespace avx512 { Functions functions(); }

// The ISA-compiled loop of functor Fn over element type T, or nullptr where there is none.
template <typename Fn, typename T>
BinaryFn<T> binary() {
  if constexpr (Fn::kSlot >= 0 && std::is_same_v<T, float>) return functions().binary_f32[Fn::kSlot];
  else if constexpr (Fn::kSlot >= 0 && std::is_same_v<T, double>) return functions().binary_f64[Fn::kSlot];
  else return nullptr;
}

template <typename T>
AdamFn<T> adam() {
  if constexpr (std::is_same_v<T, float>) return functions().adam_f32;
  else return functions().adam_f64;
}

template <typename Fn, typename T>
UnaryFn<T> unary() {
  if constexpr (Fn::kSlot >= 0 && std::is_same_v<T, float>) return functions().unary_f32[Fn::kSlot];
  else if constexpr (Fn::kSlot >= 0 && std::is_same_v<T, double>) return functions().unary_f64[Fn::kSlot];
  else return nullptr;
}

}  // namespace chainrule::elementwise_simd
