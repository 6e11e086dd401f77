// Recording the core's ops, for cr.compile. Every op of the core (ops.h, nn_ops.h, random.h)
// starts with one line: when this thread records, the op runs through `record::result` (or
// `record::in_place`), which runs it and tells the recorder its operands, its results and how
// to run it again (a closure over its non-tensor arguments). Forward, backward (both engines),
// the fused optimizer steps and whatever a Python op computes with _core all pass here, so a
// recording of them needs no case per layer. Views are not ops: an operand is a view (shape,
// strides, offset) of a storage, and the recorder keys what it saw by storage.
//
// An op called inside a recorded op (clone inside reshape, matmul inside linear) is part of
// it and is not recorded again. When no thread records, each op pays one thread-local read.
#pragma once
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "chainrule/tensor.h"

namespace chainrule::record {

using Tensors = std::vector<Tensor>;
// Runs an op again on new values of its tensor operands and returns its results.
using Rerun = std::function<Tensors(const Tensors& operands)>;
// Runs an op of one result again, writing it into `result` (the memory the replay keeps for
// it) with the same kernel: no allocation, no copy. Optional; the hot ops have one.
using Into = std::function<void(const Tensors& operands, const Tensor& result)>;

// An elementwise op's loop over contiguous runs, declared by the ops whose kernel is one
// (binary and unary ops whose functor computes in its operands' dtype: elementwise_ops.h), so
// that a replay can fuse a chain of them into one pass (csrc/compile/program.cpp).
// loop(x, y, out, n, side) computes out[i] = op(x[i], y[i]) (a unary op ignores y) for i < n;
// with side 1, x is one value read for every i; with side 2, y is. It is the very loop the
// eager kernel runs on a contiguous run, so the fused pass gives the same bits.
struct Elementwise {
  using Loop = void (*)(const void* x, const void* y, void* out, std::int64_t n, int side);
  Loop loop = nullptr;       // nullptr: the op is not elementwise (or not in this case)
  const char* name = "";     // the op ("add", "sigmoid"), for the fused step's name
  int arity = 0;             // 1 or 2
  int constant_side = 0;     // 1 or 2: that operand is a Python number, whose bytes (in the
  alignas(8) unsigned char constant[8] = {};  // operands' dtype) are here
};

class Recorder {
 public:
  virtual ~Recorder() = default;
  // The op `name` ran on `operands` (those at the positions in `written` were changed in
  // place) and made `results`; `rerun` runs it again; `elementwise`, when not nullptr, is its
  // loop for fusing.
  virtual void op(const char* name, Tensors operands, const std::vector<int>& written,
                  const Tensors& results, Rerun rerun, Into into, const Elementwise* elementwise) = 0;
  // Something happened that a replay cannot repeat (values handed to NumPy, a hook, ...).
  virtual void unsupported(std::string reason) = 0;
  // Python read the one value of `t` (item(), bool(t)): what it does next may depend on it.
  virtual void value_read(const Tensor& t) = 0;
  // Memory allocated outside any op (a tensor from Python data, the buffer of a clone).
  virtual void allocated(const std::shared_ptr<Storage>& storage) = 0;
  // How many references to `storage` the recording itself holds (code that asks whether
  // anyone else holds an array, like the engine before it adopts a gradient, discounts them).
  virtual long references(const Storage* storage) const = 0;
};

namespace detail {
extern thread_local Recorder* recording;  // this thread's recorder, or nullptr
extern thread_local Recorder* active;     // the same, but nullptr inside a recorded op
}  // namespace detail

// The recorder a core op called now reports to: nullptr when this thread does not record or
// the caller is itself a recorded op.
inline Recorder* active() { return detail::active; }
// This thread's recorder, even inside an op.
inline Recorder* recording() { return detail::recording; }
// Starts (recorder) or stops (nullptr) recording on this thread.
void set_recorder(Recorder* recorder);

// Runs `rerun(operands)` as the op `name` and records it; returns its results.
Tensors run(const char* name, Tensors operands, std::vector<int> written, Rerun rerun, Into into = nullptr,
            const Elementwise* elementwise = nullptr);

// An op with one tensor result: f(operands) -> Tensor; into(operands, result) writes the same
// result into given memory.
template <typename F>
Tensor result(const char* name, Tensors operands, F f, Into into = nullptr, const Elementwise* elementwise = nullptr) {
  Tensors results = run(
      name, std::move(operands), {},
      [f](const Tensors& x) {
        Tensors one;  // not Tensors{f(x)}: an initializer list copies, allocating the shape and strides again
        one.reserve(1);
        one.push_back(f(x));
        return one;
      },
      std::move(into), elementwise);
  return std::move(results[0]);  // moved, not copied: a copy allocates its shape and strides again
}
// An op that writes operand 0 in place and returns nothing: f(operands).
template <typename F>
void in_place(const char* name, Tensors operands, F f) {
  run(name, std::move(operands), {0}, [f](const Tensors& x) {
    f(x);
    return Tensors{};
  });
}
// An optional tensor argument as an operand (an undefined Tensor when absent) and back.
inline Tensor optional(const Tensor* t) { return t != nullptr ? *t : Tensor(); }
inline const Tensor* optional(const Tensor& t) { return t.defined() ? &t : nullptr; }

// The references to `storage` the recording of this thread holds (0 when none records).
inline long references(const Storage* storage) {
  return recording() != nullptr ? recording()->references(storage) : 0;
}

// Tells the recorder, if any, that the replay cannot repeat what happens now.
inline void unsupported(const char* reason) {
  if (Recorder* r = recording()) r->unsupported(reason);
}

}  // namespace chainrule::record
