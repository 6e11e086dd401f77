#include "backward_once.h"

#include <string>

#include "autograd.h"
#include "chainrule/errors.h"

namespace chainrule::python {
namespace {

// Whether the node keeps tensors that its backward needs and a pass frees: a graph that saved
// nothing (x + x) may be run again, as in PyTorch.
bool holds_saved_tensors(PyObject* node) {
  const NodeObject* n = as_node(node);
  if (n->state->native.op != NativeOp::Python) return !n->state->native.arrays.empty();
  if (n->dict == nullptr) return false;
  PyObject* saved = PyDict_GetItemString(n->dict, "_saved");  // Function.save_for_backward
  return saved != nullptr && PyObject_IsTrue(saved) == 1;
}

std::string name_of(PyObject* node) {
  const NativeOp op = as_node(node)->state->native.op;
  return std::string(op == NativeOp::Python ? _PyType_Name(Py_TYPE(node)) : native_op_name(op)) + "Backward";
}

}  // namespace

BackwardClaim::BackwardClaim(const std::vector<py::object>& nodes, bool retain_graph) {
  std::vector<NodeState*> wanted;
  for (const py::object& node : nodes) {
    NodeState* state = as_node(node.ptr())->state;
    if (state->claimed) {
      fail<RuntimeError>(name_of(node.ptr()),
                         ": trying to backward through the graph a second time (another backward through it, "
                         "without retain_graph, is running); pass retain_graph=True to every backward that "
                         "shares the graph if you need to run it more than once");
    }
    if (!retain_graph && holds_saved_tensors(node.ptr())) wanted.push_back(state);
  }
  for (NodeState* state : wanted) state->claimed = true;
  claimed_ = std::move(wanted);
}

BackwardClaim::~BackwardClaim() {
  for (NodeState* state : claimed_) state->claimed = false;
}

}  // namespace chainrule::python
