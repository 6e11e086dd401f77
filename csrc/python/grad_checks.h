// The checks on a gradient that user code hands to autograd: a hook's replacement gradient and
// an assignment to .grad. Both must match the tensor they belong to in shape and dtype, and
// are checked where they enter (PyTorch raises at the hook or at the assignment too): a grad of
// another shape would otherwise break a backward formula further down the graph (a 0-d grad
// sliced by cat's backward) or an optimizer step far from the cause.
#pragma once
#include <Python.h>

#include "chainrule/tensor.h"

namespace chainrule::python {

// Throws RuntimeError naming the hook when `replaced` differs from `before` in shape or dtype
// ("hook 'scale' has changed the size of value (was (3, 4), got (5,))", as PyTorch words it).
void check_hook_result(PyObject* hook, const Tensor& before, const Tensor& replaced);

// Checks `value` (a chainrule.Tensor, None, or NULL for a delete) as the .grad of `tensor`:
// TypeError for what is not a Tensor, RuntimeError for another shape or dtype. Returns 0, or
// -1 with the Python error set.
int check_grad_assignment(PyObject* tensor, PyObject* value);

}  // namespace chainrule::python
