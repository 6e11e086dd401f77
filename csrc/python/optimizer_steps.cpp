// The optimizers' fused steps: one C++ call updates every parameter (the Python optimizers reach
// them through chainrule/optim/fused.py, their one door to _core).
#include "autograd.h"

#include "chainrule/errors.h"
#include "chainrule/ops.h"
#include "compile_hooks.h"

namespace chainrule::python {

namespace {

// sgd_step_(params, buffers, lr, momentum, dampening, weight_decay, nesterov): one SGD step of
// every parameter that has a gradient, in one call. `buffers` (with momentum) is a list beside
// params: a None entry gets a new momentum buffer (a Tensor) for a parameter with a gradient.
void sgd_step_list(const py::list& params, const py::object& buffers, double lr, double momentum, double dampening,
                   double weight_decay, bool nesterov) {
  const SgdSettings settings{lr, momentum, dampening, weight_decay, nesterov};
  const bool with_buffers = momentum != 0;
  py::list buffer_list;
  if (with_buffers) {
    buffer_list = buffers.cast<py::list>();
    if (buffer_list.size() != params.size()) throw ValueError("sgd_step_: one buffer entry per parameter");
  }
  for (std::size_t i = 0; i < params.size(); ++i) {
    PyObject* p = params[i].ptr();
    if (!is_tensor(p)) throw TypeError("sgd_step_: parameters must be Tensors");
    TensorObject* t = as_tensor(p);
    compiling::note_grad(p, t->grad, /*write=*/false);
    if (!is_set(t->grad)) continue;
    if (!is_tensor(t->grad)) throw TypeError("sgd_step_: a parameter's grad is not a Tensor");
    const Tensor param = tensor_array(p);
    const Tensor grad = tensor_array(t->grad).contiguous();
    Tensor buffer;
    bool fresh = false;
    if (with_buffers) {
      py::object entry = buffer_list[i];
      fresh = entry.is_none();
      if (fresh) {
        entry = wrap(Tensor::empty(param.shape(), param.dtype()));
        buffer_list[i] = entry;
      }
      if (!is_tensor(entry.ptr())) throw TypeError("sgd_step_: momentum buffers must be Tensors");
      buffer = tensor_array(entry.ptr());
    }
    // A non-contiguous parameter is updated through a contiguous copy.
    const Tensor target = param.is_contiguous() ? param : param.clone();
    sgd_step_(target, grad, with_buffers ? &buffer : nullptr, fresh, settings);
    if (!target.shares_storage(param)) copy_(param, target);
  }
}

}  // namespace

void register_optimizer_steps(py::module_& m) {
  m.def("sgd_step_", &sgd_step_list, py::arg("params"), py::arg("buffers"), py::arg("lr"), py::arg("momentum"),
        py::arg("dampening"), py::arg("weight_decay"), py::arg("nesterov"));
  m.def("adam_step_", [](const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                         const Tensor& step, double lr, double beta1, double beta2, double eps, double weight_decay,
                         bool decoupled) {
    MaybeReleaseGil gil(param.numel());
    adam_step_(param, grad, exp_avg, exp_avg_sq, step, AdamSettings{lr, beta1, beta2, eps, weight_decay, decoupled});
  });
}

}  // namespace chainrule::python
