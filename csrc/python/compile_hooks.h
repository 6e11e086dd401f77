// What the binding layer tells a cr.compile recording (compile.cpp) beyond the core's ops:
// the Python objects involved. Each call costs one thread-local read when nothing records.
#pragma once
#include <Python.h>

#include "chainrule/record.h"

namespace chainrule::python::compiling {

class Recording;
extern thread_local Recording* current;  // this thread's recording, or nullptr

// A chainrule.Tensor's array was read for an op (its memory is then guarded by identity).
void note_read_slow(PyObject* tensor);
inline void note_read(PyObject* tensor) {
  if (current != nullptr) note_read_slow(tensor);
}
// A leaf's .grad was read (its value `grad`, NULL or None for none) or set to `grad`.
void note_grad_slow(PyObject* leaf, PyObject* grad, bool write);
inline void note_grad(PyObject* leaf, PyObject* grad, bool write) {
  if (current != nullptr) note_grad_slow(leaf, grad, write);
}
// A backward pass ran (so a result's graph is spent, not left for the caller).
void note_backward_slow();
inline void note_backward() {
  if (current != nullptr) note_backward_slow();
}

}  // namespace chainrule::python::compiling
