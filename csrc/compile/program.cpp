#include "program.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "chainrule/errors.h"
#include "chainrule/ops.h"

namespace chainrule::compile {

namespace {

bool same_view(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.strides() == b.strides() && a.dtype() == b.dtype();
}

// A step's fresh result into the slot's memory. Same kernel, same bits: copying them is exact.
void store(const Tensor& fresh, const Tensor& slot_view) {
  if (fresh.storage() == slot_view.storage()) return;  // the op returned a view of an operand
  if (same_view(fresh, slot_view) && fresh.is_contiguous() && slot_view.is_contiguous()) {
    std::memcpy(slot_view.data(), fresh.data(), static_cast<std::size_t>(fresh.numel() * itemsize(fresh.dtype())));
  } else {
    copy_into_new(slot_view, fresh);
  }
}

}  // namespace

// ------------------------------------------------------------------ Program

bool Program::accepts(const std::vector<Tensor>& bound, std::string* why) const {
  if (bound.size() != bound_seen_.size()) {
    *why = "the number of tensor inputs changed";
    return false;
  }
  for (std::size_t i = 0; i < bound.size(); ++i) {
    const Tensor& now = bound[i];
    const Tensor& seen = bound_seen_[i];
    if (!same_view(now, seen)) {
      *why = "input " + std::to_string(i) + " has another shape, strides or dtype than when recorded";
      return false;
    }
    // Inputs that shared memory at recording must share it the same way now, and only they.
    for (std::size_t j = 0; j < i; ++j) {
      const bool shared_then = bound_slots_[i] == bound_slots_[j];
      const bool shared_now = now.storage() == bound[j].storage();
      if (shared_then != shared_now ||
          (shared_now && now.offset() - bound[j].offset() != seen.offset() - bound_seen_[j].offset())) {
        *why = "inputs " + std::to_string(j) + " and " + std::to_string(i) + " share memory differently";
        return false;
      }
    }
  }
  return true;
}

void Program::rebind(Slot& slot, std::shared_ptr<Storage> storage, std::int64_t shift) {
  const std::int64_t change = shift - slot.offset_shift;
  slot.storage = std::move(storage);
  slot.offset_shift = shift;
  for (std::size_t v = slot.views_begin; v < slot.views_begin + slot.views_count; ++v) {
    Tensor* view = views_[v];
    *view = Tensor(slot.storage, view->shape(), view->strides(), view->offset() + change, view->dtype());
  }
}

bool Program::replay(const std::vector<Tensor>& bound) {
  for (std::size_t i = 0; i < bound.size(); ++i) {
    Slot& slot = slots_[static_cast<std::size_t>(bound_slots_[i])];
    const std::int64_t shift = bound[i].offset() - bound_seen_[i].offset();
    if (slot.storage != bound[i].storage() || slot.offset_shift != shift) rebind(slot, bound[i].storage(), shift);
  }
  // Internal memory that someone else holds (a result or .grad of an earlier call that the
  // caller kept) is left to them: this replay writes into fresh memory instead.
  for (Slot& slot : slots_) {
    if (slot.kind != SlotKind::Internal) continue;
    if (slot.storage.use_count() > static_cast<long>(slot.views_count) + 1) {
      rebind(slot, Storage::allocate(slot.storage->nbytes()), slot.offset_shift);
    }
  }
  std::vector<std::vector<unsigned char>> backup;
  for (const int s : undo_) {
    const Storage& storage = *slots_[static_cast<std::size_t>(s)].storage;
    const auto* bytes = static_cast<const unsigned char*>(storage.data());
    backup.emplace_back(bytes, bytes + storage.nbytes());
  }
  for (Step& step : steps_) {
    if (step.skipped() || run(step)) continue;
    for (std::size_t i = 0; i < undo_.size(); ++i) {
      std::memcpy(slots_[static_cast<std::size_t>(undo_[i])].storage->data(), backup[i].data(), backup[i].size());
    }
    return false;
  }
  return true;
}

bool Program::run(Step& step) {
  if (step.fused) {
    run_chain(*step.fused);
    return true;
  }
  if (!step.expected.empty()) {
    const Tensor& t = step.operands[0];
    return std::memcmp(t.data(), step.expected.data(), step.expected.size()) == 0;
  }
  if (step.into) {
    step.into(step.operands, step.results[0]);
    return true;
  }
  const record::Tensors fresh = step.rerun(step.operands);
  for (std::size_t i = 0; i < fresh.size() && i < step.results.size(); ++i) {
    if (step.results[i].defined()) store(fresh[i], step.results[i]);
  }
  return true;
}

std::vector<double> Program::time_steps(int repeats) {
  std::vector<double> total(steps_.size(), 0.0);
  for (int r = 0; r < repeats; ++r) {
    for (std::size_t i = 0; i < steps_.size(); ++i) {
      if (steps_[i].skipped()) continue;
      const auto start = std::chrono::steady_clock::now();
      run(steps_[i]);
      total[i] += std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count();
    }
  }
  std::vector<double> per_step;  // one figure per step of step_names()
  for (std::size_t i = 0; i < steps_.size(); ++i) {
    if (!steps_[i].skipped()) per_step.push_back(total[i] / repeats);
  }
  return per_step;
}

Tensor Program::exit(int index) const {
  const Exit& e = exits_[static_cast<std::size_t>(index)];
  const Slot& slot = slots_[static_cast<std::size_t>(e.slot)];
  return Tensor(slot.storage, e.shape, e.strides, e.offset + slot.offset_shift, e.dtype);
}

std::vector<std::string> Program::step_names() const {
  std::vector<std::string> names;
  for (const Step& step : steps_) {
    if (step.skipped()) continue;
    if (!step.fused) {
      names.emplace_back(step.name);
      continue;
    }
    std::string name = "fused(";  // fused(mul,add,sigmoid)
    for (const Step* member : step.fused->steps) name += std::string(member == &step ? "" : ",") + member->elementwise.name;
    names.push_back(name + ")");
  }
  return names;
}

// ------------------------------------------------------------------ Builder

int Builder::new_slot(const Tensor& array, SlotKind kind) {
  Slot slot;
  slot.storage = array.storage();
  slot.kind = kind;
  program_->slots_.push_back(std::move(slot));
  const int index = static_cast<int>(program_->slots_.size()) - 1;
  slot_of_.insert(array.storage().get(), index);
  references_.push_back(1);
  return index;
}

int Builder::bind(const Tensor& array, bool adopt) {
  int slot = slot_of(array);
  Slot* known = slot < 0 ? nullptr : &program_->slots_[static_cast<std::size_t>(slot)];
  if (known == nullptr) {
    slot = new_slot(array, SlotKind::Bound);
  } else if (adopt && known->kind == SlotKind::External) {
    known->kind = SlotKind::Bound;
  } else if (known->kind != SlotKind::Bound) {
    // Memory the call already reached another way (a parameter passed as an argument too):
    // rebinding it would also move that other way. Not replayable.
    unsupported("a tensor argument shares memory with a tensor the function reaches otherwise");
  }
  program_->bound_slots_.push_back(slot);
  program_->bound_seen_.push_back(array);
  return static_cast<int>(program_->bound_slots_.size()) - 1;
}

int Builder::slot_of(const Storage* storage) const {
  return slot_of_.find(storage);
}

long Builder::references(const Storage* storage) const {
  const int slot = slot_of(storage);
  return slot < 0 ? 0 : references_[static_cast<std::size_t>(slot)];
}

int Builder::operand_slot(const Tensor& array, bool written, const char* op) {
  const int known = slot_of(array);
  if (known >= 0) return known;
  auto outside = made_outside_.find(array.storage().get());
  const bool made_in_call = outside != made_outside_.end() && outside->second.lock() == array.storage();
  if (made_in_call) {
    // Memory the call made outside any op: fine when an op fills it (a clone's buffer), but
    // read as it is, its values came from Python (cr.tensor(...), NumPy) and are not recorded.
    if (!written) {
      unsupported(std::string(op) + " reads a tensor made during the call from Python data or NumPy "
                  "(cr.tensor, from_numpy): its values are not recorded");
    }
    return new_slot(array, SlotKind::Internal);
  }
  return new_slot(array, SlotKind::External);
}

void Builder::op(const char* name, record::Tensors operands, const std::vector<int>& written,
                 const record::Tensors& results, record::Rerun rerun, record::Into into,
                 const record::Elementwise* elementwise) {
  // Built where it stays (no move of the whole step per op).
  Step& step = program_->steps_.emplace_back();
  step.name = name;
  step.rerun = std::move(rerun);
  step.into = std::move(into);
  step.operands = std::move(operands);
  step.results = results;
  if (elementwise != nullptr && elementwise->loop != nullptr) step.elementwise = *elementwise;
  step.operand_slots.reserve(step.operands.size());
  step.result_slots.reserve(results.size());
  for (std::size_t i = 0; i < step.operands.size(); ++i) {
    const Tensor& t = step.operands[i];
    const bool writes = std::find(written.begin(), written.end(), static_cast<int>(i)) != written.end();
    step.operand_slots.push_back(t.defined() ? operand_slot(t, writes, name) : -1);
    if (t.defined()) program_->work_ += t.numel();
    const int slot = step.operand_slots.back();
    // An absent optional operand (SGD without momentum has no buffer) has no slot.
    if (writes && slot >= 0 && program_->slots_[static_cast<std::size_t>(slot)].kind != SlotKind::Internal &&
        std::find(written_outside_.begin(), written_outside_.end(), slot) == written_outside_.end()) {
      written_outside_.push_back(slot);
    }
  }
  for (const Tensor& t : results) {
    if (!t.defined()) {
      step.result_slots.push_back(-1);
      continue;
    }
    const int known = slot_of(t);  // a view of an operand (sum_to that sums nothing, say)
    if (known >= 0) {  // nothing to write: the op returns its operand
      step.into = nullptr;
      step.elementwise.loop = nullptr;
    }
    step.result_slots.push_back(known >= 0 ? known : new_slot(t, SlotKind::Internal));
    program_->work_ += t.numel();
  }
  for (const int s : step.operand_slots) {
    if (s >= 0) ++references_[static_cast<std::size_t>(s)];
  }
  for (const int s : step.result_slots) {
    if (s >= 0) ++references_[static_cast<std::size_t>(s)];
  }
}

void Builder::unsupported(std::string reason) {
  if (std::find(reasons_.begin(), reasons_.end(), reason) == reasons_.end()) reasons_.push_back(std::move(reason));
}

void Builder::value_read(const Tensor& t) {
  program_->undo_ = written_outside_;  // what a replay stopped here must put back
  Step check{"check", nullptr, nullptr, {t}, {}, {operand_slot(t, false, "item")}, {}, {}, {}, nullptr};
  ++references_[static_cast<std::size_t>(check.operand_slots[0])];
  const auto* first = static_cast<const unsigned char*>(t.data());
  check.expected.assign(first, first + itemsize(t.dtype()));
  program_->steps_.push_back(std::move(check));
}

void Builder::allocated(const std::shared_ptr<Storage>& storage) { made_outside_[storage.get()] = storage; }

int Builder::add_exit(const Tensor& array) {
  int slot = slot_of(array);
  if (slot < 0) {
    auto outside = made_outside_.find(array.storage().get());
    if (outside != made_outside_.end() && outside->second.lock() == array.storage()) {
      unsupported("the function returns a tensor made from Python data during the call");
      return -1;
    }
    slot = new_slot(array, SlotKind::External);  // returns memory it never touched (a constant)
  }
  const Slot& s = program_->slots_[static_cast<std::size_t>(slot)];
  program_->exits_.push_back(Exit{slot, array.shape(), array.strides(), array.offset() - s.offset_shift, array.dtype()});
  return static_cast<int>(program_->exits_.size()) - 1;
}

std::unique_ptr<Program> Builder::finish(bool fuse) {
  Program& p = *program_;
  if (fuse) p.fuse();
  // Each slot's views, counted first: one run of p.views_ per slot.
  std::vector<std::size_t> next(p.slots_.size(), 0);
  for (const Step& step : p.steps_) {
    for (const int s : step.operand_slots) if (s >= 0) ++p.slots_[static_cast<std::size_t>(s)].views_count;
    for (const int s : step.result_slots) if (s >= 0) ++p.slots_[static_cast<std::size_t>(s)].views_count;
  }
  std::size_t total = 0;
  for (std::size_t s = 0; s < p.slots_.size(); ++s) {
    p.slots_[s].views_begin = next[s] = total;
    total += p.slots_[s].views_count;
  }
  p.views_.resize(total);
  for (Step& step : p.steps_) {
    for (std::size_t i = 0; i < step.operands.size(); ++i) {
      if (step.operand_slots[i] >= 0) p.views_[next[static_cast<std::size_t>(step.operand_slots[i])]++] = &step.operands[i];
    }
    for (std::size_t i = 0; i < step.results.size(); ++i) {
      if (step.result_slots[i] >= 0) p.views_[next[static_cast<std::size_t>(step.result_slots[i])]++] = &step.results[i];
    }
  }
  made_outside_.clear();
  return std::move(program_);
}

}  // namespace chainrule::compile
