// The one place where C++ exceptions become the Python exceptions API.md names: pybind11's
// translator (module.cpp) and the C-API entry points (native ops, the engine) both come here.
#include <new>

#include "autograd.h"
#include "chainrule/errors.h"

namespace chainrule::python {

bool set_core_error(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const ValueError& e) {
    PyErr_SetString(PyExc_ValueError, e.what());
  } catch (const TypeError& e) {
    PyErr_SetString(PyExc_TypeError, e.what());
  } catch (const IndexError& e) {
    PyErr_SetString(PyExc_IndexError, e.what());
  } catch (const MemoryError& e) {
    PyErr_SetString(PyExc_MemoryError, e.what());
  } catch (const RuntimeError& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
  } catch (...) {
    return false;
  }
  return true;
}

void set_python_error() {
  if (set_core_error(std::current_exception())) return;
  try {
    throw;
  } catch (py::error_already_set& e) {
    e.restore();
  } catch (const std::bad_alloc&) {
    PyErr_NoMemory();
  } catch (const py::builtin_exception& e) {
    e.set_error();
  } catch (const std::exception& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
  } catch (...) {
    PyErr_SetString(PyExc_RuntimeError, "unknown C++ exception");
  }
}

}  // namespace chainrule::python
