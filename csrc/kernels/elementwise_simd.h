// The elementwise ops' loops over contiguous float32 and float64 runs, compiled once per ISA
// (elementwise_simd_<isa>.cpp) from the functors of elementwise_ops.h, and chosen at run time
// like the GEMM and vector_math variants. elementwise.cpp calls them for contiguous runs and
// runs its portable loop everywhere else.
//
// These files are compiled with -ffp-contract=off: a * (1 - b * b) must not become a fused
// multiply-add under AVX2 when the portable loop (and NumPy) round after each operation. The
// results are the same bits under every ISA.
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

// The ops with a vector slot (elementwise_ops.h), indexed by it.
struct Functions {
  BinaryFn<float> binary_f32[elementwise_ops::kBinarySlots];
  BinaryFn<double> binary_f64[elementwise_ops::kBinarySlots];
  UnaryFn<float> unary_f32[elementwise_ops::kUnarySlots];
  UnaryFn<double> unary_f64[elementwise_ops::kUnarySlots];
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

template <typename Fn, typename T>
UnaryFn<T> unary() {
  if constexpr (Fn::kSlot >= 0 && std::is_same_v<T, float>) return functions().unary_f32[Fn::kSlot];
  else if constexpr (Fn::kSlot >= 0 && std::is_same_v<T, double>) return functions().unary_f64[Fn::kSlot];
  else return nullptr;
}

}  // namespace chainrule::elementwise_simd
