// chainrule._core: the C++ core as a Python module, registered area by area (register_*.cpp
// for the arrays and their ops; the autograd types, `apply`, the engine, the native ops and the
// optimizer steps each in their own file).
#include <omp.h>

#include "autograd.h"
#include "chainrule/config.h"
#include "chainrule/errors.h"
#include "../kernels/gemm.h"

#ifndef CHAINRULE_VERSION
#define CHAINRULE_VERSION "0.0.0"
#endif
#ifndef CHAINRULE_COMPILER
#define CHAINRULE_COMPILER "unknown"
#endif

namespace py = pybind11;
using namespace chainrule;

PYBIND11_MODULE(_core, m) {
  m.doc() = "chainrule's C++ tensor core";
  // chainrule's typed errors become ValueError, TypeError, ... (errors.cpp); pybind11 maps the rest.
  py::register_exception_translator([](std::exception_ptr error) {
    if (error && !python::set_core_error(error)) std::rethrow_exception(error);
  });

  python::register_tensor(m);
  python::register_ops(m);
  python::register_interop(m);
  python::register_tensor_type(m);
  python::register_node_type(m);
  python::register_apply(m);
  python::register_engine(m);
  python::register_native_ops(m);
  python::register_optimizer_steps(m);
  python::register_nn(m);
  python::register_dim_ops(m);
  python::compiling::register_compile(m);

  m.attr("__version__") = CHAINRULE_VERSION;
  m.attr("compiler") = CHAINRULE_COMPILER;
  m.attr("openmp_version") = _OPENMP;
  m.def("set_num_threads", &set_num_threads, py::arg("n"));
  m.def("get_num_threads", &get_num_threads);
  m.def("cache_sizes", [] {
    const CacheSizes& sizes = cache_sizes();
    return std::make_tuple(sizes.l1, sizes.l2, sizes.l3);
  });
  m.def("detected_cache_sizes", [] {
    const CacheSizes& sizes = detected_cache_sizes();
    return std::make_tuple(sizes.l1, sizes.l2, sizes.l3);
  });
  m.def("parse_cache_sizes", [](const std::string& spec) {
    const CacheSizes sizes = parse_cache_sizes(spec, detected_cache_sizes());
    return std::make_tuple(sizes.l1, sizes.l2, sizes.l3);
  }, py::arg("spec"));
  m.def("fma_peak_gflops", [](const std::string& name, double seconds) {
    for (const Isa isa : {Isa::Generic, Isa::Avx2, Isa::Avx512}) {
      if (name == isa_name(isa)) {
        if (!cpu_supports(isa)) {
          throw chainrule::ValueError("fma_peak_gflops: this CPU does not run '" + name + "'");
        }
        py::gil_scoped_release release;
        return gemm::fma_peak_gflops(isa, seconds);
      }
    }
    throw chainrule::ValueError("fma_peak_gflops: unknown ISA '" + name + "' (expected generic, avx2 or avx512)");
  }, py::arg("isa"), py::arg("seconds") = 0.3,
     "One core's float32 GFLOP/s running `isa`'s vector multiply-adds with no loads (the bench's yardstick).");
  m.def("active_isa", [] { return std::string(isa_name(active_isa())); });
  m.def("cpu_supports", [](const std::string& name) {
    for (const Isa isa : {Isa::Generic, Isa::Avx2, Isa::Avx512}) {
      if (name == isa_name(isa)) return cpu_supports(isa);
    }
    throw chainrule::ValueError("cpu_supports: unknown ISA '" + name + "' (expected generic, avx2 or avx512)");
  });
}
