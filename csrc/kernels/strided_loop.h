// The one strided loop every elementwise kernel runs on. Operands (output first) all have the
// output's shape (inputs already broadcast, with stride 0 on broadcast dims); dims that are
// contiguous with each other in every operand are merged, so most calls become one flat loop.
// The body sees one innermost row at a time: body(pointers, byte strides, count).
#pragma once
#include <array>
#include <cstdint>
#include <vector>

#include "chainrule/config.h"
#include "chainrule/tensor.h"
#include "parallel.h"

namespace chainrule::detail {

// Sizes, strides or indices of a plan's dims: up to 8 in place, more on the heap. A plan is
// made for every elementwise call, and for small tensors a heap allocation per array would
// cost more than the arithmetic.
class DimArray {
 public:
  explicit DimArray(std::size_t n = 0) {
    for (std::size_t i = 0; i < n; ++i) push_back(0);
  }
  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  void push_back(std::int64_t value) {
    if (size_ < kInline) {
      inline_[size_] = value;
    } else {
      if (size_ == kInline) heap_.assign(inline_.begin(), inline_.end());
      heap_.push_back(value);
    }
    ++size_;
  }
  std::int64_t& operator[](std::size_t i) { return size_ <= kInline ? inline_[i] : heap_[i]; }
  std::int64_t operator[](std::size_t i) const { return size_ <= kInline ? inline_[i] : heap_[i]; }
  std::int64_t& back() { return (*this)[size_ - 1]; }

 private:
  static constexpr std::size_t kInline = 8;
  std::array<std::int64_t, kInline> inline_{};
  std::vector<std::int64_t> heap_;  // all the values once there are more than kInline
  std::size_t size_ = 0;
};

template <int N>
struct LoopPlan {
  DimArray shape;                  // merged dims, innermost last
  std::array<DimArray, N> strides; // byte strides per operand
  std::array<char*, N> base{};
  std::int64_t numel = 0;
};

template <int N>
LoopPlan<N> make_plan(const std::array<const Tensor*, N>& operands) {
  LoopPlan<N> plan;
  const Tensor& out = *operands[0];
  plan.numel = out.numel();
  if (plan.numel == 0) return plan;  // nothing to run (and sizes may overflow byte strides)
  for (int k = 0; k < N; ++k) plan.base[k] = static_cast<char*>(operands[k]->data());
  for (std::int64_t d = 0; d < out.ndim(); ++d) {
    const std::int64_t size = out.shape()[d];
    if (size == 1) continue;
    bool merge = !plan.shape.empty();
    for (int k = 0; k < N && merge; ++k) {
      const std::int64_t stride = operands[k]->strides()[d] * itemsize(operands[k]->dtype());
      merge = plan.strides[k].back() == stride * size;
    }
    if (merge) {
      plan.shape.back() *= size;
      for (int k = 0; k < N; ++k) plan.strides[k].back() = operands[k]->strides()[d] * itemsize(operands[k]->dtype());
    } else {
      plan.shape.push_back(size);
      for (int k = 0; k < N; ++k) plan.strides[k].push_back(operands[k]->strides()[d] * itemsize(operands[k]->dtype()));
    }
  }
  if (plan.shape.empty()) {  // a single element
    plan.shape.push_back(1);
    for (int k = 0; k < N; ++k) plan.strides[k].push_back(0);
  }
  return plan;
}

// Runs body over the linear element range [begin, end) of the plan, row by row.
template <int N, typename Body>
void run_range(const LoopPlan<N>& plan, std::int64_t begin, std::int64_t end, Body&& body) {
  const std::size_t ndim = plan.shape.size();
  const std::size_t inner = ndim - 1;
  DimArray index(ndim);
  std::int64_t rest = begin;
  for (std::size_t d = ndim; d-- > 0;) {
    index[d] = rest % plan.shape[d];
    rest /= plan.shape[d];
  }
  std::array<std::int64_t, N> inner_strides{};
  for (int k = 0; k < N; ++k) inner_strides[k] = plan.strides[k][inner];
  std::int64_t position = begin;
  while (position < end) {
    std::array<char*, N> pointers = plan.base;
    for (std::size_t d = 0; d < ndim; ++d) {
      for (int k = 0; k < N; ++k) pointers[k] += index[d] * plan.strides[k][d];
    }
    const std::int64_t count = std::min(plan.shape[inner] - index[inner], end - position);
    body(pointers.data(), inner_strides.data(), count);
    position += count;
    index[inner] += count;
    for (std::size_t d = inner; d > 0 && index[d] == plan.shape[d]; --d) {
      index[d] = 0;
      ++index[d - 1];
    }
  }
}

// Splits the plan over a team sized by the work: one thread below the grain, no fork at all;
// above it, chunks the threads take in turn (parallel_chunks).
template <int N, typename Body>
void run_plan(const LoopPlan<N>& plan, Body&& body, std::int64_t grain = kElementwiseGrain) {
  if (plan.numel == 0) return;
  parallel_chunks(threads_for(plan.numel, grain), plan.numel, 64,
                  [&](std::int64_t begin, std::int64_t end) { run_range(plan, begin, end, body); });
}

}  // namespace chainrule::detail
