// Shared helpers of the binding layer (the only code that includes pybind11).
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>

#include "chainrule/tensor.h"

namespace chainrule::python {

namespace py = pybind11;

// Elements above which a call releases the GIL while its kernel runs; below it, releasing
// and re-taking the lock costs more than the kernel.
constexpr std::int64_t kReleaseGilElements = 32768;

// Releases the GIL for the scope when the work is large enough.
class MaybeReleaseGil {
 public:
  explicit MaybeReleaseGil(std::int64_t elements) {
    if (elements >= kReleaseGilElements) release_.emplace();
  }

 private:
  std::optional<py::gil_scoped_release> release_;
};

// A Python bool, int or float as a Scalar; TypeError for anything else.
Scalar to_scalar(py::handle value, const char* op);

void register_tensor(py::module_& m);
void register_ops(py::module_& m);
void register_interop(py::module_& m);
void register_nn(py::module_& m);  // convolution, pooling, normalisation
void register_dim_ops(py::module_& m);  // gather, scatter, sort, topk, cumsum, cumprod
// The buffer-protocol description of a tensor's memory (strides included).
py::buffer_info buffer_of(const Tensor& t);

}  // namespace chainrule::python
