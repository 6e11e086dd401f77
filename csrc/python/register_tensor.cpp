// chainrule._core.Tensor (the raw strided array), dtypes, NumPy exchange, creation, random.
#include <array>
#include <cstring>

#include "bindings.h"
#include "chainrule/errors.h"
#include "chainrule/ops.h"
#include "chainrule/random.h"
#include "chainrule/record.h"

namespace chainrule::python {
namespace {

py::dtype numpy_dtype(DType dtype) {
  switch (dtype) {
    case DType::Bool: return py::dtype::of<bool>();
    case DType::Int64: return py::dtype::of<std::int64_t>();
    case DType::Float32: return py::dtype::of<float>();
    case DType::Float64: return py::dtype::of<double>();
  }
  return py::dtype::of<float>();
}

std::optional<DType> dtype_from_numpy(const py::dtype& dt) {
  const char kind = dt.kind();
  const auto size = dt.itemsize();
  if (kind == 'b' && size == 1) return DType::Bool;
  if (kind == 'i' && size == 8) return DType::Int64;
  if (kind == 'f' && size == 4) return DType::Float32;
  if (kind == 'f' && size == 8) return DType::Float64;
  return std::nullopt;
}

// An ndarray viewing the tensor's memory; `owner` (the Python Tensor) keeps it alive.
py::array to_numpy(const Tensor& t, py::handle owner) {
  record::unsupported(".numpy() / .tolist() hands a tensor's values to Python (a replay cannot repeat what Python does with them)");
  std::vector<py::ssize_t> shape(t.shape().begin(), t.shape().end());
  std::vector<py::ssize_t> strides;
  for (const std::int64_t s : t.strides()) strides.push_back(s * itemsize(t.dtype()));
  return py::array(numpy_dtype(t.dtype()), shape, strides, t.data(), owner);
}

// A Tensor sharing the memory of a NumPy array; the array stays alive while the storage does.
Tensor from_numpy(const py::array& array) {
  const std::string byteorder = py::str(array.dtype().attr("byteorder"));
  if (byteorder == (PY_LITTLE_ENDIAN ? ">" : "<")) {
    fail<ValueError>("from_numpy: the array's byte order (", byteorder, ") is not the machine's; "
                     "convert it first, e.g. with array.astype(array.dtype.newbyteorder('='))");
  }
  if (!array.writeable()) {
    // A chainrule tensor may be written in place; memory NumPy marked read-only (a read-only
    // memmap, say) would then fault. A copy is the safe way in.
    fail<ValueError>("from_numpy: the array is read-only; pass a writable copy (numpy.array(a)) "
                     "or use chainrule.tensor(a), which copies");
  }
  const std::optional<DType> dtype = dtype_from_numpy(array.dtype());
  if (!dtype) {
    fail<TypeError>("from_numpy: unsupported dtype ", std::string(py::str(array.dtype())),
                    " (expected float32, float64, int64 or bool)");
  }
  const std::int64_t item = itemsize(*dtype);
  Shape shape, strides;
  std::int64_t low = 0, high = 0;  // byte offsets of the extreme elements from array.data()
  for (py::ssize_t d = 0; d < array.ndim(); ++d) {
    const std::int64_t size = array.shape(d), stride = array.strides(d);
    if (stride % item != 0) {
      fail<ValueError>("from_numpy: byte stride ", stride, " of dim ", d, " is not a multiple of the item size ",
                       item, "; copy the array first");
    }
    shape.push_back(size);
    strides.push_back(stride / item);
    if (size > 0) (stride < 0 ? low : high) += stride * (size - 1);
  }
  char* first = static_cast<char*>(const_cast<void*>(array.data())) + low;
  const std::int64_t nbytes = array.size() == 0 ? 0 : high - low + item;
  auto* keep = new py::object(array);
  std::shared_ptr<void> owner(keep, [](void* p) {
    py::gil_scoped_acquire gil;
    delete static_cast<py::object*>(p);
  });
  return Tensor(Storage::wrap(first, nbytes, std::move(owner)), shape, strides, -low / item, *dtype);
}

py::object item(const Tensor& t) {
  if (t.numel() != 1) {
    fail<ValueError>("item: only a tensor with one element can be converted to a Python scalar, got shape ",
                     t.shape());
  }
  // Python may branch on the value: a recording checks it again at each replay.
  if (record::Recorder* recorder = record::recording()) recorder->value_read(t);
  switch (t.dtype()) {
    case DType::Bool: return py::bool_(*t.data_as<bool>());
    case DType::Int64: return py::int_(*t.data_as<std::int64_t>());
    case DType::Float32: return py::float_(*t.data_as<float>());
    case DType::Float64: return py::float_(*t.data_as<double>());
  }
  return py::none();
}

// The four dtype objects, made once and never destroyed (destroying Python objects after the
// interpreter has finalized would crash at exit): pybind11 would build a new enum object per
// call, and every op on the autograd path asks for a dtype.
const std::array<py::object, 4>& dtype_objects() {
  static const auto* objects = new std::array<py::object, 4>{
      py::cast(DType::Bool), py::cast(DType::Int64), py::cast(DType::Float32), py::cast(DType::Float64)};
  return *objects;
}

py::tuple to_tuple(const Shape& shape) {
  py::tuple out(shape.size());
  for (std::size_t i = 0; i < shape.size(); ++i) out[i] = py::int_(shape[i]);
  return out;
}

}  // namespace

Scalar to_scalar(py::handle value, const char* op) {
  if (PyBool_Check(value.ptr())) return Scalar::from_bool(value.ptr() == Py_True);
  if (PyLong_Check(value.ptr())) {
    int overflow = 0;
    const long long v = PyLong_AsLongLongAndOverflow(value.ptr(), &overflow);
    if (overflow) fail<ValueError>(op, ": integer ", std::string(py::str(value)), " does not fit in int64");
    return Scalar::from_int(v);
  }
  if (PyFloat_Check(value.ptr())) return Scalar::from_double(PyFloat_AS_DOUBLE(value.ptr()));
  // NumPy scalars and 0-d arrays: go through their Python value.
  if (py::isinstance<py::array>(value) || PyObject_HasAttrString(value.ptr(), "item")) {
    py::object plain = value.attr("item")();
    if (PyBool_Check(plain.ptr()) || PyLong_Check(plain.ptr()) || PyFloat_Check(plain.ptr())) {
      return to_scalar(plain, op);
    }
  }
  fail<TypeError>(op, ": expected a tensor or a Python number, got ",
                  std::string(py::str(py::type::of(value).attr("__name__"))));
}

void register_tensor(py::module_& m) {
  py::enum_<DType>(m, "DType")
      .value("bool", DType::Bool)
      .value("int64", DType::Int64)
      .value("float32", DType::Float32)
      .value("float64", DType::Float64)
      .def_property_readonly("itemsize", [](DType d) { return itemsize(d); })
      .def_property_readonly("is_floating_point", [](DType d) { return is_floating(d); });
  m.attr("DTYPES") = py::make_tuple(dtype_objects()[0], dtype_objects()[1], dtype_objects()[2],
                                    dtype_objects()[3]);
  m.def("promote_types", &promote);
  m.def("numpy_dtype", &numpy_dtype);

  py::class_<Tensor>(m, "Tensor", py::buffer_protocol(),
                     "A strided view of a shared storage (no autograd; see chainrule.Tensor)")
      .def_buffer(&buffer_of)
      .def_property_readonly("shape", [](const Tensor& t) { return to_tuple(t.shape()); })
      .def_property_readonly("strides", [](const Tensor& t) { return to_tuple(t.strides()); })
      .def_property_readonly("offset", &Tensor::offset)
      // The four dtype objects are made once: pybind11 would build a new enum object per call,
      // and every op on the autograd path asks for a dtype.
      .def_property_readonly("dtype", [](const Tensor& t) -> py::object {
        return dtype_objects()[static_cast<std::size_t>(t.dtype())];
      })
      .def_property_readonly("ndim", &Tensor::ndim)
      .def_property_readonly("version", &Tensor::version)
      // How many arrays (views, saved arrays of graph nodes) share this storage: what tests
      // read to see a graph let go of what it saved.
      .def_property_readonly("storage_refs", [](const Tensor& t) { return t.storage().use_count(); })
      .def_property_readonly("data_ptr", [](const Tensor& t) { return reinterpret_cast<std::uintptr_t>(t.data()); })
      .def("numel", &Tensor::numel)
      .def("size", &Tensor::size)
      .def("is_contiguous", &Tensor::is_contiguous)
      .def("shares_storage", &Tensor::shares_storage)
      .def("bump_version", &Tensor::bump_version)
      .def("item", &item)
      .def("numpy", [](py::object self) { return to_numpy(self.cast<const Tensor&>(), self); })
      .def("view", &Tensor::view)
      .def("reshape", &Tensor::reshape)
      .def("transpose", &Tensor::transpose)
      .def("permute", &Tensor::permute)
      .def("expand", &Tensor::expand)
      .def("squeeze", py::overload_cast<>(&Tensor::squeeze, py::const_))
      .def("squeeze", py::overload_cast<std::int64_t>(&Tensor::squeeze, py::const_))
      .def("unsqueeze", &Tensor::unsqueeze)
      .def("flatten", &Tensor::flatten)
      .def("slice", &Tensor::slice)
      .def("select", &Tensor::select)
      .def("as_strided", [](const Tensor& t, const Shape& shape, const Shape& strides, std::int64_t offset) {
        // A view must stay inside its storage: check the extreme elements it can reach.
        if (shape.size() != strides.size()) {
          fail<ValueError>("as_strided: shape ", shape, " and strides ", strides, " differ in length");
        }
        const std::int64_t count = checked_numel(shape, "as_strided");
        std::int64_t low = offset, high = offset;
        for (std::size_t d = 0; d < shape.size() && count > 0; ++d) {
          const std::int64_t span = strides[d] * (shape[d] - 1);
          (span < 0 ? low : high) += span;
        }
        const std::int64_t elements = t.storage()->nbytes() / itemsize(t.dtype());
        if (count > 0 && (low < 0 || high >= elements)) {
          fail<IndexError>("as_strided: the view reaches elements [", low, ", ", high,
                           "] outside its storage of ", elements, " elements");
        }
        return t.as_strided(shape, strides, offset);
      })
      .def("contiguous", &Tensor::contiguous)
      .def("clone", [](const Tensor& t) {
        MaybeReleaseGil gil(t.numel());
        return t.clone();
      })
      .def("to", [](const Tensor& t, DType dtype) {
        MaybeReleaseGil gil(t.numel());
        return t.to(dtype);
      });

  m.def("from_numpy", &from_numpy, py::arg("array"));
  m.def("empty", &Tensor::empty, py::arg("shape"), py::arg("dtype"));
  m.def("full", [](const Shape& shape, py::handle value, DType dtype) {
    return full(shape, to_scalar(value, "full"), dtype);
  });
  m.def("arange", &arange);
  m.def("arange_int64", &arange_int64);
  m.def("eye", &eye);

  // A generator's state travels as int64 values (the uint64 words, bit for bit).
  py::class_<Generator>(m, "Generator")
      .def(py::init<std::uint64_t>(), py::arg("seed") = Generator::kDefaultSeed)
      .def("manual_seed", &Generator::manual_seed)
      .def("initial_seed", &Generator::initial_seed)
      .def("seed", &Generator::seed)
      .def("get_state", [](const Generator& g) {
        const std::vector<std::uint64_t> words = g.get_state();
        Tensor out = Tensor::empty({static_cast<std::int64_t>(words.size())}, DType::Int64);
        std::memcpy(out.data_as<std::int64_t>(), words.data(), words.size() * sizeof(std::uint64_t));
        return out;
      })
      .def("set_state", [](Generator& g, const Tensor& state) {
        if (state.dtype() != DType::Int64 || state.ndim() != 1) {
          fail<TypeError>("Generator.set_state: expected a 1-D int64 tensor from get_state, got ", state.dtype(),
                          " of ", state.ndim(), " dims");
        }
        const Tensor words = state.contiguous();
        std::vector<std::uint64_t> values(static_cast<std::size_t>(words.numel()));
        std::memcpy(values.data(), words.data_as<std::int64_t>(), values.size() * sizeof(std::uint64_t));
        g.set_state(values);
      });
  m.def("default_generator", &default_generator, py::return_value_policy::reference);

  m.def("manual_seed", &manual_seed);
  m.def("initial_seed", &initial_seed);
  // generator None: the default generator.
  m.def("rand", &rand, py::arg("shape"), py::arg("dtype"), py::arg("generator") = nullptr);
  m.def("randn", &randn, py::arg("shape"), py::arg("dtype"), py::arg("generator") = nullptr);
  m.def("randint", &randint, py::arg("low"), py::arg("high"), py::arg("shape"), py::arg("generator") = nullptr);
  m.def("randperm", &randperm, py::arg("n"), py::arg("generator") = nullptr);
  m.def("uniform_", &uniform_, py::arg("t"), py::arg("low"), py::arg("high"), py::arg("generator") = nullptr);
  m.def("normal_", &normal_, py::arg("t"), py::arg("mean"), py::arg("std"), py::arg("generator") = nullptr);
}

}  // namespace chainrule::python
