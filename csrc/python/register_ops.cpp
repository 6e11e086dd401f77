// The core's ops as module functions. Binary ops take a tensor or a Python number on either
// side; each call is one C++ op, releasing the GIL when the work is large.
#include "bindings.h"
#include "chainrule/errors.h"
#include "chainrule/ops.h"

namespace chainrule::python {
namespace {

const Tensor* as_tensor(py::handle value) {
  if (py::isinstance<Tensor>(value)) return &value.cast<const Tensor&>();
  return nullptr;
}

Tensor binary_any(BinaryOp op, py::handle a, py::handle b) {
  const char* name = binary_op_name(op);
  const Tensor* ta = as_tensor(a);
  const Tensor* tb = as_tensor(b);
  if (ta && tb) {
    MaybeReleaseGil gil(std::max(ta->numel(), tb->numel()));
    return binary(op, *ta, *tb);
  }
  if (ta) {
    const Scalar sb = to_scalar(b, name);
    MaybeReleaseGil gil(ta->numel());
    return binary(op, *ta, sb);
  }
  if (tb) {
    const Scalar sa = to_scalar(a, name);
    MaybeReleaseGil gil(tb->numel());
    return binary(op, sa, *tb);
  }
  fail<TypeError>(name, ": expected at least one tensor operand");
}

void binary_inplace(BinaryOp op, const Tensor& out, py::handle b) {
  if (const Tensor* tb = as_tensor(b)) {
    MaybeReleaseGil gil(out.numel());
    binary_(op, out, *tb);
  } else {
    const Scalar sb = to_scalar(b, binary_op_name(op));
    MaybeReleaseGil gil(out.numel());
    binary_(op, out, sb);
  }
}

std::optional<Scalar> optional_scalar(py::handle value, const char* op) {
  if (value.is_none()) return std::nullopt;
  return to_scalar(value, op);
}

}  // namespace

void register_ops(py::module_& m) {
  const std::pair<const char*, BinaryOp> binaries[] = {
      {"add", BinaryOp::Add}, {"sub", BinaryOp::Sub}, {"mul", BinaryOp::Mul}, {"div", BinaryOp::Div},
      {"pow", BinaryOp::Pow}, {"maximum", BinaryOp::Maximum}, {"minimum", BinaryOp::Minimum},
      {"eq", BinaryOp::Eq}, {"ne", BinaryOp::Ne}, {"lt", BinaryOp::Lt}, {"le", BinaryOp::Le},
      {"gt", BinaryOp::Gt}, {"ge", BinaryOp::Ge},
      {"sigmoid_backward", BinaryOp::SigmoidBackward}, {"tanh_backward", BinaryOp::TanhBackward},
      {"relu_backward", BinaryOp::ReluBackward},
  };
  for (const auto& [name, op] : binaries) {
    const BinaryOp code = op;
    m.def(name, [code](py::handle a, py::handle b) { return binary_any(code, a, b); });
  }
  // The in-place forms the Python layer uses (Tensor.add_ and friends, the optimizers).
  const std::pair<const char*, BinaryOp> in_place[] = {
      {"add_", BinaryOp::Add}, {"sub_", BinaryOp::Sub}, {"mul_", BinaryOp::Mul}, {"div_", BinaryOp::Div}};
  for (const auto& [name, op] : in_place) {
    const BinaryOp code = op;
    m.def(name, [code](const Tensor& out, py::handle b) { binary_inplace(code, out, b); });
  }

  const std::pair<const char*, UnaryOp> unaries[] = {
      {"neg", UnaryOp::Neg}, {"exp", UnaryOp::Exp}, {"log", UnaryOp::Log}, {"sqrt", UnaryOp::Sqrt},
      {"abs", UnaryOp::Abs}, {"sigmoid", UnaryOp::Sigmoid}, {"tanh", UnaryOp::Tanh},
      {"relu", UnaryOp::Relu}, {"sin", UnaryOp::Sin}, {"cos", UnaryOp::Cos},
      {"square", UnaryOp::Square}, {"sign", UnaryOp::Sign}, {"logical_not", UnaryOp::LogicalNot},
      {"erf", UnaryOp::Erf},
  };
  for (const auto& [name, op] : unaries) {
    const UnaryOp code = op;
    m.def(name, [code](const Tensor& a) {
      MaybeReleaseGil gil(a.numel());
      return unary(code, a);
    });
  }

  m.def("clamp", [](const Tensor& a, py::handle min, py::handle max) {
    const auto lo = optional_scalar(min, "clamp");
    const auto hi = optional_scalar(max, "clamp");
    MaybeReleaseGil gil(a.numel());
    return clamp(a, lo, hi);
  });
  m.def("where", [](const Tensor& c, const Tensor& a, const Tensor& b) {
    MaybeReleaseGil gil(std::max({c.numel(), a.numel(), b.numel()}));
    return where(c, a, b);
  });
  m.def("copy_", [](const Tensor& dst, const Tensor& src) {
    MaybeReleaseGil gil(dst.numel());
    copy_(dst, src);
  });
  m.def("fill_", [](const Tensor& dst, py::handle value) {
    const Scalar s = to_scalar(value, "fill_");
    MaybeReleaseGil gil(dst.numel());
    fill_(dst, s);
  });

  const std::pair<const char*, ReduceOp> reductions[] = {
      {"sum", ReduceOp::Sum}, {"mean", ReduceOp::Mean}, {"amax", ReduceOp::Amax}, {"amin", ReduceOp::Amin}};
  for (const auto& [name, op] : reductions) {
    const ReduceOp code = op;
    m.def(name, [code](const Tensor& a, const std::vector<std::int64_t>& dims, bool keepdim) {
      MaybeReleaseGil gil(a.numel());
      return reduce(code, a, dims, keepdim);
    });
  }
  m.def("argmax", [](const Tensor& a, std::optional<std::int64_t> dim, bool keepdim) {
    MaybeReleaseGil gil(a.numel());
    return argmax(a, dim, keepdim);
  });
  m.def("argmin", [](const Tensor& a, std::optional<std::int64_t> dim, bool keepdim) {
    MaybeReleaseGil gil(a.numel());
    return argmin(a, dim, keepdim);
  });
  m.def("sum_to", [](const Tensor& a, const Shape& shape) {
    MaybeReleaseGil gil(a.numel());
    return sum_to(a, shape);
  });
  m.def("matmul", [](const Tensor& a, const Tensor& b) {
    MaybeReleaseGil gil(a.numel() + b.numel());
    return matmul(a, b);
  });
  m.def("index_select", [](const Tensor& a, std::int64_t dim, const Tensor& index) {
    MaybeReleaseGil gil(a.numel());
    return index_select(a, dim, index);
  });
  m.def("index_add_", [](const Tensor& out, std::int64_t dim, const Tensor& index, const Tensor& src) {
    MaybeReleaseGil gil(src.numel());
    index_add_(out, dim, index, src);
  });
  m.def("cat", [](const std::vector<Tensor>& tensors, std::int64_t dim) {
    std::int64_t total = 0;
    for (const Tensor& t : tensors) total += t.numel();
    MaybeReleaseGil gil(total);
    return cat(tensors, dim);
  });
  m.def("linear", [](const Tensor& input, const Tensor& weight, std::optional<Tensor> bias) {
    MaybeReleaseGil gil(input.numel() + weight.numel());
    return linear(input, weight, bias ? &*bias : nullptr);
  });
  m.def("cross_entropy_loss", [](const Tensor& logits, const Tensor& target) {
    MaybeReleaseGil gil(logits.numel());
    return cross_entropy_loss(logits, target);
  });
  m.def("cross_entropy_backward", [](const Tensor& grad, const Tensor& logits, const Tensor& target) {
    MaybeReleaseGil gil(logits.numel());
    return cross_entropy_backward(grad, logits, target);
  });
  m.def("broadcast_shapes", [](const Shape& a, const Shape& b) { return broadcast_shapes(a, b, "broadcast_shapes"); });
}

}  // namespace chainrule::python
