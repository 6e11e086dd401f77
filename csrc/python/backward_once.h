// The rule that a graph is backpropagated once unless retain_graph is passed, made atomic.
//
// A backward without retain_graph frees each node's saved arrays right after running it, and a
// later backward that needs them raises. Checking "freed" as each node runs is not enough when
// passes overlap: a node's kernel runs without the GIL, so a second thread's pass can reach the
// same node before the first has freed it, and both succeed (the leaves' gradients added
// twice). So a pass claims every node that holds saved tensors before it runs any of them, in
// one step under the GIL: a pass that finds a node claimed by another raises the second-backward
// RuntimeError before touching anything.
#pragma once
#include <vector>

#include "bindings.h"

namespace chainrule::python {

struct NodeState;

class BackwardClaim {
 public:
  // `nodes`: every node the pass will visit, held by the caller for the claim's lifetime.
  // Throws RuntimeError when one of them is claimed by a pass without retain_graph; claims them
  // itself when !retain_graph.
  BackwardClaim(const std::vector<py::object>& nodes, bool retain_graph);
  // Drops the claims: nodes the pass freed stay freed, and ones it never reached (it raised
  // midway) may be backpropagated again, as before the pass.
  ~BackwardClaim();
  BackwardClaim(const BackwardClaim&) = delete;
  BackwardClaim& operator=(const BackwardClaim&) = delete;

 private:
  std::vector<NodeState*> claimed_;
};

}  // namespace chainrule::python
