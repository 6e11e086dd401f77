// The native differentiable ops: the ops a training step spends its time in, each with its
// forward (one core call, then the node recorded) beside its backward (the local chain rule:
// the upstream gradient times the local derivative), with no Python code on either path.
// Every other op is a Function subclass in python/chainrule/ops.py; both kinds of node run
// in the same engine (autograd.cpp), which sums each input's gradient down to its shape.
//
// Exposed as `_core.grad_<op>` (add, sub, mul, div, matmul, neg, exp, log, sigmoid, tanh, relu,
// sum, mean, linear, cross_entropy) and as chainrule.Tensor's operators (+ - * / @ and unary -).
#include "autograd.h"

#include <optional>

#include "chainrule/errors.h"
#include "chainrule/ops.h"

namespace chainrule::python {
namespace {

// ------------------------------------------------------------------ recording
// An operand's array. When the op's kernel will run without the GIL it is a copy: another
// thread may rebind the Tensor's array (t._data = ...) meanwhile. Otherwise it is read in place.
class Held {
 public:
  Held(const Tensor& now, bool copy) : copy_(copy ? now : Tensor()), array_(copy ? &copy_ : &now) {}
  Held(const Held&) = delete;
  Held& operator=(const Held&) = delete;
  const Tensor& operator*() const { return *array_; }
  const Tensor* operator->() const { return array_; }
  const Tensor* get() const { return array_; }

 private:
  Tensor copy_;
  const Tensor* array_ = nullptr;
};

// An optional operand's array (nullptr when absent).
const Tensor* get(const std::optional<Held>& held) { return held ? held->get() : nullptr; }

bool releases_gil(std::initializer_list<const Tensor*> arrays) {
  std::int64_t work = 0;
  for (const Tensor* a : arrays) work = std::max(work, a == nullptr ? 0 : a->numel());
  return work >= kReleaseGilElements;
}

// The node a native op records, made before any operand's array is read: allocating a
// Python object may run the garbage collector, whose finalizers could rebind a Tensor's array
// (t._data = ...) and leave a reference to the old one dangling. Empty when grad mode is off or
// no input requires grad.
class Recording {
 public:
  Recording(NativeOp op, std::initializer_list<PyObject*> inputs) {
    bool record = false;
    if (grad_enabled()) {
      for (PyObject* x : inputs) record = record || (is_tensor(x) && as_tensor(x)->requires_grad);
    }
    if (record) {
      node_ = py::reinterpret_steal<py::object>(new_node(native_node_type(), op));
      if (!node_) throw py::error_already_set();
    }
  }
  PyObject* node() const { return node_.ptr(); }

 private:
  py::object node_;
};

// Makes the result Tensor of a native op and, when recording, fills in its node: edges to the
// inputs (`arrays` are their arrays as the op used them; nullptr for a number or None), and
// what `save` keeps for backward.
template <typename Save>
PyObject* finish(Tensor out, const Recording& recording, std::initializer_list<PyObject*> inputs,
                 std::initializer_list<const Tensor*> arrays, Save save) {
  if (recording.node() == nullptr) return new_tensor(std::move(out), nullptr);
  NodeState& state = *as_node(recording.node())->state;
  state.edges.resize(inputs.size());
  auto array = arrays.begin();
  std::size_t i = 0;
  for (PyObject* x : inputs) set_edge(state, i++, x, *array++, /*number_operand=*/true);
  save(state.native, out);
  for (const Tensor& a : state.native.arrays) state.versions.push_back(a.version());
  return new_tensor(std::move(out), recording.node());
}

// A Tensor's array for an op; TypeError (naming the op) for anything else.
const Tensor& operand_array(PyObject* x, const char* op) {
  if (!is_tensor(x)) fail<TypeError>(op, ": expected a Tensor, got ", Py_TYPE(x)->tp_name);
  return tensor_array(x);
}

bool is_number(PyObject* x) { return PyFloat_Check(x) || PyLong_Check(x); }

PyObject* call_fallback(const char* name, PyObject* a, PyObject* b) {
  return PyObject_CallFunction(operator_fallback(), "sOO", name, a, b);
}

PyObject* grad_binary(NativeOp op, PyObject* a, PyObject* b) {
  static const std::pair<BinaryOp, const char*> kinds[] = {
      {BinaryOp::Add, "add"}, {BinaryOp::Sub, "sub"}, {BinaryOp::Mul, "mul"}, {BinaryOp::Div, "div"}};
  const auto& [kind, name] = kinds[static_cast<int>(op) - static_cast<int>(NativeOp::Add)];
  const bool a_tensor = is_tensor(a), b_tensor = is_tensor(b);
  // Tensors with Tensors or Python numbers; anything else (NumPy arrays, ...) goes to Python.
  if (!(a_tensor || is_number(a)) || !(b_tensor || is_number(b)) || !(a_tensor || b_tensor)) {
    return call_fallback(name, a, b);
  }
  try {
    const Recording recording(op, {a, b});
    const Tensor* x_now = a_tensor ? &tensor_array(a) : nullptr;
    const Tensor* y_now = b_tensor ? &tensor_array(b) : nullptr;
    const bool release = releases_gil({x_now, y_now});
    std::optional<Held> x, y;
    if (x_now != nullptr) x.emplace(*x_now, release);
    if (y_now != nullptr) y.emplace(*y_now, release);
    const Scalar x_scalar = a_tensor ? Scalar() : to_scalar(a, name);
    const Scalar y_scalar = b_tensor ? Scalar() : to_scalar(b, name);
    Tensor out;
    {
      MaybeReleaseGil gil(release ? kReleaseGilElements : 0);
      if (a_tensor && b_tensor) out = binary(kind, **x, **y);
      else if (a_tensor) out = binary(kind, **x, y_scalar);
      else out = binary(kind, x_scalar, **y);
    }
    return finish(std::move(out), recording, {a, b}, {get(x), get(y)}, [&](NativeSaved& saved, const Tensor& result) {
      const std::int8_t side = a_tensor ? (b_tensor ? -1 : 1) : 0;
      saved.scalar_side = side;
      if (side >= 0) saved.scalar = side == 0 ? x_scalar : y_scalar;
      if (op == NativeOp::Mul && side < 0) {
        saved.arrays = {**x, **y};  // d(ab)/da = b, d(ab)/db = a; times a number needs only the number
      } else if (op == NativeOp::Div && b_tensor) {
        saved.arrays = {**y, result};  // d(a/b)/db = -a/b^2 = -out/b
      }
    });
  } catch (...) {
    set_python_error();
    return nullptr;
  }
}

PyObject* grad_unary(NativeOp op, PyObject* a) {
  static const UnaryOp kinds[] = {UnaryOp::Neg, UnaryOp::Exp, UnaryOp::Log, UnaryOp::Sigmoid, UnaryOp::Tanh,
                                  UnaryOp::Relu};
  const UnaryOp kind = kinds[static_cast<int>(op) - static_cast<int>(NativeOp::Neg)];
  if (!is_tensor(a)) return call_fallback(unary_op_name(kind), a, Py_None);
  try {
    const Recording recording(op, {a});
    const Tensor& now = tensor_array(a);
    const bool release = releases_gil({&now});
    const Held x(now, release);
    Tensor out;
    {
      MaybeReleaseGil gil(release ? kReleaseGilElements : 0);
      out = unary(kind, *x);
    }
    return finish(std::move(out), recording, {a}, {x.get()}, [&](NativeSaved& saved, const Tensor& result) {
      if (op == NativeOp::Exp || op == NativeOp::Sigmoid || op == NativeOp::Tanh) saved.arrays = {result};
      if (op == NativeOp::Log || op == NativeOp::Relu) saved.arrays = {*x};
    });
  } catch (...) {
    set_python_error();
    return nullptr;
  }
}

PyObject* grad_matmul(PyObject* a, PyObject* b) {
  if (!is_tensor(a) || !is_tensor(b)) return call_fallback("matmul", a, b);
  try {
    const Recording recording(NativeOp::MatMul, {a, b});
    const Tensor& x_now = tensor_array(a);
    const Tensor& y_now = tensor_array(b);
    const bool release = releases_gil({&x_now, &y_now});
    const Held x(x_now, release), y(y_now, release);
    Tensor out;
    {
      MaybeReleaseGil gil(release ? kReleaseGilElements : 0);
      out = matmul(*x, *y);
    }
    return finish(std::move(out), recording, {a, b}, {x.get(), y.get()},
                  [&](NativeSaved& saved, const Tensor&) { saved.arrays = {*x, *y}; });
  } catch (...) {
    set_python_error();
    return nullptr;
  }
}

// ------------------------------------------------------------------ backward
Tensor reduced_grad(const NativeSaved& saved, const Tensor& g) {
  // Each input element went into its sum once: its gradient is the sum's, put back in place.
  const Shape& shape = saved.input_shape;
  const auto ndim = static_cast<std::int64_t>(shape.size());
  Shape kept = shape;
  std::int64_t count = 1;
  for (std::int64_t d = 0; d < ndim; ++d) {
    bool reduced = saved.dims.empty();
    for (const std::int64_t dim : saved.dims) reduced = reduced || dim == d || dim + ndim == d;
    if (reduced) {
      count *= shape[static_cast<std::size_t>(d)];
      kept[static_cast<std::size_t>(d)] = 1;
    }
  }
  Tensor scaled = g;
  if (saved.op == NativeOp::Mean && count > 0) scaled = binary(BinaryOp::Div, g, Scalar::from_double(double(count)));
  return scaled.reshape(kept).expand(shape);
}

std::vector<Tensor> matmul_backward(const Tensor& a, const Tensor& b, const Tensor& g, unsigned needed) {
  // A 1-D operand was a row (a) or a column (b) in the forward: treat it so, and drop that
  // dim again from its gradient; batch dims are summed by the engine.
  const Tensor a2 = a.ndim() == 1 ? a.unsqueeze(0) : a;
  const Tensor b2 = b.ndim() == 1 ? b.unsqueeze(1) : b;
  Tensor g2 = g;
  if (a.ndim() == 1) g2 = g2.unsqueeze(g2.ndim() >= 1 ? -2 : 0);
  if (b.ndim() == 1) g2 = g2.unsqueeze(-1);
  std::vector<Tensor> out(2);
  if (needed & 1u) {
    out[0] = matmul(g2, b2.transpose(-1, -2));
    if (a.ndim() == 1) out[0] = out[0].squeeze(-2);
  }
  if (needed & 2u) {
    out[1] = matmul(a2.transpose(-1, -2), g2);
    if (b.ndim() == 1) out[1] = out[1].squeeze(-1);
  }
  return out;
}

}  // namespace

std::vector<Tensor> native_backward(const NativeSaved& saved, const Tensor& g, unsigned needed) {
  const auto& arrays = saved.arrays;
  const bool want_a = needed & 1u, want_b = needed & 2u;
  switch (saved.op) {
    case NativeOp::Add:
      return {g, g};
    case NativeOp::Sub:
      return {g, want_b ? unary(UnaryOp::Neg, g) : Tensor()};
    case NativeOp::Mul:
      if (saved.scalar_side == 1) return {binary(BinaryOp::Mul, g, saved.scalar), Tensor()};
      if (saved.scalar_side == 0) return {Tensor(), binary(BinaryOp::Mul, g, saved.scalar)};
      return {want_a ? binary(BinaryOp::Mul, g, arrays[1]) : Tensor(),
              want_b ? binary(BinaryOp::Mul, g, arrays[0]) : Tensor()};
    case NativeOp::Div: {
      if (saved.scalar_side == 1) return {binary(BinaryOp::Div, g, saved.scalar), Tensor()};
      const Tensor ga = binary(BinaryOp::Div, g, arrays[0]);
      Tensor gb;
      if (want_b) gb = unary(UnaryOp::Neg, binary(BinaryOp::Mul, ga, arrays[1]));
      return {want_a ? ga : Tensor(), gb};
    }
    case NativeOp::Neg:
      return {unary(UnaryOp::Neg, g)};
    case NativeOp::Exp:
      return {binary(BinaryOp::Mul, g, arrays[0])};  // d e^x = e^x, the saved output
    case NativeOp::Log:
      return {binary(BinaryOp::Div, g, arrays[0])};  // d log x = 1 / x
    case NativeOp::Sigmoid:
      return {binary(BinaryOp::SigmoidBackward, g, arrays[0])};  // g y (1 - y), the lecture's g(z)(1 - g(z))
    case NativeOp::Tanh:
      return {binary(BinaryOp::TanhBackward, g, arrays[0])};  // g (1 - y^2)
    case NativeOp::Relu:
      return {binary(BinaryOp::ReluBackward, g, arrays[0])};  // g where x > 0, else 0
    case NativeOp::Sum:
    case NativeOp::Mean:
      return {reduced_grad(saved, g)};
    case NativeOp::MatMul:
      return matmul_backward(arrays[0], arrays[1], g, needed);
    case NativeOp::Linear: {
      // y = x W^T + b: dy/dx = W; dW = g^T x and db = column sums of g, over rows of every leading dim
      const Tensor& x = arrays[0];
      const Tensor& weight = arrays[1];
      std::vector<Tensor> out(3);
      if (want_a) out[0] = matmul(g, weight);
      // Rows counted explicitly: reshape's -1 cannot be inferred when a feature count is 0.
      const std::int64_t rows = numel_of(Shape(g.shape().begin(), g.shape().end() - 1));
      const Tensor rows_g = g.reshape({rows, g.shape().back()});
      if (want_b) out[1] = matmul(rows_g.transpose(0, 1), x.reshape({rows, x.shape().back()}));
      if (saved.has_bias && (needed & 4u)) out[2] = reduce(ReduceOp::Sum, rows_g, {0}, false);
      return out;
    }
    case NativeOp::CrossEntropy:
      // d loss_i / d logits_i = softmax(logits_i) - one_hot(class_i)
      return {cross_entropy_backward(g, arrays[0], arrays[1]), Tensor()};
    case NativeOp::Python:
      break;
  }
  fail<RuntimeError>("native_backward: not a native op");
}

namespace {

// ------------------------------------------------------------------ Python entry points
bool check_args(Py_ssize_t nargs, Py_ssize_t expected, const char* name) {
  if (nargs == expected) return true;
  PyErr_Format(PyExc_TypeError, "%s: expected %zd arguments, got %zd", name, expected, nargs);
  return false;
}

template <NativeOp op>
PyObject* binary_entry(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (!check_args(nargs, 2, native_op_name(op))) return nullptr;
  return op == NativeOp::MatMul ? grad_matmul(args[0], args[1]) : grad_binary(op, args[0], args[1]);
}

template <NativeOp op>
PyObject* unary_entry(PyObject*, PyObject* a) {
  return grad_unary(op, a);
}

// sum(t, dims, keepdim) and mean(...): dims a list of ints, or None or empty for all.
template <NativeOp op>
PyObject* reduce_entry(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  const char* name = op == NativeOp::Sum ? "sum" : "mean";
  if (!check_args(nargs, 3, name)) return nullptr;
  PyObject* a = args[0];
  const int keepdim = PyObject_IsTrue(args[2]);
  if (keepdim < 0) return nullptr;
  try {
    // Python code (a dim's __index__, the garbage collector) may run until the array is read.
    const auto dims = args[1] == Py_None ? std::vector<std::int64_t>() : py::handle(args[1]).cast<std::vector<std::int64_t>>();
    const Recording recording(op, {a});
    const Tensor& now = operand_array(a, name);
    const bool release = releases_gil({&now});
    const Held x(now, release);
    Tensor out;
    {
      MaybeReleaseGil gil(release ? kReleaseGilElements : 0);
      out = reduce(op == NativeOp::Sum ? ReduceOp::Sum : ReduceOp::Mean, *x, dims, keepdim != 0);
    }
    return finish(std::move(out), recording, {a}, {x.get()}, [&](NativeSaved& saved, const Tensor&) {
      saved.dims = dims;
      saved.input_shape = x->shape();
    });
  } catch (...) {
    set_python_error();
    return nullptr;
  }
}

// linear(x, weight, bias or None): x @ weight.T + bias as one node.
PyObject* linear_entry(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (!check_args(nargs, 3, "linear")) return nullptr;
  PyObject *x = args[0], *w = args[1], *b = args[2];
  try {
    const Recording recording(NativeOp::Linear, {x, w, b});
    const Tensor& input_now = operand_array(x, "linear");
    const Tensor& weight_now = operand_array(w, "linear");
    const Tensor* bias_now = b == Py_None ? nullptr : &operand_array(b, "linear");
    const bool release = releases_gil({&input_now, &weight_now});
    const Held input(input_now, release), weight(weight_now, release);
    std::optional<Held> bias;
    if (bias_now != nullptr) bias.emplace(*bias_now, release);
    Tensor out;
    {
      MaybeReleaseGil gil(release ? kReleaseGilElements : 0);
      out = linear(*input, *weight, get(bias));
    }
    return finish(std::move(out), recording, {x, w, b}, {input.get(), weight.get(), get(bias)},
                  [&](NativeSaved& saved, const Tensor&) {
                    saved.arrays = {*input, *weight};
                    saved.has_bias = bias.has_value();
                  });
  } catch (...) {
    set_python_error();
    return nullptr;
  }
}

// cross_entropy(logits, target): per-sample softmax cross-entropy against int64 classes.
PyObject* cross_entropy_entry(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (!check_args(nargs, 2, "cross_entropy")) return nullptr;
  PyObject *logits = args[0], *target = args[1];
  try {
    const Recording recording(NativeOp::CrossEntropy, {logits, target});
    const Tensor& logits_now = operand_array(logits, "cross_entropy");
    const Tensor& target_now = operand_array(target, "cross_entropy");
    const bool release = releases_gil({&logits_now});
    const Held l(logits_now, release), t(target_now, release);
    Tensor out;
    {
      MaybeReleaseGil gil(release ? kReleaseGilElements : 0);
      out = cross_entropy_loss(*l, *t);
    }
    return finish(std::move(out), recording, {logits, target}, {l.get(), t.get()},
                  [&](NativeSaved& saved, const Tensor&) { saved.arrays = {*l, *t}; });
  } catch (...) {
    set_python_error();
    return nullptr;
  }
}

template <typename F>
PyCFunction as_cfunction(F* f) {
  return reinterpret_cast<PyCFunction>(reinterpret_cast<void*>(f));
}

PyMethodDef grad_op_functions[] = {
    {"grad_add", as_cfunction(&binary_entry<NativeOp::Add>), METH_FASTCALL, "grad_add($module, a, b, /)\n--\n\na + b, recorded"},
    {"grad_sub", as_cfunction(&binary_entry<NativeOp::Sub>), METH_FASTCALL, "grad_sub($module, a, b, /)\n--\n\na - b, recorded"},
    {"grad_mul", as_cfunction(&binary_entry<NativeOp::Mul>), METH_FASTCALL, "grad_mul($module, a, b, /)\n--\n\na * b, recorded"},
    {"grad_div", as_cfunction(&binary_entry<NativeOp::Div>), METH_FASTCALL, "grad_div($module, a, b, /)\n--\n\na / b, recorded"},
    {"grad_matmul", as_cfunction(&binary_entry<NativeOp::MatMul>), METH_FASTCALL, "grad_matmul($module, a, b, /)\n--\n\na @ b, recorded"},
    {"grad_neg", as_cfunction(&unary_entry<NativeOp::Neg>), METH_O, "grad_neg($module, a, /)\n--\n\n-a, recorded"},
    {"grad_exp", as_cfunction(&unary_entry<NativeOp::Exp>), METH_O, "grad_exp($module, a, /)\n--\n\ne^a, recorded"},
    {"grad_log", as_cfunction(&unary_entry<NativeOp::Log>), METH_O, "grad_log($module, a, /)\n--\n\nlog(a), recorded"},
    {"grad_sigmoid", as_cfunction(&unary_entry<NativeOp::Sigmoid>), METH_O, "grad_sigmoid($module, a, /)\n--\n\n1 / (1 + e^-a), recorded"},
    {"grad_tanh", as_cfunction(&unary_entry<NativeOp::Tanh>), METH_O, "grad_tanh($module, a, /)\n--\n\ntanh(a), recorded"},
    {"grad_relu", as_cfunction(&unary_entry<NativeOp::Relu>), METH_O, "grad_relu($module, a, /)\n--\n\nmax(a, 0), recorded"},
    {"grad_sum", as_cfunction(&reduce_entry<NativeOp::Sum>), METH_FASTCALL, "grad_sum($module, a, dims, keepdim, /)\n--\n\nsum(a, dims, keepdim), recorded"},
    {"grad_mean", as_cfunction(&reduce_entry<NativeOp::Mean>), METH_FASTCALL, "grad_mean($module, a, dims, keepdim, /)\n--\n\nmean(a, dims, keepdim), recorded"},
    {"grad_linear", as_cfunction(&linear_entry), METH_FASTCALL, "grad_linear($module, input, weight, bias, /)\n--\n\nlinear(x, weight, bias or None), recorded"},
    {"grad_cross_entropy", as_cfunction(&cross_entropy_entry), METH_FASTCALL, "grad_cross_entropy($module, logits, target, /)\n--\n\ncross_entropy(logits, target): per-sample losses, recorded"},
    {nullptr, nullptr, 0, nullptr},
};

}  // namespace

// Tensor's operator slots (autograd.cpp puts them on TensorBase).
PyObject* tensor_add(PyObject* a, PyObject* b) { return grad_binary(NativeOp::Add, a, b); }
PyObject* tensor_sub(PyObject* a, PyObject* b) { return grad_binary(NativeOp::Sub, a, b); }
PyObject* tensor_mul(PyObject* a, PyObject* b) { return grad_binary(NativeOp::Mul, a, b); }
PyObject* tensor_div(PyObject* a, PyObject* b) { return grad_binary(NativeOp::Div, a, b); }
PyObject* tensor_matmul(PyObject* a, PyObject* b) { return grad_matmul(a, b); }
PyObject* tensor_neg(PyObject* a) { return grad_unary(NativeOp::Neg, a); }

void register_native_ops(py::module_& m) {
  if (PyModule_AddFunctions(m.ptr(), grad_op_functions) < 0) throw py::error_already_set();
}

}  // namespace chainrule::python
