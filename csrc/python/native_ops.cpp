// The table of native ops, keyed by the op: each unit (native_elementwise.cpp,
// native_reduce_matmul.cpp) is listed once here, in any order; its forward becomes the _core
// function `grad_<op>` and its backward is what the engine calls for its nodes.
#include <array>

#include "autograd.h"
#include "chainrule/errors.h"

namespace chainrule::python {
namespace {

const NativeOpDef* const kUnits[] = {
    &add_op, &sub_op, &mul_op, &div_op, &neg_op, &exp_op, &log_op, &sigmoid_op, &tanh_op, &relu_op,
    &sum_op, &mean_op, &matmul_op, &linear_op, &cross_entropy_op,
};

constexpr auto kKeys = static_cast<std::size_t>(NativeOp::Count);

// Each unit at its key; filled on first use (after every unit's constant initialization).
const std::array<const NativeOpDef*, kKeys>& table() {
  static const std::array<const NativeOpDef*, kKeys> by_op = [] {
    std::array<const NativeOpDef*, kKeys> out{};
    for (const NativeOpDef* unit : kUnits) out[static_cast<std::size_t>(unit->op)] = unit;
    return out;
  }();
  return by_op;
}

// The forward entries as module functions; kept for the module's lifetime.
std::array<PyMethodDef, std::size(kUnits) + 1> entries{};

}  // namespace

const NativeOpDef& native_op_def(NativeOp op) {
  const NativeOpDef* unit = table()[static_cast<std::size_t>(op)];
  if (unit == nullptr) fail<RuntimeError>("native_op_def: op ", static_cast<int>(op), " is not a native op");
  return *unit;
}

void register_native_ops(py::module_& m) {
  for (std::size_t key = 1; key < kKeys; ++key) {
    if (table()[key] == nullptr) fail<RuntimeError>("register_native_ops: native op ", key, " has no unit");
  }
  py::list names;
  for (std::size_t i = 0; i < std::size(kUnits); ++i) {
    const NativeOpDef& unit = *kUnits[i];
    entries[i] = PyMethodDef{unit.entry, unit.forward, unit.flags, unit.doc};
    names.append(unit.name);
  }
  entries[std::size(kUnits)] = PyMethodDef{nullptr, nullptr, 0, nullptr};
  if (PyModule_AddFunctions(m.ptr(), entries.data()) < 0) throw py::error_already_set();
  // The op table (python/chainrule/ops) has one entry for each of these (tests check it).
  m.attr("NATIVE_OPS") = py::tuple(names);
}

}  // namespace chainrule::python
