// A recorded program (cr.compile): the core ops one call of a function ran, as steps over
// slots, and its replay. No Python here: csrc/python/compile.cpp adds the guards and the
// Python objects (arguments, .grad, results).
//
// A slot is one storage the recording saw. Its kind says where its contents come from:
//   External  memory that existed before the call and is not rebound: parameters, optimizer
//             state, constants. The replay reads and updates the very same memory.
//   Bound     memory handed in anew at each call: the function's tensor arguments and a
//             .grad the call reads before writing it. Rebound before each replay.
//   Internal  memory a step of the call produced (every intermediate, gradient and result).
//             Allocated once, at recording, and written again by each replay.
// A step keeps its operands and results as views of slots (shape, strides, offset), so views
// made between ops (transpose, reshape, slicing) need no step of their own.
#pragma once
#include <initializer_list>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "chainrule/record.h"

namespace chainrule::compile {

enum class SlotKind { External, Bound, Internal };

struct Slot {
  std::shared_ptr<Storage> storage;
  SlotKind kind = SlotKind::External;
  std::int64_t offset_shift = 0;     // Bound: this replay's offset minus the recorded one
  // The program's tensors that view this storage: Program::views_[views_begin, + views_count).
  std::size_t views_begin = 0, views_count = 0;
};

struct FusedChain;

// A step's slots, one per operand or result: up to four inline (no allocation for the usual op).
class SlotList {
 public:
  SlotList() = default;
  SlotList(std::initializer_list<int> slots) {
    for (const int s : slots) push_back(s);
  }
  void reserve(std::size_t n) {
    if (n > kInline) heap_.reserve(n);
  }
  void push_back(int s) {
    if (size_ < kInline) {
      inline_[size_] = s;
    } else {
      if (size_ == kInline) heap_.assign(inline_, inline_ + kInline);
      heap_.push_back(s);
    }
    ++size_;
  }
  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  const int* begin() const { return size_ <= kInline ? inline_ : heap_.data(); }
  const int* end() const { return begin() + size_; }
  int operator[](std::size_t i) const { return begin()[i]; }
  int back() const { return begin()[size_ - 1]; }

 private:
  static constexpr std::size_t kInline = 4;
  int inline_[kInline] = {};
  std::size_t size_ = 0;
  std::vector<int> heap_;  // all of them, when more than kInline
};

struct Step {
  const char* name = "";
  record::Rerun rerun;
  record::Into into;  // when set: the one result is written in place, no allocation
  record::Tensors operands, results;       // views of slots; undefined where an optional operand was absent
  SlotList operand_slots, result_slots;  // -1 where undefined
  // A check instead of an op: the value Python read at recording (item(), bool(t)) and
  // branched on; a replay that finds another value stops (its guard failed).
  std::vector<unsigned char> expected;
  record::Elementwise elementwise;     // its loop, when the op is elementwise (for fusing)
  // In a fused chain, the first member holds the chain and runs it; the others are skipped.
  std::shared_ptr<FusedChain> fused;
  bool in_chain = false;
  bool skipped() const { return in_chain && !fused; }
};

// A run of consecutive elementwise steps over the same number of elements n, replayed as one
// pass: the elements are walked once, in blocks that stay in the cache, and each member's loop
// runs on the block in turn. A member's result that nothing after the chain reads lives only
// in a block-sized scratch buffer; the others are written to their slots as before.
struct FusedChain {
  // Where a member reads one operand for the block [b, b + len).
  struct Source {
    enum class Kind { Memory, Member, Row, Scalar, Constant } kind = Kind::Memory;
    const Tensor* view = nullptr;  // Memory, Row, Scalar: the operand (its data at each replay)
    const void* constant = nullptr;  // Constant: the Python number's bytes (Elementwise::constant)
    int member = -1;               // Member: the earlier member whose result it is
    std::int64_t period = 0;       // Row: the row's length (a broadcast over leading dims)
    std::int64_t repeated = 0;     // Row: where in `rows` the row, repeated to cover a block from any start, is
  };
  struct Member {
    record::Elementwise::Loop loop;
    int arity;
    Source in[2];
    int side = 0;             // 1 or 2: that input is one value (a scalar)
    bool stored = true;       // its result is read after the chain: written to its slot
    int scratch = -1;         // not stored: its block in `scratch`
  };
  std::vector<Step*> steps;     // the members, in Program::steps_ (their views are rebound with the slots)
  std::vector<Member> members;
  std::int64_t numel = 0;
  std::int64_t block = 0;       // elements per block
  std::vector<double> scratch;  // one block per member that is not stored (one thread)
  std::vector<double> rows;     // the repeated rows of the Row sources
};

// A view of a slot that leaves the program (a result of the function, a .grad).
struct Exit {
  int slot;
  Shape shape, strides;
  std::int64_t offset;
  DType dtype;
};

class Program {
 public:
  // The bound views given to `replay` must have the recorded shape, strides and dtype (the
  // caller's guards check it with `accepts`).
  bool accepts(const std::vector<Tensor>& bound, std::string* why) const;
  // Runs the steps: rebinds the bound slots, gives internal slots that someone outside still
  // holds (a result the caller kept) fresh memory, then reruns every op in order.
  // Returns false when a value Python branched on came out different: the replay stopped
  // there, and the memory outside the program it had changed (a batch norm's running
  // statistics, say) is put back as it was.
  bool replay(const std::vector<Tensor>& bound);
  // Nanoseconds each step took, summed over `repeats` replays with the bound inputs of the last
  // one (for profiling; the results are those of a replay).
  std::vector<double> time_steps(int repeats);
  Tensor exit(int index) const;  // a fresh view for the exit, after a replay
  std::size_t exits() const { return exits_.size(); }
  std::vector<std::string> step_names() const;
  std::int64_t work() const { return work_; }  // elements the steps touch, to decide on the GIL

 private:
  friend class Builder;
  void rebind(Slot& slot, std::shared_ptr<Storage> storage, std::int64_t shift);
  static bool run(Step& step);
  static void run_chain(FusedChain& chain);
  void fuse();

  std::vector<Slot> slots_;
  std::vector<Tensor*> views_;  // each slot's views, one run per slot (one allocation for all)
  std::vector<Step> steps_;
  std::vector<int> bound_slots_;   // per bound input, its slot
  std::vector<Tensor> bound_seen_; // per bound input, the view seen at recording
  std::vector<Exit> exits_;
  std::vector<int> undo_;  // slots outside the program written before the last check
  std::int64_t work_ = 0;
};

// An address -> index map for the recording (storage -> slot, a tensor object read -> its
// place): open addressing in one array (a node-based map allocates a node per entry, and a
// recording looks a storage up for every operand and result). Keys are never removed.
class PointerMap {
 public:
  explicit PointerMap(std::size_t capacity = 128) : entries_(capacity) {}  // a power of two
  int find(const void* key) const {
    const std::size_t mask = entries_.size() - 1;
    for (std::size_t i = hash(key) & mask;; i = (i + 1) & mask) {
      const Entry& e = entries_[i];
      if (e.key == key) return e.slot;
      if (e.key == nullptr) return -1;
    }
  }
  // `key` must not be there yet (the caller keeps what it names alive: an address is never reused).
  void insert(const void* key, int slot) {
    if ((size_ + 1) * 2 > entries_.size()) {
      std::vector<Entry> old(entries_.size() * 2);
      old.swap(entries_);
      for (const Entry& e : old) if (e.key != nullptr) place(e.key, e.slot);
    }
    place(key, slot);
    ++size_;
  }

 private:
  struct Entry {
    const void* key = nullptr;
    int slot = -1;
  };
  static std::size_t hash(const void* key) {
    const auto v = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(key));
    return static_cast<std::size_t>((v * 0x9E3779B97F4A7C15ull) >> 32);
  }
  void place(const void* key, int slot) {
    const std::size_t mask = entries_.size() - 1;
    std::size_t i = hash(key) & mask;
    while (entries_[i].key != nullptr) i = (i + 1) & mask;
    entries_[i] = Entry{key, slot};
  }
  std::vector<Entry> entries_;
  std::size_t size_ = 0;
};

// Records the core ops of one call into a Program (install with record::set_recorder).
class Builder final : public record::Recorder {
 public:
  Builder() : program_(std::make_unique<Program>()) {
    // A small model's training step (XOR: 35 ops, 40 slots) records with no reallocation: a
    // growing vector of steps moves them all, and each allocation of a kilobyte or more makes
    // glibc's malloc consolidate its small free chunks first.
    program_->steps_.reserve(64);
    program_->slots_.reserve(64);
    references_.reserve(64);
  }
  // Declares a tensor handed in at each call (an argument, before the call; a .grad the call
  // read, after it: `adopt` turns the external slot the ops made for it into a bound one).
  // Returns its index among the bound inputs.
  int bind(const Tensor& array, bool adopt = false);
  // The slot a tensor lives in (-1: never seen).
  int slot_of(const Tensor& array) const { return slot_of(array.storage().get()); }
  int slot_of(const Storage* storage) const;
  bool is_internal(int slot) const { return program_->slots_[static_cast<std::size_t>(slot)].kind == SlotKind::Internal; }
  // A view that leaves the program; false (with a reason noted) when it cannot.
  int add_exit(const Tensor& array);
  const std::vector<std::string>& reasons() const { return reasons_; }
  // The program, with its slots' views indexed; the builder is spent.
  // With `fuse`, chains of elementwise steps become fused steps (FusedChain).
  std::unique_ptr<Program> finish(bool fuse = true);

  void op(const char* name, record::Tensors operands, const std::vector<int>& written,
          const record::Tensors& results, record::Rerun rerun, record::Into into,
          const record::Elementwise* elementwise) override;
  void unsupported(std::string reason) override;
  void value_read(const Tensor& t) override;
  void allocated(const std::shared_ptr<Storage>& storage) override;
  long references(const Storage* storage) const override;

 private:
  int new_slot(const Tensor& array, SlotKind kind);
  int operand_slot(const Tensor& array, bool written, const char* op);

  std::unique_ptr<Program> program_;
  PointerMap slot_of_;
  std::vector<long> references_;  // per slot: the tensors of steps that view it, and the slot itself
  std::unordered_map<const Storage*, std::weak_ptr<Storage>> made_outside_;
  std::vector<std::string> reasons_;
  std::vector<int> written_outside_;  // slots outside the program that ops wrote so far
};

}  // namespace chainrule::compile
