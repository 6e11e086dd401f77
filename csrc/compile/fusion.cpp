// Fusing chains of elementwise steps (cr.compile). Program::fuse, at the end of a recording,
// groups each maximal run of consecutive elementwise steps over the same number of elements
// into a FusedChain (program.h), held by the run's first step; Program::run_chain replays the
// whole run in one pass when the replay reaches that step, and the other members are skipped.
//
// Why it gives the eager bits: each member runs the very loop its eager kernel runs on a
// contiguous run (record::Elementwise), and every one of these loops computes element i from
// the operands' element i alone (the float32 exp, sigmoid and tanh of vector_math too: lane by
// lane, a short tail through a padded vector). So cutting the elements into blocks, or into a
// thread's chunks, changes where each loop starts, never a value.
//
// What fuses: a step whose op declared its loop (binary and unary ops computing in float32 or
// float64, their operands of that dtype: record::Elementwise), whose result is contiguous, and
// whose operands are each, flattened like the result,
//   - the whole operand in contiguous memory (an earlier member's result, or any other slot),
//   - one value (a Python number, or a tensor broadcast from one element): binary ops only,
//   - one contiguous row broadcast over leading dimensions (a bias over a batch): binary only.
// Anything else ends the chain: another op (a matmul, a reduction, an in-place update), a
// different number of elements, a transposed or column-broadcast operand, a cast.
#include <algorithm>
#include <cstring>

#include "chainrule/config.h"
#include "program.h"
#include "../kernels/parallel.h"

namespace chainrule::compile {

namespace {

// Elements per block: 16 KiB of float64 (8 of float32), so that the blocks of a chain's
// operands, results and scratch stay in the first two cache levels.
constexpr std::int64_t kBlock = 2048;

// When `view` (flattened in the result's order) repeats one contiguous run of P elements, its
// leading dimensions of stride 0 and the rest contiguous, P; otherwise 0. P == numel: the
// whole operand is contiguous; P == 1: it is one value.
std::int64_t row_period(const Tensor& view) {
  std::int64_t period = 1;  // the stride the next contiguous dimension must have
  std::int64_t d = view.ndim() - 1;
  for (; d >= 0; --d) {
    const std::int64_t size = view.shape()[static_cast<std::size_t>(d)];
    if (size == 1) continue;
    if (view.strides()[static_cast<std::size_t>(d)] != period) break;
    period *= size;
  }
  for (; d >= 0; --d) {
    if (view.shape()[static_cast<std::size_t>(d)] != 1 && view.strides()[static_cast<std::size_t>(d)] != 0) return 0;
  }
  return period;
}

// Whether a step can be a member of a chain.
bool fusable(const Step& step) {
  if (step.elementwise.loop == nullptr || !step.into || !step.expected.empty() || step.in_chain) return false;
  if (step.results.size() != 1 || !step.results[0].defined() || !step.results[0].is_contiguous()) return false;
  const Tensor& result = step.results[0];
  if (result.numel() == 0) return false;
  const int arity = step.elementwise.arity;
  const int numbers = step.elementwise.constant_side != 0 ? 1 : 0;
  if (static_cast<int>(step.operands.size()) + numbers != arity) return false;
  int scalars = numbers;
  for (const Tensor& operand : step.operands) {
    if (!operand.defined() || operand.shape() != result.shape() || operand.dtype() != result.dtype()) return false;
    const std::int64_t period = row_period(operand);
    if (period == 0) return false;
    // A unary op reads only a whole contiguous operand (else its eager kernel may take another
    // loop: float32 exp of a strided view runs libm's, not vector_math's).
    if (arity == 1 && !(period == result.numel() && operand.is_contiguous())) return false;
    if (period == 1 && result.numel() > 1) ++scalars;
  }
  return scalars < arity;  // a binary op of two single values is left alone
}

// Whether steps[next] may join the chain steps[first .. next): the chain runs block by block, so
// a member sees an earlier member's result only for the block at hand. It may read that result
// as a whole, at the same place (element i of it, written just before in this block); any other
// read of memory a member writes (one value or a row broadcast from it, or the same storage at
// another offset) would see this replay's block or the last replay's values by chance, so it
// ends the chain. So does writing memory an earlier member read.
bool joins(const std::vector<Step>& steps, std::size_t first, std::size_t next) {
  const Step& step = steps[next];
  for (std::size_t earlier = first; earlier < next; ++earlier) {
    const Step& member = steps[earlier];
    const int written = member.result_slots[0];
    for (std::size_t k = 0; k < step.operands.size(); ++k) {
      if (step.operand_slots[k] != written) continue;
      const Tensor& operand = step.operands[k];
      const bool whole = row_period(operand) == operand.numel() && operand.offset() == member.results[0].offset();
      if (!whole) return false;
    }
    for (const int read : member.operand_slots) {
      if (read >= 0 && read == step.result_slots[0]) return false;
    }
  }
  return true;
}

}  // namespace

void Program::fuse() {
  // How many times each slot is read or written by a step, or leaves the program.
  std::vector<int> uses(slots_.size(), 0);
  for (const Step& step : steps_) {
    for (const int s : step.operand_slots) if (s >= 0) ++uses[static_cast<std::size_t>(s)];
    for (const int s : step.result_slots) if (s >= 0) ++uses[static_cast<std::size_t>(s)];
  }
  for (const Exit& e : exits_) ++uses[static_cast<std::size_t>(e.slot)];

  // The members stay where they are in steps_: the first one holds the chain and runs it.
  std::size_t i = 0;
  while (i < steps_.size()) {
    if (!fusable(steps_[i])) {
      ++i;
      continue;
    }
    const std::int64_t numel = steps_[i].results[0].numel();
    std::size_t end = i + 1;
    while (end < steps_.size() && fusable(steps_[end]) && steps_[end].results[0].numel() == numel &&
           joins(steps_, i, end)) {
      ++end;
    }

    auto chain = std::make_shared<FusedChain>();
    chain->numel = numel;
    chain->block = std::min(numel, kBlock);
    chain->steps.reserve(end - i);
    chain->members.reserve(end - i);
    for (std::size_t k = i; k < end; ++k) {
      chain->steps.push_back(&steps_[k]);
      steps_[k].in_chain = true;
    }
    // A member's result is written to memory only when a step after the chain, or the caller,
    // reads it: when its slot has uses outside the chain.
    for (const Step* member : chain->steps) {
      for (const int s : member->operand_slots) if (s >= 0) --uses[static_cast<std::size_t>(s)];
    }
    int scratch_blocks = 0;
    std::int64_t row_bytes = 0;
    for (std::size_t m = 0; m < chain->steps.size(); ++m) {
      Step& step = *chain->steps[m];
      FusedChain::Member member{step.elementwise.loop, step.elementwise.arity, {}, 0, true, -1};
      const std::int64_t item = itemsize(step.results[0].dtype());
      std::size_t next_operand = 0;
      for (int side = 1; side <= member.arity; ++side) {
        FusedChain::Source& source = member.in[side - 1];
        if (side == step.elementwise.constant_side) {
          source.kind = FusedChain::Source::Kind::Constant;
          source.constant = step.elementwise.constant;
          member.side = side;
          continue;
        }
        const std::size_t k = next_operand++;
        const Tensor& operand = step.operands[k];
        const std::int64_t period = row_period(operand);
        source.view = &operand;
        if (period == numel) {
          // An earlier member's result is read from that member's block, wherever it lives.
          for (std::size_t earlier = 0; earlier < m; ++earlier) {
            if (chain->steps[earlier]->result_slots[0] == step.operand_slots[k] &&
                chain->steps[earlier]->results[0].offset() == operand.offset()) {
              source.kind = FusedChain::Source::Kind::Member;
              source.member = static_cast<int>(earlier);
            }
          }
        } else if (period == 1) {
          source.kind = FusedChain::Source::Kind::Scalar;
          member.side = side;
        } else {
          source.kind = FusedChain::Source::Kind::Row;
          source.period = period;
          source.repeated = row_bytes;
          row_bytes += ((chain->block + period) * item + 7) / 8 * 8;
        }
      }
      // Its own result slot counts once (the member itself).
      member.stored = uses[static_cast<std::size_t>(step.result_slots[0])] > 1;
      if (!member.stored) member.scratch = scratch_blocks++;
      chain->members.push_back(member);
    }
    chain->scratch.resize(static_cast<std::size_t>(scratch_blocks * chain->block));
    chain->rows.resize(static_cast<std::size_t>(row_bytes / 8));

    steps_[i].fused = std::move(chain);
    i = end;
  }
}

void Program::run_chain(FusedChain& chain) {
  const std::size_t count = chain.members.size();
  // This replay's addresses: the slots may have been rebound since the last one.
  struct Addresses {
    const char* in[2];
    char* out;
    std::int64_t item;
  };
  Addresses local[16];
  std::vector<Addresses> many;
  Addresses* at = local;
  if (count > 16) {
    many.resize(count);
    at = many.data();
  }
  for (std::size_t m = 0; m < count; ++m) {
    FusedChain::Member& member = chain.members[m];
    const Tensor& result = chain.steps[m]->results[0];
    at[m].item = itemsize(result.dtype());
    at[m].out = member.stored ? static_cast<char*>(result.data()) : nullptr;
    for (int k = 0; k < member.arity; ++k) {
      FusedChain::Source& source = member.in[k];
      at[m].in[k] = source.kind == FusedChain::Source::Kind::Constant ? static_cast<const char*>(source.constant)
                                                                       : static_cast<const char*>(source.view->data());
      if (source.kind == FusedChain::Source::Kind::Row) {
        // The row repeated: element j of a block starting at b is repeated[b % period + j].
        char* repeated = reinterpret_cast<char*>(chain.rows.data()) + source.repeated;
        const std::size_t row_bytes = static_cast<std::size_t>(source.period * at[m].item);
        const std::size_t total = static_cast<std::size_t>((chain.block + source.period) * at[m].item);
        for (std::size_t filled = 0; filled < total; filled += row_bytes) {
          std::memcpy(repeated + filled, at[m].in[k], std::min(row_bytes, total - filled));
        }
        at[m].in[k] = repeated;
      }
    }
  }

  auto run_blocks = [&](std::int64_t begin, std::int64_t end, double* scratch) {
    for (std::int64_t b = begin; b < end; b += chain.block) {
      const std::int64_t n = std::min(chain.block, end - b);
      for (std::size_t m = 0; m < count; ++m) {
        const FusedChain::Member& member = chain.members[m];
        const Addresses& a = at[m];
        const void* in[2] = {nullptr, nullptr};
        for (int k = 0; k < member.arity; ++k) {
          const FusedChain::Source& source = member.in[k];
          switch (source.kind) {
            case FusedChain::Source::Kind::Memory: in[k] = a.in[k] + b * a.item; break;
            case FusedChain::Source::Kind::Scalar:
            case FusedChain::Source::Kind::Constant: in[k] = a.in[k]; break;
            case FusedChain::Source::Kind::Row: in[k] = a.in[k] + (b % source.period) * a.item; break;
            case FusedChain::Source::Kind::Member: {
              const FusedChain::Member& from = chain.members[static_cast<std::size_t>(source.member)];
              in[k] = from.stored ? at[source.member].out + b * at[source.member].item
                                  : static_cast<const void*>(scratch + from.scratch * chain.block);
              break;
            }
          }
        }
        void* out = member.stored ? static_cast<void*>(a.out + b * a.item) : scratch + member.scratch * chain.block;
        member.loop(in[0], in[1], out, n, member.side);
      }
    }
  };

  const int threads = threads_for(chain.numel, kElementwiseGrain);
  if (threads <= 1) {
    run_blocks(0, chain.numel, chain.scratch.data());
    return;
  }
  // Chunks of whole blocks on a team; each thread its own scratch.
  detail::parallel_chunks(threads, chain.numel, chain.block, [&](std::int64_t begin, std::int64_t end) {
    std::vector<double> scratch(chain.scratch.size());
    run_blocks(begin, end, scratch.data());
  });
}

}  // namespace chainrule::compile
