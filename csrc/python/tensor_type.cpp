// chainrule.Tensor's C base, _core.TensorBase: the array (a C++ value inside the object), the
// autograd fields (grad_fn, requires_grad, grad, hooks), the getters that read the array without
// making a Python object, and the operator slots (the native ops' forward entries).
#include "autograd.h"
#include "compile_hooks.h"

#include <structmember.h>

#include <new>

#include "chainrule/errors.h"
#include "chainrule/ops.h"
#include "grad_checks.h"

namespace chainrule::python {

PyTypeObject* tensor_base_type = nullptr;
PyTypeObject* tensor_type = nullptr;

namespace {

PyObject* dtypes = nullptr;  // _core.DTYPES, in DType order

Tensor& array_ref(TensorObject* t) { return *std::launder(reinterpret_cast<Tensor*>(t->array_bytes)); }

void set_array(TensorObject* t, Tensor value) {
  if (t->has_array) {
    array_ref(t) = std::move(value);
  } else {
    new (t->array_bytes) Tensor(std::move(value));
    t->has_array = 1;
  }
}

void drop_array(TensorObject* t) {
  if (t->has_array) {
    array_ref(t).~Tensor();
    t->has_array = 0;
  }
}

}  // namespace

const Tensor& tensor_array(PyObject* tensor) {
  TensorObject* t = as_tensor(tensor);
  if (!t->has_array) throw TypeError("tensor has no data (its _data is not set)");
  compiling::note_read(tensor);
  return array_ref(t);
}

const Tensor& array_of(PyObject* data) {
  if (data == nullptr || data == Py_None) throw TypeError("expected a _core.Tensor, got None");
  return py::handle(data).cast<const Tensor&>();
}

PyObject* new_array(Tensor t) { return py::cast(std::move(t)).release().ptr(); }

PyObject* new_tensor(Tensor array, PyObject* node) {
  PyObject* obj = tensor_type->tp_alloc(tensor_type, 0);
  if (obj == nullptr) return nullptr;
  TensorObject* t = as_tensor(obj);
  set_array(t, std::move(array));
  if (node != nullptr) {
    Py_INCREF(node);
    t->grad_fn = node;
    t->requires_grad = 1;
  }
  return obj;
}

PyObject* shape_tuple(const Shape& shape) {
  PyObject* out = PyTuple_New(static_cast<Py_ssize_t>(shape.size()));
  if (out == nullptr) return nullptr;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    PyTuple_SET_ITEM(out, static_cast<Py_ssize_t>(i), PyLong_FromLongLong(shape[i]));
  }
  return out;
}

PyObject* dtype_object(DType dtype) {
  PyObject* out = PyTuple_GET_ITEM(dtypes, static_cast<Py_ssize_t>(dtype));
  Py_INCREF(out);
  return out;
}

py::object wrap(const Tensor& t) {
  PyObject* obj = new_tensor(t, nullptr);
  if (obj == nullptr) throw py::error_already_set();
  return py::reinterpret_steal<py::object>(obj);
}

namespace {

int tensor_traverse(PyObject* self, visitproc visit, void* arg) {
  TensorObject* t = as_tensor(self);
  Py_VISIT(t->grad_fn);
  Py_VISIT(t->grad);
  Py_VISIT(t->hooks);
  Py_VISIT(t->post_hooks);
  Py_VISIT(Py_TYPE(self));
  return 0;
}

int tensor_clear(PyObject* self) {
  TensorObject* t = as_tensor(self);
  Py_CLEAR(t->grad_fn);
  Py_CLEAR(t->grad);
  Py_CLEAR(t->hooks);
  Py_CLEAR(t->post_hooks);
  return 0;
}

void tensor_dealloc(PyObject* self) {
  PyTypeObject* type = Py_TYPE(self);
  PyObject_GC_UnTrack(self);
  // A long chain of results (each holding the node that holds the previous one) is freed here
  // one link at a time; the trashcan keeps that from recursing as deep as the chain.
  Py_TRASHCAN_BEGIN(self, tensor_dealloc)
  TensorObject* t = as_tensor(self);
  if (t->weakrefs != nullptr) PyObject_ClearWeakRefs(self);
  tensor_clear(self);
  Py_CLEAR(t->data);
  drop_array(t);
  type->tp_free(self);
  Py_DECREF(type);
  Py_TRASHCAN_END
}

}  // namespace

// t._data: the _core.Tensor object, made on the first read and kept (so it is the same object
// every time); None when no array was set.
PyObject* tensor_get_data(PyObject* self, void*) {
  TensorObject* t = as_tensor(self);
  if (t->has_array) compiling::note_read(self);
  if (t->data == nullptr) {
    if (!t->has_array) Py_RETURN_NONE;
    try {
      t->data = new_array(array_ref(t));
    } catch (...) {
      set_python_error();
      return nullptr;
    }
  }
  Py_INCREF(t->data);
  return t->data;
}

namespace {

int tensor_set_data(PyObject* self, PyObject* value, void*) {
  TensorObject* t = as_tensor(self);
  if (compiling::current != nullptr && t->has_array) {
    record::unsupported("a tensor is given new memory during the call (t.data = ..., module.to(...))");
  }
  if (value == nullptr || value == Py_None) {
    Py_CLEAR(t->data);
    drop_array(t);
    return 0;
  }
  try {
    set_array(t, array_of(value));
  } catch (...) {
    PyErr_Format(PyExc_TypeError, "_data must be a _core.Tensor, got %s", Py_TYPE(value)->tp_name);
    return -1;
  }
  Py_INCREF(value);
  Py_XSETREF(t->data, value);
  return 0;
}

// shape, dtype, ndim and numel() read straight from the array (no _data object made).
template <PyObject* (*Read)(const Tensor&)>
PyObject* from_array(PyObject* self, void*) {
  try {
    return Read(tensor_array(self));
  } catch (...) {
    set_python_error();
    return nullptr;
  }
}

PyObject* read_shape(const Tensor& t) { return shape_tuple(t.shape()); }
PyObject* read_dtype(const Tensor& t) { return dtype_object(t.dtype()); }
PyObject* read_ndim(const Tensor& t) { return PyLong_FromLongLong(t.ndim()); }
PyObject* read_numel(const Tensor& t) { return PyLong_FromLongLong(t.numel()); }

PyObject* tensor_numel(PyObject* self, PyObject*) { return from_array<read_numel>(self, nullptr); }

// Python 3.11 has no __buffer__ for Python classes, so memoryview(t) needs this C slot.
int tensor_getbuffer(PyObject* self, Py_buffer* view, int flags) {
  PyObject* data = tensor_get_data(self, nullptr);
  if (data == nullptr) return -1;
  if (data == Py_None) {
    Py_DECREF(data);
    PyErr_SetString(PyExc_BufferError, "tensor has no data");
    return -1;
  }
  const int result = PyObject_GetBuffer(data, view, flags);  // view->obj now owns a reference to data
  Py_DECREF(data);
  return result;
}

int tensor_set_grad_fn(PyObject* self, PyObject* value, void*) {
  return set_checked_field<offsetof(TensorObject, grad_fn)>(self, value, is_node, "a graph node");
}
int tensor_set_grad(PyObject* self, PyObject* value, void*) {
  if (check_grad_assignment(self, value) < 0) return -1;
  const int done = set_checked_field<offsetof(TensorObject, grad)>(self, value, is_tensor, "a Tensor");
  if (done == 0) compiling::note_grad(self, value, /*write=*/true);
  return done;
}
PyObject* tensor_get_grad(PyObject* self, void* closure) {
  compiling::note_grad(self, as_tensor(self)->grad, /*write=*/false);
  return get_field<offsetof(TensorObject, grad)>(self, closure);
}
int tensor_set_hooks(PyObject* self, PyObject* value, void*) {
  return set_checked_field<offsetof(TensorObject, hooks)>(self, value, is_list, "a list");
}
int tensor_set_post_hooks(PyObject* self, PyObject* value, void*) {
  return set_checked_field<offsetof(TensorObject, post_hooks)>(self, value, is_list, "a list");
}

PyMemberDef tensor_members[] = {
    {"_requires_grad", T_BOOL, offsetof(TensorObject, requires_grad), 0, nullptr},
    {"__weaklistoffset__", T_PYSSIZET, offsetof(TensorObject, weakrefs), READONLY, nullptr},
    {nullptr, 0, 0, 0, nullptr},
};

PyGetSetDef tensor_getset[] = {
    {"_data", tensor_get_data, tensor_set_data, const_cast<char*>("the raw array (_core.Tensor)"), nullptr},
    {"grad_fn", get_field<offsetof(TensorObject, grad_fn)>, tensor_set_grad_fn,
     const_cast<char*>("the node that produced this tensor (None for a leaf)"), nullptr},
    {"_grad", tensor_get_grad, tensor_set_grad, nullptr, nullptr},
    {"_hooks", get_field<offsetof(TensorObject, hooks)>, tensor_set_hooks, nullptr, nullptr},
    {"_post_hooks", get_field<offsetof(TensorObject, post_hooks)>, tensor_set_post_hooks, nullptr, nullptr},
    {"shape", from_array<read_shape>, nullptr, const_cast<char*>("the sizes of the dims, a tuple of ints"), nullptr},
    {"dtype", from_array<read_dtype>, nullptr, const_cast<char*>("the element type"), nullptr},
    {"ndim", from_array<read_ndim>, nullptr, const_cast<char*>("the number of dims"), nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyMethodDef tensor_methods[] = {
    {"numel", tensor_numel, METH_NOARGS, "numel($self, /)\n--\n\nThe number of elements."},
    {nullptr, nullptr, 0, nullptr},
};

PyType_Slot tensor_slots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(&tensor_dealloc)},
    {Py_tp_traverse, reinterpret_cast<void*>(&tensor_traverse)},
    {Py_tp_clear, reinterpret_cast<void*>(&tensor_clear)},
    {Py_tp_members, tensor_members},
    {Py_tp_getset, tensor_getset},
    {Py_tp_methods, tensor_methods},
    {Py_bf_getbuffer, reinterpret_cast<void*>(&tensor_getbuffer)},
    {Py_nb_add, reinterpret_cast<void*>(&tensor_add)},
    {Py_nb_subtract, reinterpret_cast<void*>(&tensor_sub)},
    {Py_nb_multiply, reinterpret_cast<void*>(&tensor_mul)},
    {Py_nb_true_divide, reinterpret_cast<void*>(&tensor_div)},
    {Py_nb_matrix_multiply, reinterpret_cast<void*>(&tensor_matmul)},
    {Py_nb_negative, reinterpret_cast<void*>(&tensor_neg)},
    {Py_tp_doc, const_cast<char*>("C base of chainrule.Tensor: the array and its autograd fields")},
    {0, nullptr},
};
PyType_Spec tensor_spec = {"chainrule._core.TensorBase", sizeof(TensorObject), 0,
                           Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC, tensor_slots};
}  // namespace

void register_tensor_type(py::module_& m) {
  dtypes = py::object(m.attr("DTYPES")).release().ptr();
  PyObject* tensor_base = PyType_FromSpec(&tensor_spec);
  if (tensor_base == nullptr) throw py::error_already_set();
  tensor_base_type = reinterpret_cast<PyTypeObject*>(tensor_base);
  m.add_object("TensorBase", py::reinterpret_steal<py::object>(tensor_base));
  Py_INCREF(tensor_base);  // kept for the module's lifetime (types are never freed before exit)
  // A Tensor around an array, outside any graph: for code below the Tensor class (the engines).
  m.def("wrap", [](const Tensor& array) { return wrap(array); }, py::arg("array"));
}

}  // namespace chainrule::python
