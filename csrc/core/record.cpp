#include "chainrule/record.h"

namespace chainrule::record {

namespace detail {
thread_local Recorder* recording = nullptr;
thread_local Recorder* active = nullptr;
}  // namespace detail

void set_recorder(Recorder* recorder) {
  detail::recording = recorder;
  detail::active = recorder;
}

Tensors run(const char* name, Tensors operands, std::vector<int> written, Rerun rerun, Into into,
            const Elementwise* elementwise) {
  Recorder* recorder = detail::active;
  // The op's own calls of other ops (and its allocations) are part of it.
  detail::active = nullptr;
  Tensors results;
  try {
    results = rerun(operands);
  } catch (...) {
    detail::active = recorder;
    throw;
  }
  detail::active = recorder;
  if (recorder != nullptr) recorder->op(name, std::move(operands), written, results, std::move(rerun), std::move(into), elementwise);
  return results;
}

}  // namespace chainrule::record
