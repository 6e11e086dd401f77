// Elementwise ops: binary (with broadcasting), unary, clamp, where, copy and fill.
// Each op is a small functor; one template runs any functor over the strided loop with
// contiguous and scalar-operand fast paths the compiler can vectorize.
#include <cmath>
#include <cstring>
#include <type_traits>

#include "chainrule/errors.h"
#include "chainrule/record.h"
#include "chainrule/ops.h"
#include "elementwise_ops.h"
#include "elementwise_simd.h"
#include "numeric.h"
#include "strided_loop.h"
#include "vector_math.h"

namespace chainrule {

using Ts = record::Tensors;  // a recorded op's tensor operands
namespace {

using detail::LoopPlan;
using detail::make_plan;
using detail::run_plan;

using detail::is_nan;
using namespace elementwise_ops;

template <typename T>
struct PowF {
  using Result = T;
  static constexpr int kSlot = -1;
  static T apply(T a, T b) {
    if constexpr (std::is_floating_point_v<T>) {
      return std::pow(a, b);
    } else {
      // Integer power by squaring; a negative exponent truncates toward zero as 1 / a^-b would.
      // The products wrap around (elementwise_ops.h) as PyTorch's do.
      if (b < 0) return a == 1 ? T(1) : (a == -1 ? ((b & 1) ? T(-1) : T(1)) : T(0));
      T result = 1, base = a;
      for (T e = b; e > 0; e >>= 1) {
        if (e & 1) result = wrapping_mul(result, base);
        base = wrapping_mul(base, base);
      }
      return result;
    }
  }
};

// One contiguous run of a binary functor whose result has its operands' type:
// out[i] = op(x[i], y[i]) for i < n; with side 1 x is one value read for every i, with side 2
// y is. binary_kernel runs it on every such run of a tensor, and a fused chain of cr.compile
// (record::Elementwise) on its blocks: one loop for both, so both give the same bits.
template <typename Fn, typename T>
void contiguous_binary(const T* x, const T* y, T* o, std::int64_t n, int side) {
  if (const elementwise_simd::BinaryFn<T> vectorized = elementwise_simd::binary<Fn, T>()) {
    vectorized(x, y, o, n, side);  // float arithmetic: the loop compiled for the CPU's ISA
  } else if (side == 1) {
    const T xv = *x;
    for (std::int64_t i = 0; i < n; ++i) o[i] = Fn::apply(xv, y[i]);
  } else if (side == 2) {
    const T yv = *y;
    for (std::int64_t i = 0; i < n; ++i) o[i] = Fn::apply(x[i], yv);
  } else {
    for (std::int64_t i = 0; i < n; ++i) o[i] = Fn::apply(x[i], y[i]);
  }
}

// The same for a unary functor: out[i] = op(x[i]).
template <typename Fn, typename T>
void contiguous_unary(const T* x, T* o, std::int64_t n) {
  if (const elementwise_simd::UnaryFn<T> vectorized = elementwise_simd::unary<Fn, T>()) {
    vectorized(x, o, n);
  } else {
    for (std::int64_t i = 0; i < n; ++i) o[i] = Fn::apply(x[i]);
  }
}

template <template <typename> class Op, typename T>
void binary_kernel(const Tensor& out, const Tensor& a, const Tensor& b) {
  using Fn = Op<T>;
  using R = typename Fn::Result;
  const auto plan = make_plan<3>({&out, &a, &b});
  run_plan(plan, [](char** p, const std::int64_t* s, std::int64_t n) {
    R* o = reinterpret_cast<R*>(p[0]);
    const T* x = reinterpret_cast<const T*>(p[1]);
    const T* y = reinterpret_cast<const T*>(p[2]);
    constexpr std::int64_t r = sizeof(R), t = sizeof(T);
    if constexpr (std::is_same_v<R, T>) {
      if (s[0] == r && (s[1] == t || s[1] == 0) && (s[2] == t || s[2] == 0) && (s[1] != 0 || s[2] != 0)) {
        contiguous_binary<Fn, T>(x, y, o, n, s[1] == 0 ? 1 : s[2] == 0 ? 2 : 0);
        return;
      }
    }
    if (s[0] == r && s[1] == t && s[2] == t) {
      for (std::int64_t i = 0; i < n; ++i) o[i] = Fn::apply(x[i], y[i]);
    } else if (s[0] == r && s[1] == t && s[2] == 0) {
      const T yv = *y;
      for (std::int64_t i = 0; i < n; ++i) o[i] = Fn::apply(x[i], yv);
    } else if (s[0] == r && s[1] == 0 && s[2] == t) {
      const T xv = *x;
      for (std::int64_t i = 0; i < n; ++i) o[i] = Fn::apply(xv, y[i]);
    } else {
      for (std::int64_t i = 0; i < n; ++i) {
        *reinterpret_cast<R*>(p[0] + i * s[0]) = Fn::apply(*reinterpret_cast<const T*>(p[1] + i * s[1]),
                                                          *reinterpret_cast<const T*>(p[2] + i * s[2]));
      }
    }
  });
}

template <template <typename> class Op, typename T>
void unary_kernel(const Tensor& out, const Tensor& a, std::int64_t grain = kElementwiseGrain) {
  using Fn = Op<T>;
  using R = typename Fn::Result;
  const auto plan = make_plan<2>({&out, &a});
  run_plan(plan, [](char** p, const std::int64_t* s, std::int64_t n) {
    R* o = reinterpret_cast<R*>(p[0]);
    const T* x = reinterpret_cast<const T*>(p[1]);
    if (s[0] == sizeof(R) && s[1] == sizeof(T)) {
      if constexpr (std::is_same_v<R, T>) {
        contiguous_unary<Fn, T>(x, reinterpret_cast<T*>(o), n);
        return;
      }
      for (std::int64_t i = 0; i < n; ++i) o[i] = Fn::apply(x[i]);
    } else {
      for (std::int64_t i = 0; i < n; ++i) {
        *reinterpret_cast<R*>(p[0] + i * s[0]) = Fn::apply(*reinterpret_cast<const T*>(p[1] + i * s[1]));
      }
    }
  }, grain);
}

// Copy with a cast from In to Out.
template <typename Out, typename In>
void cast_kernel(const Tensor& out, const Tensor& a) {
  const auto plan = make_plan<2>({&out, &a});
  run_plan(plan, [](char** p, const std::int64_t* s, std::int64_t n) {
    auto convert = [](In v) -> Out {
      if constexpr (std::is_same_v<Out, bool>) return v != In(0);
      else return static_cast<Out>(v);
    };
    Out* o = reinterpret_cast<Out*>(p[0]);
    const In* x = reinterpret_cast<const In*>(p[1]);
    if (s[0] == sizeof(Out) && s[1] == sizeof(In)) {
      for (std::int64_t i = 0; i < n; ++i) o[i] = convert(x[i]);
    } else if (s[0] == sizeof(Out) && s[1] == 0) {
      const Out v = convert(*x);
      for (std::int64_t i = 0; i < n; ++i) o[i] = v;
    } else {
      for (std::int64_t i = 0; i < n; ++i) {
        *reinterpret_cast<Out*>(p[0] + i * s[0]) = convert(*reinterpret_cast<const In*>(p[1] + i * s[1]));
      }
    }
  });
}

template <typename T>
void where_kernel(const Tensor& out, const Tensor& condition, const Tensor& a, const Tensor& b) {
  const auto plan = make_plan<4>({&out, &condition, &a, &b});
  run_plan(plan, [](char** p, const std::int64_t* s, std::int64_t n) {
    for (std::int64_t i = 0; i < n; ++i) {
      const bool c = *reinterpret_cast<const bool*>(p[1] + i * s[1]);
      *reinterpret_cast<T*>(p[0] + i * s[0]) = *reinterpret_cast<const T*>(p[c ? 2 : 3] + i * s[c ? 2 : 3]);
    }
  });
}

template <typename T>
void clamp_kernel(const Tensor& out, const Tensor& a, bool has_min, T lo, bool has_max, T hi) {
  const auto plan = make_plan<2>({&out, &a});
  run_plan(plan, [=](char** p, const std::int64_t* s, std::int64_t n) {
    for (std::int64_t i = 0; i < n; ++i) {
      T v = *reinterpret_cast<const T*>(p[1] + i * s[1]);
      if (!is_nan(v)) {
        // A NaN bound makes the result NaN, as in NumPy and PyTorch.
        if (has_min && (v < lo || is_nan(lo))) v = lo;
        if (has_max && (v > hi || is_nan(hi))) v = hi;
      }
      *reinterpret_cast<T*>(p[0] + i * s[0]) = v;
    }
  });
}

// Runs a contiguous array function over [0, n), in chunks over a team sized by the work.
void run_contiguous(const float* x, float* out, std::int64_t n, vector_math::ArrayFn fn) {
  detail::parallel_chunks(threads_for(n, kTranscendentalGrain), n, 64,
                          [&](std::int64_t begin, std::int64_t end) { fn(x + begin, out + begin, end - begin); });
}

// A 0-d tensor holding `value` in `dtype` (callers broadcast it with stride-0 views).
Tensor scalar_tensor(const Scalar& value, DType dtype) {
  Tensor t = Tensor::empty({}, dtype);
  dispatch_dtype(dtype, [&](auto zero) {
    using T = decltype(zero);
    *t.data_as<T>() = value.as<T>();
  });
  return t;
}

bool is_comparison(BinaryOp op) {
  return op == BinaryOp::Eq || op == BinaryOp::Ne || op == BinaryOp::Lt || op == BinaryOp::Le ||
         op == BinaryOp::Gt || op == BinaryOp::Ge;
}

// The dtype the op computes in (inputs are cast to it first).
DType compute_dtype(BinaryOp op, DType a, DType b) {
  const DType promoted = promote(a, b);
  switch (op) {
    case BinaryOp::Div:
    case BinaryOp::SigmoidBackward:
    case BinaryOp::TanhBackward:
    case BinaryOp::ReluBackward:
      return float_result(promoted);
    case BinaryOp::Sub:
      if (a == DType::Bool || b == DType::Bool) {  // as in PyTorch, either side
        fail<TypeError>("sub: subtraction with a bool operand is not supported (dtypes ", a, " and ",
                        b, "); use logical ops or convert with .long() first");
      }
      return promoted;
    case BinaryOp::Pow:
      return promoted == DType::Bool ? DType::Int64 : promoted;
    default:
      return promoted;
  }
}

void run_binary(BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b) {
  const DType dtype = a.dtype();
  auto all = [&](auto kernel_for) { dispatch_dtype(dtype, kernel_for); };
  auto floats = [&](auto kernel_for) {
    if (dtype == DType::Float32) kernel_for(float{});
    else kernel_for(double{});
  };
  auto numbers = [&](auto kernel_for) {  // bool never reaches sub and pow (compute_dtype)
    if (dtype == DType::Int64) kernel_for(std::int64_t{});
    else floats(kernel_for);
  };
#define CHAINRULE_RUN(Fn) [&](auto zero) { binary_kernel<Fn, decltype(zero)>(out, a, b); }
  switch (op) {
    case BinaryOp::Add: return all(CHAINRULE_RUN(AddF));
    case BinaryOp::Sub: return numbers(CHAINRULE_RUN(SubF));
    case BinaryOp::Mul: return all(CHAINRULE_RUN(MulF));
    case BinaryOp::Div: return floats(CHAINRULE_RUN(DivF));
    case BinaryOp::Pow: return numbers(CHAINRULE_RUN(PowF));
    case BinaryOp::Maximum: return all(CHAINRULE_RUN(MaximumF));
    case BinaryOp::Minimum: return all(CHAINRULE_RUN(MinimumF));
    case BinaryOp::Eq: return all(CHAINRULE_RUN(EqF));
    case BinaryOp::Ne: return all(CHAINRULE_RUN(NeF));
    case BinaryOp::Lt: return all(CHAINRULE_RUN(LtF));
    case BinaryOp::Le: return all(CHAINRULE_RUN(LeF));
    case BinaryOp::Gt: return all(CHAINRULE_RUN(GtF));
    case BinaryOp::Ge: return all(CHAINRULE_RUN(GeF));
    case BinaryOp::SigmoidBackward: return floats(CHAINRULE_RUN(SigmoidBackwardF));
    case BinaryOp::TanhBackward: return floats(CHAINRULE_RUN(TanhBackwardF));
    case BinaryOp::ReluBackward: return floats(CHAINRULE_RUN(ReluBackwardF));
  }
#undef CHAINRULE_RUN
}

DType unary_compute_dtype(UnaryOp op, DType a) {
  switch (op) {
    case UnaryOp::Neg:
      if (a == DType::Bool) fail<TypeError>("neg: negation of a bool tensor is not supported; use logical_not");
      return a;
    case UnaryOp::Abs:
    case UnaryOp::Relu:
      if (a == DType::Bool) fail<TypeError>(unary_op_name(op), ": not supported for bool tensors");
      return a;
    case UnaryOp::Square:
      return a == DType::Bool ? DType::Int64 : a;
    case UnaryOp::Sign:
      return a;
    case UnaryOp::LogicalNot:
      return DType::Bool;
    default:
      return float_result(a);
  }
}

// The bytes [first, last) a tensor's elements span.
std::pair<const char*, const char*> byte_extent(const Tensor& t) {
  const std::int64_t item = itemsize(t.dtype());
  const char* base = static_cast<const char*>(t.data());
  std::int64_t low = 0, high = 0;
  for (std::int64_t d = 0; d < t.ndim(); ++d) {
    const std::int64_t span = t.strides()[d] * (t.shape()[d] - 1) * item;
    (span < 0 ? low : high) += span;
  }
  return {base + low, base + high + item};
}

// Whether reading `source` while writing `target` element by element could read an element
// already overwritten: their bytes intersect and they are not the very same view. Decided on
// memory, not on Storage identity: two wrappers of one NumPy array are different storages.
bool needs_copy_before_write(const Tensor& source, const Tensor& target) {
  if (source.numel() == 0 || target.numel() == 0) return false;
  if (source.data() == target.data() && source.strides() == target.strides()) return false;
  const auto [s_first, s_last] = byte_extent(source);
  const auto [t_first, t_last] = byte_extent(target);
  return s_first < t_last && t_first < s_last;
}

// Writing into a tensor where two elements share memory (an expanded view) is ill-defined.
void check_writable(const Tensor& out, const char* op) {
  for (std::int64_t d = 0; d < out.ndim(); ++d) {
    if (out.strides()[d] == 0 && out.shape()[d] > 1) {
      fail<RuntimeError>(op, ": cannot write in place into a tensor of shape ", out.shape(),
                         " whose elements overlap in memory (an expanded view); clone() it first");
    }
  }
}

}  // namespace

const char* binary_op_name(BinaryOp op) {
  switch (op) {
    case BinaryOp::Add: return "add";
    case BinaryOp::Sub: return "sub";
    case BinaryOp::Mul: return "mul";
    case BinaryOp::Div: return "div";
    case BinaryOp::Pow: return "pow";
    case BinaryOp::Maximum: return "maximum";
    case BinaryOp::Minimum: return "minimum";
    case BinaryOp::Eq: return "eq";
    case BinaryOp::Ne: return "ne";
    case BinaryOp::Lt: return "lt";
    case BinaryOp::Le: return "le";
    case BinaryOp::Gt: return "gt";
    case BinaryOp::Ge: return "ge";
    case BinaryOp::SigmoidBackward: return "sigmoid_backward";
    case BinaryOp::TanhBackward: return "tanh_backward";
    case BinaryOp::ReluBackward: return "relu_backward";
  }
  return "?";
}

const char* unary_op_name(UnaryOp op) {
  switch (op) {
    case UnaryOp::Neg: return "neg";
    case UnaryOp::Exp: return "exp";
    case UnaryOp::Log: return "log";
    case UnaryOp::Sqrt: return "sqrt";
    case UnaryOp::Abs: return "abs";
    case UnaryOp::Sigmoid: return "sigmoid";
    case UnaryOp::Tanh: return "tanh";
    case UnaryOp::Relu: return "relu";
    case UnaryOp::Sin: return "sin";
    case UnaryOp::Cos: return "cos";
    case UnaryOp::Square: return "square";
    case UnaryOp::Sign: return "sign";
    case UnaryOp::LogicalNot: return "logical_not";
    case UnaryOp::Erf: return "erf";
  }
  return "?";
}

DType binary_result_dtype(BinaryOp op, DType a, DType b) {
  return is_comparison(op) ? DType::Bool : compute_dtype(op, a, b);
}

DType unary_result_dtype(UnaryOp op, DType a) {
  return op == UnaryOp::LogicalNot ? DType::Bool : unary_compute_dtype(op, a);
}

namespace {

// The work of binary(op, a, b) written into `out`, which has the result's shape and dtype.
void binary_into(BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b) {
  const DType compute = compute_dtype(op, a.dtype(), b.dtype());
  if (a.shape() == b.shape() && a.dtype() == compute && b.dtype() == compute) {
    run_binary(op, out, a, b);  // the common case (no broadcasting, no cast): no views to build
    return;
  }
  const char* name = binary_op_name(op);
  run_binary(op, out, a.to(compute).broadcast_to(out.shape(), name), b.to(compute).broadcast_to(out.shape(), name));
}

// ---- the loops a fused chain of cr.compile runs (record::Elementwise) ----
// Each is the loop the eager kernel runs on a contiguous run of float32 or float64 operands of
// the result's dtype; an op or dtype without one (comparisons, pow, casts, integers) is not fused.

template <template <typename> class Op, typename T>
void fused_binary_loop(const void* x, const void* y, void* out, std::int64_t n, int side) {
  contiguous_binary<Op<T>, T>(static_cast<const T*>(x), static_cast<const T*>(y), static_cast<T*>(out), n, side);
}

template <template <typename> class Op, typename T>
void fused_unary_loop(const void* x, const void*, void* out, std::int64_t n, int) {
  contiguous_unary<Op<T>, T>(static_cast<const T*>(x), static_cast<T*>(out), n);
}

// float32 exp, sigmoid and tanh of contiguous arrays: vector_math's functions, as unary_into.
template <vector_math::ArrayFn vector_math::Functions::*F>
void fused_vector_math_loop(const void* x, const void*, void* out, std::int64_t n, int) {
  (vector_math::functions().*F)(static_cast<const float*>(x), static_cast<float*>(out), n);
}

template <typename T>
record::Elementwise::Loop binary_loop(BinaryOp op) {
  switch (op) {
    case BinaryOp::Add: return &fused_binary_loop<AddF, T>;
    case BinaryOp::Sub: return &fused_binary_loop<SubF, T>;
    case BinaryOp::Mul: return &fused_binary_loop<MulF, T>;
    case BinaryOp::Div: return &fused_binary_loop<DivF, T>;
    case BinaryOp::Maximum: return &fused_binary_loop<MaximumF, T>;
    case BinaryOp::Minimum: return &fused_binary_loop<MinimumF, T>;
    case BinaryOp::SigmoidBackward: return &fused_binary_loop<SigmoidBackwardF, T>;
    case BinaryOp::TanhBackward: return &fused_binary_loop<TanhBackwardF, T>;
    case BinaryOp::ReluBackward: return &fused_binary_loop<ReluBackwardF, T>;
    default: return nullptr;  // comparisons (a bool result) and pow
  }
}

template <typename T>
record::Elementwise::Loop unary_loop(UnaryOp op) {
  if constexpr (std::is_same_v<T, float>) {
    using VM = vector_math::Functions;
    if (op == UnaryOp::Exp) return &fused_vector_math_loop<&VM::exp>;
    if (op == UnaryOp::Sigmoid) return &fused_vector_math_loop<&VM::sigmoid>;
    if (op == UnaryOp::Tanh) return &fused_vector_math_loop<&VM::tanh>;
  }
  switch (op) {
    case UnaryOp::Neg: return &fused_unary_loop<NegF, T>;
    case UnaryOp::Exp: return &fused_unary_loop<ExpF, T>;
    case UnaryOp::Log: return &fused_unary_loop<LogF, T>;
    case UnaryOp::Sqrt: return &fused_unary_loop<SqrtF, T>;
    case UnaryOp::Abs: return &fused_unary_loop<AbsF, T>;
    case UnaryOp::Sigmoid: return &fused_unary_loop<SigmoidF, T>;
    case UnaryOp::Tanh: return &fused_unary_loop<TanhF, T>;
    case UnaryOp::Relu: return &fused_unary_loop<ReluF, T>;
    case UnaryOp::Sin: return &fused_unary_loop<SinF, T>;
    case UnaryOp::Cos: return &fused_unary_loop<CosF, T>;
    case UnaryOp::Square: return &fused_unary_loop<SquareF, T>;
    case UnaryOp::Sign: return &fused_unary_loop<SignF, T>;
    case UnaryOp::Erf: return &fused_unary_loop<ErfF, T>;
    case UnaryOp::LogicalNot: return nullptr;  // a bool result
  }
  return nullptr;
}

// What a recording learns of binary(op, a, b) computed in `dtype` (operands and result in it).
record::Elementwise binary_elementwise(BinaryOp op, DType dtype) {
  record::Elementwise e;
  e.name = binary_op_name(op);
  e.arity = 2;
  if (dtype == DType::Float32) e.loop = binary_loop<float>(op);
  if (dtype == DType::Float64) e.loop = binary_loop<double>(op);
  return e;
}

// The same for binary(op, tensor, number) (side 2) or binary(op, number, tensor) (side 1): the
// number, made in the tensor's dtype, travels in the step.
record::Elementwise scalar_elementwise(BinaryOp op, const Tensor& number, int side) {
  record::Elementwise e = binary_elementwise(op, number.dtype());
  std::memcpy(e.constant, number.data(), static_cast<std::size_t>(itemsize(number.dtype())));
  e.constant_side = side;
  return e;
}

}  // namespace

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b) {
  if (record::active()) {
    Ts operands{a, b};
    const DType compute = compute_dtype(op, a.dtype(), b.dtype());
    if (a.shape() != b.shape() && a.dtype() == compute && b.dtype() == compute) {
      // Recorded on the broadcast views (the same memory): a replay has no broadcasting to do.
      const Shape shape = broadcast_shapes(a.shape(), b.shape(), binary_op_name(op));
      operands = {a.broadcast_to(shape, binary_op_name(op)), b.broadcast_to(shape, binary_op_name(op))};
    }
    const record::Elementwise e =
        a.dtype() == compute && b.dtype() == compute ? binary_elementwise(op, compute) : record::Elementwise{};
    return record::result("binary", std::move(operands), [op](const Ts& x) { return binary(op, x[0], x[1]); },
                          [op](const Ts& x, const Tensor& out) { binary_into(op, out, x[0], x[1]); }, &e);
  }
  const Shape shape = a.shape() == b.shape() ? a.shape() : broadcast_shapes(a.shape(), b.shape(), binary_op_name(op));
  Tensor out = Tensor::empty(shape, binary_result_dtype(op, a.dtype(), b.dtype()));
  binary_into(op, out, a, b);
  return out;
}

namespace {

// pow with a Python number for exponent, as PyTorch computes it. An integer tensor to a
// negative integer power raises: the result is no integer (1 / 3), and truncating it to 0 hides
// that. On float tensors PyTorch computes the exponents 0.5, -0.5, 2, 3, -1 and -2 with sqrt,
// rsqrt, products and a quotient instead of std::pow; they differ from it at signed zeros and
// infinities (x ** 0.5 is sqrt: -0.0 stays -0.0 and -inf gives nan, where std::pow gives +0.0
// and +inf) and in the last bit (x * x * x), so the same formulas are used here.
std::optional<Tensor> pow_scalar_exponent(const Tensor& a, const Scalar& b) {
  if (!is_floating(a.dtype())) {
    if (b.kind == Scalar::Kind::Int && b.integer < 0) {
      fail<RuntimeError>("pow: integers to negative integer powers are not allowed (a tensor of dtype ", a.dtype(),
                         " to the power ", b.integer, ")");
    }
    return std::nullopt;
  }
  if (b.kind == Scalar::Kind::Bool) return std::nullopt;
  const Scalar one = Scalar::from_double(1.0);
  const double e = b.value;
  if (e == 0.5) return unary(UnaryOp::Sqrt, a);
  if (e == -0.5) return binary(BinaryOp::Div, one, unary(UnaryOp::Sqrt, a));
  if (e == 2.0) return unary(UnaryOp::Square, a);
  if (e == 3.0) return binary(BinaryOp::Mul, unary(UnaryOp::Square, a), a);
  if (e == -1.0) return binary(BinaryOp::Div, one, a);
  if (e == -2.0) return binary(BinaryOp::Div, one, unary(UnaryOp::Square, a));
  return std::nullopt;
}

}  // namespace

namespace {

// The common case of a tensor and a Python number (no pow, no cast): the scalar as a stride-0
// view of the tensor's shape, so there is no broadcasting or cast to set up.
bool plain_scalar_case(BinaryOp op, const Tensor& t, const Scalar& s) {
  return op != BinaryOp::Pow && t.dtype() == compute_dtype(op, t.dtype(), s.default_dtype());
}

}  // namespace

Tensor binary(BinaryOp op, const Tensor& a, const Scalar& b) {
  if (record::active()) {
    record::Into into;
    record::Elementwise e;
    if (plain_scalar_case(op, a, b)) {  // the number's stride-0 view made once, here
      const Tensor number = scalar_tensor(b, a.dtype());
      const Tensor scalar = number.as_strided(a.shape(), Shape(a.shape().size(), 0), 0);
      into = [op, scalar](const Ts& x, const Tensor& out) { run_binary(op, out, x[0], scalar); };
      e = scalar_elementwise(op, number, 2);
    }
    return record::result("binary", {a}, [op, b](const Ts& x) { return binary(op, x[0], b); }, std::move(into), &e);
  }
  if (op == BinaryOp::Pow) {
    if (std::optional<Tensor> special = pow_scalar_exponent(a, b)) return *std::move(special);
  }
  const DType compute = compute_dtype(op, a.dtype(), b.default_dtype());
  const Tensor scalar = scalar_tensor(b, compute);
  if (a.dtype() != compute) return binary(op, a, scalar);
  Tensor out = Tensor::empty(a.shape(), binary_result_dtype(op, a.dtype(), b.default_dtype()));
  run_binary(op, out, a, scalar.as_strided(a.shape(), Shape(a.shape().size(), 0), 0));
  return out;
}

Tensor binary(BinaryOp op, const Scalar& a, const Tensor& b) {
  if (record::active()) {
    record::Into into;
    record::Elementwise e;
    if (plain_scalar_case(op, b, a)) {
      const Tensor number = scalar_tensor(a, b.dtype());
      const Tensor scalar = number.as_strided(b.shape(), Shape(b.shape().size(), 0), 0);
      into = [op, scalar](const Ts& x, const Tensor& out) { run_binary(op, out, scalar, x[0]); };
      e = scalar_elementwise(op, number, 1);
    }
    return record::result("binary", {b}, [op, a](const Ts& x) { return binary(op, a, x[0]); }, std::move(into), &e);
  }
  const DType compute = compute_dtype(op, a.default_dtype(), b.dtype());
  const Tensor scalar = scalar_tensor(a, compute);
  if (b.dtype() != compute) return binary(op, scalar, b);
  Tensor out = Tensor::empty(b.shape(), binary_result_dtype(op, a.default_dtype(), b.dtype()));
  run_binary(op, out, scalar.as_strided(b.shape(), Shape(b.shape().size(), 0), 0), b);
  return out;
}

void binary_(BinaryOp op, const Tensor& out, const Tensor& b) {
  if (record::active()) return record::in_place("binary_", {out, b}, [op](const Ts& x) { binary_(op, x[0], x[1]); });
  const char* name = binary_op_name(op);
  const DType result = binary_result_dtype(op, out.dtype(), b.dtype());
  if (result != out.dtype()) {
    fail<TypeError>(name, "_: result dtype ", result, " cannot be stored in place in a tensor of dtype ",
                    out.dtype());
  }
  check_writable(out, name);
  Tensor other = b.to(result).broadcast_to(out.shape(), name);
  if (needs_copy_before_write(other, out)) other = other.clone();
  run_binary(op, out, out, other);
  out.bump_version();
}

void binary_(BinaryOp op, const Tensor& out, const Scalar& b) {
  if (record::active()) return record::in_place("binary_", {out}, [op, b](const Ts& x) { binary_(op, x[0], b); });
  const DType compute = compute_dtype(op, out.dtype(), b.default_dtype());
  binary_(op, out, scalar_tensor(b, compute));
}

namespace {

// The work of unary(op, a) written into `out`, which has the result's shape and dtype.
void unary_into(UnaryOp op, const Tensor& out, const Tensor& a) {
  const DType compute = unary_compute_dtype(op, a.dtype());
  Tensor cast;  // only when the input's dtype is not the one computed in: no copy of the view
  const Tensor& x = a.dtype() == compute ? a : (cast = a.to(compute));
  if (compute == DType::Float32 && x.is_contiguous() && out.is_contiguous() &&
      (op == UnaryOp::Exp || op == UnaryOp::Sigmoid || op == UnaryOp::Tanh)) {
    const vector_math::Functions& vm = vector_math::functions();
    const vector_math::ArrayFn fn = op == UnaryOp::Exp ? vm.exp : op == UnaryOp::Sigmoid ? vm.sigmoid : vm.tanh;
    run_contiguous(x.data_as<float>(), out.data_as<float>(), x.numel(), fn);
    return;
  }
  auto floats = [&](auto kernel_for) {
    if (compute == DType::Float32) kernel_for(float{});
    else kernel_for(double{});
  };
  auto signed_numbers = [&](auto kernel_for) {
    if (compute == DType::Int64) kernel_for(std::int64_t{});
    else floats(kernel_for);
  };
#define CHAINRULE_RUN(Fn) [&](auto zero) { unary_kernel<Fn, decltype(zero)>(out, x); }
  // libm's exp, log, tanh, sin and cos: many times an add's work per element
#define CHAINRULE_RUN_SLOW(Fn) [&](auto zero) { unary_kernel<Fn, decltype(zero)>(out, x, kTranscendentalGrain); }
  switch (op) {
    case UnaryOp::Neg: signed_numbers(CHAINRULE_RUN(NegF)); break;
    case UnaryOp::Exp: floats(CHAINRULE_RUN_SLOW(ExpF)); break;
    case UnaryOp::Log: floats(CHAINRULE_RUN_SLOW(LogF)); break;
    case UnaryOp::Sqrt: floats(CHAINRULE_RUN(SqrtF)); break;
    case UnaryOp::Abs: signed_numbers(CHAINRULE_RUN(AbsF)); break;
    case UnaryOp::Sigmoid: floats(CHAINRULE_RUN_SLOW(SigmoidF)); break;
    case UnaryOp::Tanh: floats(CHAINRULE_RUN_SLOW(TanhF)); break;
    case UnaryOp::Relu: signed_numbers(CHAINRULE_RUN(ReluF)); break;
    case UnaryOp::Sin: floats(CHAINRULE_RUN_SLOW(SinF)); break;
    case UnaryOp::Cos: floats(CHAINRULE_RUN_SLOW(CosF)); break;
    case UnaryOp::Square: signed_numbers(CHAINRULE_RUN(SquareF)); break;
    case UnaryOp::Sign:
      if (compute == DType::Bool) unary_kernel<SignF, bool>(out, x);
      else signed_numbers(CHAINRULE_RUN(SignF));
      break;
    case UnaryOp::LogicalNot: unary_kernel<LogicalNotF, bool>(out, x); break;
    case UnaryOp::Erf: floats(CHAINRULE_RUN_SLOW(ErfF)); break;
  }
#undef CHAINRULE_RUN_SLOW
#undef CHAINRULE_RUN
}

}  // namespace

Tensor unary(UnaryOp op, const Tensor& a) {
  if (record::active()) {
    record::Elementwise e;
    if (unary_compute_dtype(op, a.dtype()) == a.dtype()) {
      e.name = unary_op_name(op);
      e.arity = 1;
      if (a.dtype() == DType::Float32) e.loop = unary_loop<float>(op);
      if (a.dtype() == DType::Float64) e.loop = unary_loop<double>(op);
    }
    return record::result("unary", {a}, [op](const Ts& x) { return unary(op, x[0]); },
                          [op](const Ts& x, const Tensor& out) { unary_into(op, out, x[0]); }, &e);
  }
  Tensor out = Tensor::empty(a.shape(), unary_result_dtype(op, a.dtype()));
  unary_into(op, out, a);
  return out;
}

Tensor clamp(const Tensor& a, std::optional<Scalar> min, std::optional<Scalar> max) {
  if (record::active()) return record::result("clamp", {a}, [min, max](const Ts& x) { return clamp(x[0], min, max); });
  if (!min && !max) fail<ValueError>("clamp: at least one of min and max must be given");
  DType dtype = a.dtype();
  if (min) dtype = promote(dtype, min->default_dtype());
  if (max) dtype = promote(dtype, max->default_dtype());
  if (dtype == DType::Bool) fail<TypeError>("clamp: not supported for bool tensors");
  Tensor x = a.to(dtype);
  Tensor out = Tensor::empty(a.shape(), dtype);
  dispatch_dtype(dtype, [&](auto zero) {
    using T = decltype(zero);
    if constexpr (!std::is_same_v<T, bool>) {
      clamp_kernel<T>(out, x, min.has_value(), min ? min->as<T>() : T(0), max.has_value(),
                      max ? max->as<T>() : T(0));
    }
  });
  return out;
}

Tensor where(const Tensor& condition, const Tensor& a, const Tensor& b) {
  if (record::active()) return record::result("where", {condition, a, b}, [](const Ts& x) { return where(x[0], x[1], x[2]); });
  if (condition.dtype() != DType::Bool) {
    fail<TypeError>("where: expected a bool condition, got dtype ", condition.dtype());
  }
  const Shape shape = broadcast_shapes(broadcast_shapes(condition.shape(), a.shape(), "where"), b.shape(), "where");
  const DType dtype = promote(a.dtype(), b.dtype());
  Tensor out = Tensor::empty(shape, dtype);
  const Tensor c = condition.broadcast_to(shape, "where");
  const Tensor x = a.to(dtype).broadcast_to(shape, "where");
  const Tensor y = b.to(dtype).broadcast_to(shape, "where");
  dispatch_dtype(dtype, [&](auto zero) { where_kernel<decltype(zero)>(out, c, x, y); });
  return out;
}

void copy_into_new(const Tensor& dst, const Tensor& src) {
  if (record::active()) return record::in_place("copy", {dst, src}, [](const Ts& x) { copy_into_new(x[0], x[1]); });
  Tensor from = src.broadcast_to(dst.shape(), "copy_");
  if (needs_copy_before_write(from, dst)) from = from.clone();
  dispatch_dtype(dst.dtype(), [&](auto out_zero) {
    dispatch_dtype(from.dtype(), [&](auto in_zero) {
      cast_kernel<decltype(out_zero), decltype(in_zero)>(dst, from);
    });
  });
}

void copy_(const Tensor& dst, const Tensor& src) {
  if (record::active()) return record::in_place("copy_", {dst, src}, [](const Ts& x) { copy_(x[0], x[1]); });
  check_writable(dst, "copy_");
  copy_into_new(dst, src);
  dst.bump_version();
}

void fill_(const Tensor& dst, const Scalar& value) {
  if (record::active()) return record::in_place("fill_", {dst}, [value](const Ts& x) { fill_(x[0], value); });
  copy_(dst, scalar_tensor(value, dst.dtype()));
}

Tensor full(const Shape& shape, const Scalar& value, DType dtype) {
  if (record::active()) {
    const Tensor scalar = scalar_tensor(value, dtype);
    return record::result("full", {}, [=](const Ts&) { return full(shape, value, dtype); },
                          [scalar](const Ts&, const Tensor& out) { copy_into_new(out, scalar); });
  }
  Tensor out = Tensor::empty(shape, dtype);
  copy_into_new(out, scalar_tensor(value, dtype));
  return out;
}

Tensor arange(double start, double stop, double step, DType dtype) {
  if (record::active()) return record::result("arange", {}, [=](const Ts&) { return arange(start, stop, step, dtype); });
  if (step == 0) fail<ValueError>("arange: step must be nonzero");
  if (!std::isfinite(start) || !std::isfinite(stop) || !std::isfinite(step)) {
    fail<ValueError>("arange: start, stop and step must be finite, got ", start, ", ", stop, ", ", step);
  }
  const double count = std::ceil((stop - start) / step);
  if (count > 9.0e18) fail<ValueError>("arange: too many elements (", count, ")");
  const std::int64_t n = count > 0 ? static_cast<std::int64_t>(count) : 0;
  Tensor out = Tensor::empty({n}, dtype);
  dispatch_dtype(dtype, [&](auto zero) {
    using T = decltype(zero);
    T* data = out.data_as<T>();
    for (std::int64_t i = 0; i < n; ++i) data[i] = static_cast<T>(start + static_cast<double>(i) * step);
  });
  return out;
}

Tensor arange_int64(std::int64_t start, std::int64_t stop, std::int64_t step) {
  if (record::active()) return record::result("arange", {}, [=](const Ts&) { return arange_int64(start, stop, step); });
  if (step == 0) fail<ValueError>("arange: step must be nonzero");
  // The count in 128-bit arithmetic: stop - start may not fit in int64.
  const __int128 span = static_cast<__int128>(stop) - start;
  const __int128 count = (span == 0 || (span > 0) != (step > 0)) ? 0 : (span + step + (step > 0 ? -1 : 1)) / step;
  Tensor out = Tensor::empty({static_cast<std::int64_t>(count)}, DType::Int64);
  std::int64_t* data = out.data_as<std::int64_t>();
  for (std::int64_t i = 0; i < static_cast<std::int64_t>(count); ++i) {
    data[i] = static_cast<std::int64_t>(start + static_cast<__int128>(i) * step);
  }
  return out;
}

Tensor eye(std::int64_t n, std::int64_t m, DType dtype) {
  if (record::active()) return record::result("eye", {}, [=](const Ts&) { return eye(n, m, dtype); });
  Tensor out = full({n, m}, Scalar::from_int(0), dtype);
  dispatch_dtype(dtype, [&](auto zero) {
    using T = decltype(zero);
    T* data = out.data_as<T>();
    for (std::int64_t i = 0; i < std::min(n, m); ++i) data[i * m + i] = T(1);
  });
  return out;
}

}  // namespace chainrule
