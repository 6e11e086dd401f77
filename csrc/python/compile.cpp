// cr.compile's native half: a Recording runs around one eager call of the function and turns
// the core ops it saw (csrc/compile/program.h) plus the Python objects involved (arguments,
// parameters' .grad, results) into a CompiledProgram, whose run() checks the guards and
// replays the call without Python. python/chainrule/compile.py drives both.
#include <algorithm>
#include <unordered_map>

#include "../compile/program.h"
#include "autograd.h"
#include "chainrule/config.h"
#include "chainrule/errors.h"
#include "compile_hooks.h"

namespace chainrule::python::compiling {

thread_local Recording* current = nullptr;

namespace {

bool same_view(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.strides() == b.strides() && a.dtype() == b.dtype();
}

// The history of one leaf's .grad during the recorded call.
struct GradHistory {
  py::object leaf;
  bool first_is_write = false;
  py::object first_value;  // the value the first read saw (None or a Tensor)
  py::object last_value;   // the value at the end of the call
  bool written = false;
};

// What replay does with one leaf's .grad.
struct GradPlan {
  py::object leaf;
  enum class Entry { Any, None, Bound } entry = Entry::Any;  // what .grad must be at the call
  Tensor entry_view;  // Bound: the shape, strides and dtype it must have
  int bound = -1;     // Bound: its index among the program's bound inputs
  bool clear_first = false;  // the call starts by clearing it (zero_grad): clear before replaying
  enum class Final { Keep, None, Exit } final = Final::Keep;
  int exit = -1;
};

// A tensor object whose memory the program uses as it was: it must still hold that memory.
struct IdentityGuard {
  py::object weak;  // a weak reference to the chainrule.Tensor
  const Storage* storage;
  Shape shape, strides;
  std::int64_t offset;
  DType dtype;
};


}  // namespace

class Recording {
 public:
  explicit Recording(const py::list& arguments) {
    reads_.reserve(64);
    for (py::handle a : arguments) {
      if (!is_tensor(a.ptr())) throw TypeError("Recording: the arguments must be Tensors");
      builder_.bind(tensor_array(a.ptr()));
      argument_slots_.push_back(builder_.slot_of(tensor_array(a.ptr())));
      arguments_.push_back(a.ptr());
      requires_grad_.push_back(as_tensor(a.ptr())->requires_grad != 0);
    }
    num_arguments_ = arguments.size();
  }

  void start() {
    if (current != nullptr || record::recording() != nullptr) throw RuntimeError("cr.compile: already recording on this thread");
    grad_enabled_ = grad_enabled();
    threads_ = get_num_threads();
    current = this;
    record::set_recorder(&builder_);
  }
  void stop() {
    if (current != this) return;
    record::set_recorder(nullptr);
    current = nullptr;
  }
  ~Recording() { stop(); }

  // Only the object: its array is read again at the end (the call cannot rebind it, see
  // tensor_set_data), and holding the array here would count as another owner of its memory.
  void read(PyObject* tensor) {
    if (read_index_.find(tensor) >= 0) return;
    read_index_.insert(tensor, static_cast<int>(reads_.size()));
    reads_.push_back(py::reinterpret_borrow<py::object>(tensor));
  }

  void grad(PyObject* leaf, PyObject* value, bool write) {
    py::object v = py::reinterpret_borrow<py::object>(is_set(value) ? value : Py_None);
    auto [it, fresh] = grads_.try_emplace(leaf);
    GradHistory& h = it->second;
    if (fresh) {
      h.leaf = py::reinterpret_borrow<py::object>(leaf);
      h.first_is_write = write;
      h.first_value = v;
      order_.push_back(leaf);
    }
    h.last_value = v;
    h.written = h.written || write;
  }

  bool backward_ran = false;
  std::vector<std::string> reasons() const { return builder_.reasons(); }
  void unsupported(const std::string& reason) { builder_.unsupported(reason); }

  py::object finish(const py::list& outputs, bool fuse);

 private:
  // Whether anything but this recording holds the object.
  bool held_elsewhere(PyObject* o) const {
    const Py_ssize_t ours = (read_index_.find(o) >= 0 ? 1 : 0) + (grads_.count(o) != 0 ? 1 : 0);
    return Py_REFCNT(o) > ours;
  }

  compile::Builder builder_;
  std::size_t num_arguments_ = 0;
  std::vector<bool> requires_grad_;
  bool grad_enabled_ = true;
  int threads_ = 1;
  std::vector<py::object> reads_;  // strong until finish
  compile::PointerMap read_index_;  // object -> its place in reads_
  std::vector<int> argument_slots_;  // the slot of each argument's memory
  std::vector<PyObject*> arguments_;
  std::unordered_map<PyObject*, GradHistory> grads_;
  std::vector<PyObject*> order_;  // leaves in the order their .grad was first touched
};

// ------------------------------------------------------------------ the compiled program

class CompiledProgram {
 public:
  // Checks the guards; when they hold, replays and returns the results (new Tensors), else
  // returns None and keeps the reason in `guard_failure`.
  py::object run(const py::list& arguments) {
    // Another thread replays this program now (the GIL is released during a long replay): its
    // buffers are in use. The caller runs the function eagerly instead.
    if (busy_) return fail(kBusy);
    if (grad_enabled() != grad_enabled_) return fail("grad mode changed");
    if (get_num_threads() != threads_) return fail("the thread count changed");
    if (arguments.size() != requires_grad_.size()) return fail("the number of tensor arguments changed");
    std::vector<Tensor> bound;
    bound.reserve(bound_count_);
    for (std::size_t i = 0; i < arguments.size(); ++i) {
      PyObject* a = arguments[i].ptr();
      if (!is_tensor(a)) return fail("an argument is no longer a Tensor");
      if ((as_tensor(a)->requires_grad != 0) != requires_grad_[i]) return fail("requires_grad of an argument changed");
      bound.push_back(tensor_array(a));
    }
    for (const IdentityGuard& g : identities_) {
      PyObject* t = PyWeakref_GetObject(g.weak.ptr());
      if (t == Py_None) continue;  // gone: nothing can reach the memory through it any more
      const Tensor& now = tensor_array(t);
      if (now.storage().get() != g.storage || now.shape() != g.shape || now.strides() != g.strides ||
          now.offset() != g.offset || now.dtype() != g.dtype) {
        return fail("a tensor the function uses was given new memory (t.data = ..., model.to(...))");
      }
    }
    bound.resize(bound_count_);
    for (const GradPlan& plan : grads_) {
      PyObject* grad = as_tensor(plan.leaf.ptr())->grad;
      if (plan.entry == GradPlan::Entry::None && is_set(grad)) return fail("a .grad the function expects empty is set");
      if (plan.entry == GradPlan::Entry::Bound) {
        if (!is_set(grad) || !is_tensor(grad)) return fail("a .grad the function reads is not set");
        if (!same_view(tensor_array(grad), plan.entry_view)) return fail("a .grad the function reads changed shape");
        if (plan.bound >= 0) bound[static_cast<std::size_t>(plan.bound)] = tensor_array(grad);
      }
    }
    std::string why;
    if (!program_->accepts(bound, &why)) return fail(why);

    for (const GradPlan& plan : grads_) {
      if (plan.clear_first) set_grad(plan.leaf.ptr(), nullptr);
    }
    bool same_values = false;
    {
      busy_ = true;
      struct Done {
        bool& busy;
        ~Done() { busy = false; }
      } done{busy_};
      MaybeReleaseGil gil(program_->work());
      same_values = program_->replay(bound);
    }
    if (!same_values) return fail("a value the function read with .item() or bool() came out different");
    for (const GradPlan& plan : grads_) {
      if (plan.final == GradPlan::Final::None) set_grad(plan.leaf.ptr(), nullptr);
      if (plan.final == GradPlan::Final::Exit) {
        set_grad(plan.leaf.ptr(), py::reinterpret_steal<py::object>(new_tensor(program_->exit(plan.exit), nullptr)).ptr());
      }
    }
    py::list results;
    for (const int e : outputs_) {
      results.append(py::reinterpret_steal<py::object>(new_tensor(program_->exit(e), nullptr)));
    }
    return std::move(results);
  }

  static constexpr const char* kBusy = "busy: another thread replays this program";
  std::string guard_failure;
  std::vector<std::string> steps() const { return program_->step_names(); }
  std::vector<double> time_steps(int repeats) { return program_->time_steps(repeats); }

 private:
  friend class Recording;
  py::object fail(std::string why) {
    guard_failure = std::move(why);
    return py::none();
  }
  static void set_grad(PyObject* leaf, PyObject* value) {
    TensorObject* t = as_tensor(leaf);
    Py_XINCREF(value);
    Py_XSETREF(t->grad, value);
  }

  std::unique_ptr<compile::Program> program_;
  bool busy_ = false;
  bool grad_enabled_ = true;
  int threads_ = 1;
  std::vector<bool> requires_grad_;
  std::size_t bound_count_ = 0;
  std::vector<IdentityGuard> identities_;
  std::vector<GradPlan> grads_;
  std::vector<int> outputs_;
};

py::object Recording::finish(const py::list& outputs, bool fuse) {
  auto program = std::make_unique<CompiledProgram>();
  program->grad_enabled_ = grad_enabled_;
  program->threads_ = threads_;
  program->requires_grad_ = requires_grad_;
  // .grad: what it must be when the call starts, and what it is when it ends. Leaves made
  // during the call (results, temporaries) are not the caller's: they are left out.
  std::vector<std::pair<GradHistory*, int>> entry_bindings;
  for (PyObject* leaf : order_) {
    GradHistory& h = grads_[leaf];
    if (!held_elsewhere(leaf) || !as_tensor(leaf)->has_array) continue;  // a temporary of the call
    const int home = builder_.slot_of(tensor_array(leaf));
    if (home >= 0 && builder_.is_internal(home)) continue;
    GradPlan plan;
    plan.leaf = h.leaf;
    if (h.first_is_write) {
      plan.clear_first = true;
    } else if (h.first_value.is_none()) {
      plan.entry = GradPlan::Entry::None;
    } else {
      plan.entry = GradPlan::Entry::Bound;
      plan.entry_view = tensor_array(h.first_value.ptr());
      // The ops read the .grad the call found: at each replay, the one found then.
      if (builder_.slot_of(plan.entry_view) >= 0) plan.bound = builder_.bind(plan.entry_view, /*adopt=*/true);
    }
    if (h.written) {
      if (h.last_value.is_none()) {
        plan.final = GradPlan::Final::None;
      } else {
        plan.exit = builder_.add_exit(tensor_array(h.last_value.ptr()));
        plan.final = plan.exit >= 0 ? GradPlan::Final::Exit : GradPlan::Final::Keep;
      }
    }
    program->grads_.push_back(std::move(plan));
  }
  for (py::handle out : outputs) {
    if (!is_tensor(out.ptr())) throw TypeError("Recording.finish: the outputs must be Tensors");
    program->outputs_.push_back(builder_.add_exit(tensor_array(out.ptr())));
  }
  // Identity guards: every tensor object still alive whose memory the program uses as it was.
  for (const py::object& held : reads_) {
    PyObject* object = held.ptr();
    if (!held_elsewhere(object) || !as_tensor(object)->has_array) continue;  // a temporary of the call
    const Tensor& array = tensor_array(object);
    const int slot = builder_.slot_of(array);
    if (slot < 0 || builder_.is_internal(slot)) continue;
    const bool argument_memory = std::count(argument_slots_.begin(), argument_slots_.end(), slot) != 0;
    if (argument_memory) {
      // An object the caller keeps (a parameter, a global) whose memory was also passed in as
      // an argument: rebinding the argument at a replay would move it too.
      const bool argument = std::count(arguments_.begin(), arguments_.end(), object) != 0;
      bool output = false;
      for (py::handle out : outputs) output = output || out.ptr() == object;
      if (!argument && !output) {
        builder_.unsupported("a tensor argument shares memory with a tensor the function reaches otherwise");
      }
      continue;
    }
    program->identities_.push_back(IdentityGuard{py::weakref(held), array.storage().get(), array.shape(),
                                                 array.strides(), array.offset(), array.dtype()});
  }
  reads_.clear();
  if (!builder_.reasons().empty()) return py::none();
  program->program_ = builder_.finish(fuse);
  program->bound_count_ = num_arguments_;
  for (const GradPlan& plan : program->grads_) {
    program->bound_count_ = std::max(program->bound_count_, static_cast<std::size_t>(plan.bound + 1));
  }
  return py::cast(std::move(program));
}

void note_read_slow(PyObject* tensor) { current->read(tensor); }
void note_grad_slow(PyObject* leaf, PyObject* grad, bool write) { current->grad(leaf, grad, write); }
void note_backward_slow() { current->backward_ran = true; }

void register_compile(py::module_& m) {
  py::class_<CompiledProgram>(m, "CompiledProgram")
      .def("run", &CompiledProgram::run, py::arg("arguments"))
      .def_readonly("guard_failure", &CompiledProgram::guard_failure)
      .def_property_readonly("steps", &CompiledProgram::steps)
      .def("time_steps", &CompiledProgram::time_steps, py::arg("repeats"),
           "Nanoseconds per step, averaged over `repeats` runs of the steps alone, for profiling: they "
           "run for real (a training step's parameters are updated each time).");
  py::class_<Recording>(m, "Recording")
      .def(py::init<const py::list&>(), py::arg("arguments"))
      .def("start", &Recording::start)
      .def("stop", &Recording::stop)
      .def("unsupported", &Recording::unsupported)
      .def_readonly("backward_ran", &Recording::backward_ran)
      .def_property_readonly("reasons", &Recording::reasons)
      .def("finish", &Recording::finish, py::arg("outputs"), py::arg("fuse") = true,
           "The recorded program (None when it cannot be replayed); with `fuse`, chains of elementwise "
           "steps run as fused steps.");
}

}  // namespace chainrule::python::compiling
