#include "grad_checks.h"

#include <string>

#include "autograd.h"
#include "chainrule/errors.h"

namespace chainrule::python {
namespace {

// The hook's __name__ (a lambda is '<lambda>'), else its type's name.
std::string hook_name(PyObject* hook) {
  PyObject* name = PyObject_GetAttrString(hook, "__name__");
  if (name != nullptr && PyUnicode_Check(name)) {
    std::string out = PyUnicode_AsUTF8(name);
    Py_DECREF(name);
    return out;
  }
  Py_XDECREF(name);
  PyErr_Clear();
  return Py_TYPE(hook)->tp_name;
}

}  // namespace

void check_hook_result(PyObject* hook, const Tensor& before, const Tensor& replaced) {
  if (replaced.shape() != before.shape()) {
    fail<RuntimeError>("hook '", hook_name(hook), "' has changed the size of value (was ", before.shape(),
                       ", got ", replaced.shape(), "): a hook must return a gradient of the same shape");
  }
  if (replaced.dtype() != before.dtype()) {
    fail<RuntimeError>("hook '", hook_name(hook), "' has changed the type of value (was ", before.dtype(),
                       ", got ", replaced.dtype(), "): a hook must return a gradient of the same dtype");
  }
}

int check_grad_assignment(PyObject* tensor, PyObject* value) {
  if (value == nullptr || value == Py_None) return 0;
  if (!is_tensor(value)) {
    PyErr_Format(PyExc_TypeError, "grad: assigned grad expected to be a Tensor or None but got grad of type %s",
                 Py_TYPE(value)->tp_name);
    return -1;
  }
  if (!as_tensor(tensor)->has_array || !as_tensor(value)->has_array) return 0;  // nothing to compare yet
  const Tensor& self = tensor_array(tensor);
  const Tensor& grad = tensor_array(value);
  try {
    if (grad.shape() != self.shape()) {
      fail<RuntimeError>("grad: attempting to assign a gradient of shape ", grad.shape(), " to a tensor of shape ",
                         self.shape(), "; the gradient and the tensor must have the same shape");
    }
    if (grad.dtype() != self.dtype()) {
      fail<RuntimeError>("grad: attempting to assign a gradient with dtype ", grad.dtype(),
                         " to a tensor with dtype ", self.dtype(), "; the gradient must have the tensor's dtype");
    }
  } catch (...) {
    set_python_error();
    return -1;
  }
  return 0;
}

}  // namespace chainrule::python
