// Zero-copy exchange: the buffer protocol and DLPack.
//
// Buffer protocol: _core.Tensor exports its memory (strides included) to memoryview/NumPy.
// chainrule.Tensor's C base (autograd.cpp) delegates the buffer protocol to its array.
//
// DLPack (the ABI of https://github.com/dmlc/dlpack, v0.8, written out below): __dlpack__
// hands out a DLManagedTensor that keeps the storage alive; from_dlpack wraps a producer's
// DLManagedTensor as a storage whose deleter calls the producer's deleter.
#include <cstring>

#include "bindings.h"
#include "chainrule/errors.h"
#include "chainrule/record.h"

namespace chainrule::python {
namespace {

// ---- the DLPack ABI (stable C structs) ----
struct DLDevice {
  std::int32_t device_type;  // 1 = kDLCPU
  std::int32_t device_id;
};
struct DLDataType {
  std::uint8_t code;  // 0 int, 1 uint, 2 float, 6 bool
  std::uint8_t bits;
  std::uint16_t lanes;
};
struct DLTensor {
  void* data;
  DLDevice device;
  std::int32_t ndim;
  DLDataType dtype;
  std::int64_t* shape;
  std::int64_t* strides;  // in elements; NULL means compact row-major
  std::uint64_t byte_offset;
};
struct DLManagedTensor {
  DLTensor dl_tensor;
  void* manager_ctx;
  void (*deleter)(DLManagedTensor* self);
};
constexpr std::int32_t kDLCPU = 1;

DLDataType dl_dtype(DType dtype) {
  switch (dtype) {
    case DType::Bool: return {6, 8, 1};
    case DType::Int64: return {0, 64, 1};
    case DType::Float32: return {2, 32, 1};
    case DType::Float64: return {2, 64, 1};
  }
  return {2, 32, 1};
}

DType from_dl_dtype(DLDataType t) {
  if (t.lanes != 1) fail<TypeError>("from_dlpack: vector dtypes (lanes=", int(t.lanes), ") are not supported");
  if (t.code == 2 && t.bits == 32) return DType::Float32;
  if (t.code == 2 && t.bits == 64) return DType::Float64;
  if (t.code == 0 && t.bits == 64) return DType::Int64;
  if (t.code == 6 && t.bits == 8) return DType::Bool;
  fail<TypeError>("from_dlpack: unsupported dtype (code ", int(t.code), ", bits ", int(t.bits),
                  "); chainrule holds float32, float64, int64 and bool");
}

// What __dlpack__ hands out: the DLManagedTensor plus what keeps its memory and arrays alive.
struct Exported {
  DLManagedTensor managed{};
  Tensor tensor;
  std::vector<std::int64_t> shape, strides;
};

void delete_exported(DLManagedTensor* self) { delete static_cast<Exported*>(self->manager_ctx); }

py::capsule to_dlpack(const Tensor& t) {
  record::unsupported("a tensor's memory is handed out through DLPack");
  auto* exported = new Exported;
  exported->tensor = t;
  exported->shape = t.shape();
  exported->strides = t.strides();
  DLTensor& dl = exported->managed.dl_tensor;
  dl.data = t.data();
  dl.device = {kDLCPU, 0};
  dl.ndim = static_cast<std::int32_t>(t.ndim());
  dl.dtype = dl_dtype(t.dtype());
  dl.shape = exported->shape.data();
  dl.strides = exported->strides.data();
  dl.byte_offset = 0;
  exported->managed.manager_ctx = exported;
  exported->managed.deleter = &delete_exported;
  // A capsule nobody consumed still owns the tensor: its destructor frees it. A consumer
  // renames it "used_dltensor" and becomes responsible for calling the deleter.
  return py::capsule(&exported->managed, "dltensor", [](PyObject* capsule) {
    if (PyCapsule_IsValid(capsule, "dltensor")) {
      auto* managed = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(capsule, "dltensor"));
      if (managed && managed->deleter) managed->deleter(managed);
    }
  });
}

Tensor from_dlpack_capsule(py::capsule capsule) {
  if (!PyCapsule_IsValid(capsule.ptr(), "dltensor")) {
    fail<ValueError>("from_dlpack: expected an unused 'dltensor' capsule (a capsule can be consumed once)");
  }
  auto* managed = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(capsule.ptr(), "dltensor"));
  const DLTensor& dl = managed->dl_tensor;
  if (dl.device.device_type != kDLCPU) {
    fail<ValueError>("from_dlpack: the tensor lives on device type ", dl.device.device_type,
                     "; chainrule only reads CPU memory");
  }
  const DType dtype = from_dl_dtype(dl.dtype);
  Shape shape(dl.shape, dl.shape + dl.ndim);
  Shape strides = dl.strides ? Shape(dl.strides, dl.strides + dl.ndim) : contiguous_strides(shape);
  std::int64_t low = 0, high = 0;  // element offsets of the extreme elements
  for (std::int32_t d = 0; d < dl.ndim; ++d) {
    if (shape[d] > 0) (strides[d] < 0 ? low : high) += strides[d] * (shape[d] - 1);
  }
  const std::int64_t item = itemsize(dtype);
  char* first = static_cast<char*>(dl.data) + dl.byte_offset + low * item;
  const std::int64_t nbytes = numel_of(shape) == 0 ? 0 : (high - low + 1) * item;
  std::shared_ptr<void> owner(managed, [](void* p) {
    auto* m = static_cast<DLManagedTensor*>(p);
    if (m->deleter) {
      py::gil_scoped_acquire gil;  // producers (NumPy, PyTorch) may touch Python objects
      m->deleter(m);
    }
  });
  PyCapsule_SetName(capsule.ptr(), "used_dltensor");
  return Tensor(Storage::wrap(first, nbytes, std::move(owner)), shape, strides, -low, dtype);
}

}  // namespace

void register_interop(py::module_& m) {
  m.def("to_dlpack", &to_dlpack, py::arg("tensor"));
  m.def("from_dlpack_capsule", &from_dlpack_capsule, py::arg("capsule"));
}

py::buffer_info buffer_of(const Tensor& t) {
  record::unsupported("a tensor's memory is handed to Python (NumPy, memoryview, printing)");
  std::vector<py::ssize_t> shape(t.shape().begin(), t.shape().end());
  std::vector<py::ssize_t> strides;
  for (const std::int64_t s : t.strides()) strides.push_back(s * itemsize(t.dtype()));
  const char* format = "f";
  switch (t.dtype()) {
    case DType::Bool: format = "?"; break;
    case DType::Int64: format = "q"; break;
    case DType::Float32: format = "f"; break;
    case DType::Float64: format = "d"; break;
  }
  return py::buffer_info(t.data(), itemsize(t.dtype()), format, t.ndim(), shape, strides);
}

}  // namespace chainrule::python
