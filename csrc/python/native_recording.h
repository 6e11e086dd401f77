// What every native op's forward entry shares: reading the operands' arrays safely, deciding
// whether to record, and making the result Tensor with its node. The ops themselves are in
// native_elementwise.cpp and native_reduce_matmul.cpp.
#pragma once
#include <optional>

#include "autograd.h"
#include "chainrule/errors.h"
#include "chainrule/ops.h"

namespace chainrule::python {

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
inline const Tensor* get(const std::optional<Held>& held) { return held ? held->get() : nullptr; }

inline bool releases_gil(std::initializer_list<const Tensor*> arrays) {
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
inline const Tensor& operand_array(PyObject* x, const char* op) {
  if (!is_tensor(x)) fail<TypeError>(op, ": expected a Tensor, got ", Py_TYPE(x)->tp_name);
  return tensor_array(x);
}

inline bool check_args(Py_ssize_t nargs, Py_ssize_t expected, const char* name) {
  if (nargs == expected) return true;
  PyErr_Format(PyExc_TypeError, "%s: expected %zd arguments, got %zd", name, expected, nargs);
  return false;
}

// Operands the native path does not take (NumPy arrays, ...) go to Python's operator_fallback.
inline PyObject* call_fallback(const char* name, PyObject* a, PyObject* b) {
  return PyObject_CallFunction(operator_fallback(), "sOO", name, a, b);
}

template <typename F>
PyCFunction as_cfunction(F* f) {
  return reinterpret_cast<PyCFunction>(reinterpret_cast<void*>(f));
}

}  // namespace chainrule::python
