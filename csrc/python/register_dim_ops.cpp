// The dim-wise index and scan ops (chainrule/dim_ops.h) as module functions, for the op
// table's entries in python/chainrule/ops/indexing.py and scans.py. Each call releases the
// GIL when its work is large.
#include "bindings.h"
#include "chainrule/dim_ops.h"

namespace chainrule::python {

void register_dim_ops(py::module_& m) {
  m.def("gather", [](const Tensor& a, std::int64_t dim, const Tensor& index) {
    MaybeReleaseGil gil(index.numel());
    return gather(a, dim, index);
  });
  m.def("scatter", [](const Tensor& a, std::int64_t dim, const Tensor& index, const Tensor& src) {
    MaybeReleaseGil gil(a.numel() + index.numel());
    return scatter(a, dim, index, src);
  });
  m.def("scatter_value", [](const Tensor& a, std::int64_t dim, const Tensor& index, py::handle value) {
    const Scalar s = to_scalar(value, "scatter");
    MaybeReleaseGil gil(a.numel() + index.numel());
    return scatter_value(a, dim, index, s);
  });
  m.def("scatter_add", [](const Tensor& a, std::int64_t dim, const Tensor& index, const Tensor& src) {
    MaybeReleaseGil gil(a.numel() + index.numel());
    return scatter_add(a, dim, index, src);
  });
  m.def("scatter_", [](const Tensor& out, std::int64_t dim, const Tensor& index, const Tensor& src) {
    MaybeReleaseGil gil(index.numel());
    scatter_(out, dim, index, src);
  });
  m.def("scatter_value_", [](const Tensor& out, std::int64_t dim, const Tensor& index, py::handle value) {
    const Scalar s = to_scalar(value, "scatter_");
    MaybeReleaseGil gil(index.numel());
    scatter_value_(out, dim, index, s);
  });
  m.def("scatter_add_", [](const Tensor& out, std::int64_t dim, const Tensor& index, const Tensor& src) {
    MaybeReleaseGil gil(index.numel());
    scatter_add_(out, dim, index, src);
  });
  m.def("sort", [](const Tensor& a, std::int64_t dim, bool descending) {
    MaybeReleaseGil gil(a.numel());
    return sort(a, dim, descending);
  });
  m.def("topk", [](const Tensor& a, std::int64_t k, std::int64_t dim, bool largest) {
    MaybeReleaseGil gil(a.numel());
    return topk(a, k, dim, largest);
  });
  m.def("cumsum", [](const Tensor& a, std::int64_t dim, bool reverse) {
    MaybeReleaseGil gil(a.numel());
    return cumsum(a, dim, reverse);
  });
  m.def("cumprod", [](const Tensor& a, std::int64_t dim) {
    MaybeReleaseGil gil(a.numel());
    return cumprod(a, dim);
  });
}

}  // namespace chainrule::python
