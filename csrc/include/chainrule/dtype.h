// Element types and the promotion rules of API.md.
#pragma once
#include <cstdint>
#include <ostream>

namespace chainrule {

// Ordered by promotion rank: bool < int64 < float32 < float64.
enum class DType : std::int8_t { Bool = 0, Int64 = 1, Float32 = 2, Float64 = 3 };

inline std::int64_t itemsize(DType dtype) {
  switch (dtype) {
    case DType::Bool: return 1;
    case DType::Int64: return 8;
    case DType::Float32: return 4;
    case DType::Float64: return 8;
  }
  return 0;
}

inline const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::Bool: return "bool";
    case DType::Int64: return "int64";
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
  }
  return "?";
}

inline std::ostream& operator<<(std::ostream& out, DType dtype) { return out << dtype_name(dtype); }

inline bool is_floating(DType dtype) { return dtype == DType::Float32 || dtype == DType::Float64; }

inline DType promote(DType a, DType b) { return a > b ? a : b; }

// The dtype a float function (exp, log, mean, ...) computes in: floats keep theirs,
// int64 and bool become float32.
inline DType float_result(DType dtype) { return is_floating(dtype) ? dtype : DType::Float32; }

// A Python number on the other side of a tensor op. Its kind never raises a float tensor's
// precision: promote(tensor, scalar) = max(tensor dtype, the scalar kind's default dtype).
struct Scalar {
  enum class Kind : std::int8_t { Bool, Int, Float };
  Kind kind = Kind::Float;
  double value = 0.0;       // the value for Float (and a copy for the others)
  std::int64_t integer = 0; // the exact value for Int and Bool

  static Scalar from_double(double v) { return Scalar{Kind::Float, v, static_cast<std::int64_t>(0)}; }
  static Scalar from_int(std::int64_t v) { return Scalar{Kind::Int, static_cast<double>(v), v}; }
  static Scalar from_bool(bool v) { return Scalar{Kind::Bool, v ? 1.0 : 0.0, v ? 1 : 0}; }

  DType default_dtype() const {
    switch (kind) {
      case Kind::Bool: return DType::Bool;
      case Kind::Int: return DType::Int64;
      case Kind::Float: return DType::Float32;
    }
    return DType::Float32;
  }
  template <typename T>
  T as() const {
    return kind == Kind::Float ? static_cast<T>(value) : static_cast<T>(integer);
  }
};

// Calls fn with a value of the C++ type that holds `dtype`'s elements.
template <typename Fn>
decltype(auto) dispatch_dtype(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::Bool: return fn(bool{});
    case DType::Int64: return fn(std::int64_t{});
    case DType::Float32: return fn(float{});
    case DType::Float64: break;
  }
  return fn(double{});
}

template <typename T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<bool>() { return DType::Bool; }
template <> constexpr DType dtype_of<std::int64_t>() { return DType::Int64; }
template <> constexpr DType dtype_of<float>() { return DType::Float32; }
template <> constexpr DType dtype_of<double>() { return DType::Float64; }

}  // namespace chainrule
