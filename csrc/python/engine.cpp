// The backward engine: PyTorch's in miniature (DESIGN.md, rule 3), and the same walk as the
// plain-Python reference engine (python/chainrule/autograd/reference.py), step for step, so
// that both give the same gradients bit for bit. Walk the graph from the roots without
// recursion and count the edges into every node; run a node once all its incoming gradients
// are summed (its backward turns the gradient of its output into gradients of its inputs); sum
// each input gradient down to the input's shape and cast it to its dtype here, in one place;
// leaves collect their total gradient into .grad.
#include "autograd.h"

#include <algorithm>
#include <unordered_map>

#include "chainrule/errors.h"
#include "chainrule/ops.h"
#include "chainrule/record.h"
#include "backward_once.h"
#include "compile_hooks.h"
#include "grad_checks.h"

namespace chainrule::python {

namespace {

PyObject* backward_name = nullptr;  // interned "backward" and "release"
PyObject* release_name = nullptr;

// An array that nothing else references can become .grad as it is; one shared with another
// gradient of this pass (x + y hands the same array to both inputs), a stride-0 expand, or
// memory wrapped from NumPy or DLPack (a hook may return one) must be copied first: .grad
// owns its memory.
bool owns_its_storage(const Tensor& t) {
  // A cr.compile recording's own references do not count: it only watches.
  return t.storage().use_count() - record::references(t.storage().get()) == 1 && t.storage()->owns_memory() && t.is_contiguous() && t.offset() == 0 &&
         t.storage()->nbytes() == t.numel() * itemsize(t.dtype());
}

void accumulate(PyObject* leaf, Tensor grad) {
  TensorObject* t = as_tensor(leaf);
  compiling::note_grad(leaf, t->grad, /*write=*/false);
  Tensor total;
  if (is_set(t->grad)) {
    // Under the GIL throughout: backward passes in several threads may reach one leaf, and its
    // read-add-write of .grad must not interleave.
    total = binary(BinaryOp::Add, tensor_array(t->grad), grad);
  } else {
    total = owns_its_storage(grad) ? std::move(grad) : grad.clone();
  }
  PyObject* wrapped = new_tensor(std::move(total), nullptr);
  if (wrapped == nullptr) throw py::error_already_set();
  PyObject* old = t->grad;
  t->grad = wrapped;
  Py_XDECREF(old);
  compiling::note_grad(leaf, wrapped, /*write=*/true);
}

Tensor run_hooks(PyObject* hooks, Tensor grad) {
  if (!is_set(hooks)) return grad;
  record::unsupported("a hook (register_hook) runs Python code on a gradient");
  // A copy: a hook may remove itself (its handle edits the list).
  py::list copy = py::reinterpret_steal<py::list>(PySequence_List(hooks));
  if (!copy) throw py::error_already_set();
  for (py::handle hook : copy) {
    py::object replaced = hook(wrap(grad));
    if (!replaced.is_none()) {
      if (!is_tensor(replaced.ptr())) {
        throw TypeError("hook: expected the hook to return a Tensor or None, got " +
                        std::string(Py_TYPE(replaced.ptr())->tp_name));
      }
      check_hook_result(hook.ptr(), grad, tensor_array(replaced.ptr()));
      grad = tensor_array(replaced.ptr());
    }
  }
  return grad;
}

// The node's backward: one gradient per edge (undefined where none).
std::vector<Tensor> call_backward(PyObject* node, const Tensor& grad) {
  NodeObject* n = as_node(node);
  if (n->state->native.op != NativeOp::Python) {
    check_saved(n);
    unsigned needed = 0;
    for (std::size_t i = 0; i < n->state->edges.size(); ++i) {
      if (n->state->edges[i].target != nullptr) needed |= 1u << i;
    }
    // The work may be far larger than the gradient (a linear layer's weight, cross-entropy's logits).
    std::int64_t work = grad.numel();
    for (const Tensor& a : n->state->native.arrays) work = std::max(work, a.numel());
    const NativeOpDef& op = native_op_def(n->state->native.op);
    if (work < kReleaseGilElements) return op.backward(n->state->native, grad, needed);
    NativeSaved saved = n->state->native;  // another thread may release the node meanwhile
    py::gil_scoped_release release;
    return op.backward(saved, grad, needed);
  }
  py::object backward = py::reinterpret_steal<py::object>(PyObject_GetAttr((PyObject*)Py_TYPE(node), backward_name));
  if (!backward) throw py::error_already_set();
  py::object results = backward(py::handle(node), py::reinterpret_steal<py::object>(new_array(grad)));
  std::vector<Tensor> out(n->state->edges.size());
  py::tuple items = py::reinterpret_steal<py::tuple>(PySequence_Tuple(results.ptr()));
  if (!items) throw py::error_already_set();
  for (std::size_t i = 0; i < out.size() && i < items.size(); ++i) {
    PyObject* item = items[i].ptr();
    if (item == Py_None) continue;
    out[i] = is_tensor(item) ? tensor_array(item) : array_of(item);
  }
  return out;
}

void release(PyObject* node) {
  NodeObject* n = as_node(node);
  if (n->state->native.op != NativeOp::Python) {
    release_native_saved(n);
    return;
  }
  if (n->dict != nullptr && PyDict_GET_SIZE(n->dict) > 0) {
    PyObject* done = PyObject_CallMethodNoArgs(node, release_name);
    if (done == nullptr) throw py::error_already_set();
    Py_DECREF(done);
  }
}

Tensor add_grads(const Tensor& a, const Tensor& b) {
  MaybeReleaseGil gil(a.numel());
  return binary(BinaryOp::Add, a, b);
}

// run_backward(roots, grads, retain_graph, inputs): roots are Tensors that require grad, grads
// their upstream gradients (arrays checked by the Python caller, or None for ones). With inputs (a tuple
// of Tensors), returns their gradients instead of accumulating into .grad (autograd.grad).
py::object run_backward(const py::tuple& roots, const py::tuple& root_grads, bool retain_graph,
                        const py::object& inputs) {
  // Every node met is held for the pass: hooks run Python code that could drop references.
  compiling::note_backward();
  std::vector<py::object> held;
  std::unordered_map<PyObject*, std::int64_t> dependencies;
  std::vector<PyObject*> stack;
  auto visit = [&](PyObject* node) {
    if (dependencies.emplace(node, 0).second) {
      held.push_back(py::reinterpret_borrow<py::object>(node));
      stack.push_back(node);
    }
  };
  std::vector<std::pair<PyObject*, Tensor>> starts;
  if (root_grads.size() != roots.size()) throw ValueError("run_backward: one gradient (or None) per root");
  for (std::size_t i = 0; i < roots.size(); ++i) {
    if (!is_tensor(roots[i].ptr()) || !as_tensor(roots[i].ptr())->requires_grad) {
      throw TypeError("run_backward: roots must be Tensors that require grad");
    }
    TensorObject* root = as_tensor(roots[i].ptr());
    PyObject* target = is_set(root->grad_fn) ? root->grad_fn : roots[i].ptr();
    const Tensor& output = tensor_array(roots[i].ptr());
    if (root_grads[i].is_none()) {  // d output / d output = 1, for a one-element output
      if (output.numel() != 1) {
        fail<RuntimeError>("backward: grad can be created implicitly only for outputs with one element; "
                           "this output has shape ", output.shape(), ", so pass gradient= of that shape");
      }
      starts.emplace_back(target, full(output.shape(), Scalar::from_int(1), output.dtype()));
    } else {
      starts.emplace_back(target, root_grads[i].cast<const Tensor&>());
    }
    if (target != roots[i].ptr()) visit(target);
  }
  // 1. dependencies: the number of edges into each node reachable from the roots, and into
  // each leaf (a leaf's gradient is final, and goes to .grad, once all of them have run).
  std::unordered_map<PyObject*, std::int64_t> leaf_edges;
  while (!stack.empty()) {
    PyObject* node = stack.back();
    stack.pop_back();
    for (const Edge& edge : as_node(node)->state->edges) {
      if (edge.target == nullptr) continue;
      if (!edge.to_node) {
        ++leaf_edges[edge.target];
        continue;
      }
      visit(edge.target);
      ++dependencies[edge.target];
    }
  }
  const BackwardClaim claim(held, retain_graph);  // before any node runs, still under the GIL

  std::unordered_map<PyObject*, std::vector<std::size_t>> captured;  // one input may be asked for twice
  std::vector<py::object> results;
  const bool capture = !inputs.is_none();
  if (capture) {
    py::tuple wanted = inputs.cast<py::tuple>();
    results.resize(wanted.size());
    for (std::size_t i = 0; i < wanted.size(); ++i) {
      if (!is_tensor(wanted[i].ptr())) throw TypeError("run_backward: inputs must be Tensors");
      TensorObject* t = as_tensor(wanted[i].ptr());
      captured[is_set(t->grad_fn) ? t->grad_fn : wanted[i].ptr()].push_back(i);
    }
  }

  // 2. run nodes once their gradient is complete.
  std::unordered_map<PyObject*, Tensor> grads;
  std::vector<std::pair<PyObject*, Tensor>> leaf_grads;  // in the order first reached
  std::unordered_map<PyObject*, std::size_t> leaf_index;
  auto add_to_leaf = [&](PyObject* leaf, Tensor grad) {
    auto [it, fresh] = leaf_index.emplace(leaf, leaf_grads.size());
    if (fresh) {
      leaf_grads.emplace_back(leaf, std::move(grad));
    } else {
      Tensor& total = leaf_grads[it->second].second;
      total = add_grads(total, grad);
    }
  };
  // A leaf's total gradient, through its hooks, into .grad (or into the results), then its
  // post-accumulate hooks. This runs as soon as the leaf's last edge has run, not after the
  // whole pass, so a hook can start work on a gradient while backward goes on (DDP starts
  // all-reducing a bucket of gradients while the layers below it are still differentiated).
  auto finish_leaf = [&](PyObject* leaf) {
    auto it = leaf_index.find(leaf);
    if (it == leaf_index.end() || !leaf_grads[it->second].second.defined()) return;
    Tensor total = run_hooks(as_tensor(leaf)->hooks, std::move(leaf_grads[it->second].second));
    leaf_grads[it->second].second = Tensor();  // finished: undefined from now on
    if (capture) {
      auto wanted = captured.find(leaf);
      if (wanted != captured.end()) {
        for (const std::size_t i : wanted->second) results[i] = wrap(total);
      }
      return;  // autograd.grad accumulates nothing, so no post-accumulate hook runs
    }
    accumulate(leaf, std::move(total));
    PyObject* post_hooks = as_tensor(leaf)->post_hooks;
    if (!is_set(post_hooks)) return;
    record::unsupported("a post-accumulate-grad hook runs Python code");
    py::list copy = py::reinterpret_steal<py::list>(PySequence_List(post_hooks));  // hooks may remove themselves
    if (!copy) throw py::error_already_set();
    for (py::handle hook : copy) hook(py::handle(leaf));
  };
  auto add_to_node = [&](PyObject* node, Tensor grad) {
    auto [it, fresh] = grads.emplace(node, grad);
    if (!fresh) it->second = add_grads(it->second, grad);
  };
  std::vector<PyObject*> ready;
  for (auto& [target, grad] : starts) {
    if (is_node(target)) {
      add_to_node(target, grad);
      if (dependencies[target] == 0 && std::find(ready.begin(), ready.end(), target) == ready.end()) {
        ready.push_back(target);
      }
    } else {
      add_to_leaf(target, grad);
    }
  }

  while (!ready.empty()) {
    PyObject* node = ready.back();
    ready.pop_back();
    NodeObject* n = as_node(node);
    std::vector<Tensor> input_grads;
    auto found = grads.find(node);
    if (found == grads.end()) {  // nothing reached this node: its inputs get nothing either
      input_grads.resize(n->state->edges.size());
    } else {
      Tensor grad = std::move(found->second);
      grads.erase(found);
      if (is_set(n->hooks)) grad = run_hooks(n->hooks, grad);
      if (is_set(n->retained)) {
        record::unsupported("retain_grad() keeps the gradient of an intermediate tensor");
        // A strong reference while .grad is set: making it may run the garbage collector.
        py::object output = py::reinterpret_borrow<py::object>(PyWeakref_GetObject(n->retained));
        if (is_tensor(output.ptr())) accumulate(output.ptr(), grad);
      }
      if (capture) {
        auto wanted = captured.find(node);
        if (wanted != captured.end()) {
          for (const std::size_t i : wanted->second) results[i] = wrap(grad);
        }
      }
      input_grads = call_backward(node, grad);
    }
    if (!retain_graph) release(node);
    const std::vector<Edge>& edges = n->state->edges;
    for (std::size_t i = 0; i < edges.size(); ++i) {
      const Edge& edge = edges[i];
      if (edge.target == nullptr) continue;
      if (i < input_grads.size() && input_grads[i].defined()) {
        Tensor g = std::move(input_grads[i]);
        if (g.shape() != edge.shape) g = sum_to(g, edge.shape);
        if (g.dtype() != edge.dtype) g = g.to(edge.dtype);
        if (edge.to_node) {
          add_to_node(edge.target, std::move(g));
        } else {
          add_to_leaf(edge.target, std::move(g));
        }
      }
      if (edge.to_node) {
        if (--dependencies[edge.target] == 0) ready.push_back(edge.target);
      } else if (--leaf_edges[edge.target] == 0) {
        finish_leaf(edge.target);
      }
    }
  }

  // 3. the leaves not finished yet: those that are roots themselves.
  for (std::size_t i = 0; i < leaf_grads.size(); ++i) finish_leaf(leaf_grads[i].first);
  if (!capture) return py::none();
  py::tuple out(results.size());
  for (std::size_t i = 0; i < results.size(); ++i) {
    out[i] = results[i] ? results[i] : py::none();
  }
  return std::move(out);
}

}  // namespace

void register_engine(py::module_& m) {
  backward_name = PyUnicode_InternFromString("backward");
  release_name = PyUnicode_InternFromString("release");
  m.def("run_backward", &run_backward, py::arg("roots"), py::arg("grads"), py::arg("retain_graph"),
        py::arg("inputs") = py::none());
}

}  // namespace chainrule::python
