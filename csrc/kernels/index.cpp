// Gathering and scattering along a dim by an int64 index tensor (t[idx] and its backward),
// and joining tensors (cat). Rows move with memcpy / a contiguous add loop.
#include <cstring>

#include "chainrule/errors.h"
#include "chainrule/record.h"
#include "chainrule/ops.h"

namespace chainrule {

using Ts = record::Tensors;  // a recorded op's tensor operands
namespace {

// The index as a contiguous int64 vector, wrapped into [0, size); IndexError when out of range.
std::vector<std::int64_t> checked_index(const Tensor& index, std::int64_t size, const char* op) {
  if (index.dtype() != DType::Int64) {
    fail<IndexError>(op, ": index tensors must be int64 (or bool masks), got dtype ", index.dtype());
  }
  if (index.ndim() > 1) fail<IndexError>(op, ": expected a 1-D index, got shape ", index.shape());
  const Tensor flat = index.contiguous();
  const std::int64_t* data = flat.data_as<std::int64_t>();
  std::vector<std::int64_t> out(static_cast<std::size_t>(flat.numel()));
  for (std::int64_t i = 0; i < flat.numel(); ++i) {
    std::int64_t v = data[i];
    if (v < -size || v >= size) {
      fail<IndexError>(op, ": index ", v, " is out of bounds for a dim of size ", size);
    }
    out[static_cast<std::size_t>(i)] = v < 0 ? v + size : v;
  }
  return out;
}

}  // namespace

Tensor index_select(const Tensor& a, std::int64_t dim, const Tensor& index) {
  if (record::active()) return record::result("index_select", {a, index}, [dim](const Ts& x) { return index_select(x[0], dim, x[1]); });
  const std::int64_t d = existing_dim(dim, a.ndim(), "index_select");
  const std::vector<std::int64_t> rows = checked_index(index, a.shape()[d], "index_select");
  // Move dim to the front so every selected slice is one contiguous row.
  const Tensor source = a.transpose(0, d).contiguous();
  Shape shape = source.shape();
  shape[0] = static_cast<std::int64_t>(rows.size());
  Tensor out = Tensor::empty(shape, a.dtype());
  const std::int64_t row_bytes = (source.shape()[0] ? source.numel() / source.shape()[0] : 0) * itemsize(a.dtype());
  const char* from = static_cast<const char*>(source.data());
  char* to = static_cast<char*>(out.data());
  for (std::size_t i = 0; i < rows.size(); ++i) {
    std::memcpy(to + static_cast<std::int64_t>(i) * row_bytes, from + rows[i] * row_bytes, static_cast<std::size_t>(row_bytes));
  }
  return d == 0 ? out : out.transpose(0, d).contiguous();
}

void index_add_(const Tensor& out, std::int64_t dim, const Tensor& index, const Tensor& src) {
  if (record::active()) return record::in_place("index_add_", {out, index, src}, [dim](const Ts& x) { index_add_(x[0], dim, x[1], x[2]); });
  const std::int64_t d = existing_dim(dim, out.ndim(), "index_add_");
  const std::vector<std::int64_t> rows = checked_index(index, out.shape()[d], "index_add_");
  Shape expected = out.shape();
  expected[d] = static_cast<std::int64_t>(rows.size());
  if (src.shape() != expected) {
    fail<ValueError>("index_add_: source of shape ", src.shape(), " does not match ", expected);
  }
  if (!is_floating(out.dtype()) && out.dtype() != DType::Int64) {
    fail<TypeError>("index_add_: not supported for dtype ", out.dtype());
  }
  // Accumulate into a contiguous front-dim copy, then write back (duplicates add up).
  Tensor target = out.transpose(0, d).contiguous();
  const Tensor source = src.to(out.dtype()).transpose(0, d).contiguous();
  const std::int64_t row = target.shape()[0] ? target.numel() / target.shape()[0] : 0;
  dispatch_dtype(out.dtype(), [&](auto zero) {
    using T = decltype(zero);
    if constexpr (!std::is_same_v<T, bool>) {
      T* to = target.data_as<T>();
      const T* from = source.data_as<T>();
      for (std::size_t i = 0; i < rows.size(); ++i) {
        T* dst = to + rows[i] * row;
        const T* s = from + static_cast<std::int64_t>(i) * row;
        for (std::int64_t j = 0; j < row; ++j) dst[j] += s[j];
      }
    }
  });
  if (!target.shares_storage(out)) copy_(out.transpose(0, d), target);
  out.bump_version();
}

Tensor cat(const std::vector<Tensor>& tensors, std::int64_t dim) {
  if (record::active()) return record::result("cat", tensors, [dim](const Ts& x) { return cat(x, dim); });
  if (tensors.empty()) fail<ValueError>("cat: expected a non-empty list of tensors");
  const Tensor& first = tensors.front();
  if (first.ndim() == 0) fail<ValueError>("cat: zero-dimensional tensors cannot be concatenated");
  const std::int64_t d = wrap_dim(dim, first.ndim(), "cat");
  DType dtype = first.dtype();
  Shape shape = first.shape();
  shape[d] = 0;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    dtype = promote(dtype, t.dtype());
    bool compatible = t.ndim() == first.ndim();
    for (std::int64_t k = 0; compatible && k < t.ndim(); ++k) {
      compatible = k == d || t.shape()[k] == first.shape()[k];
    }
    if (!compatible) {
      fail<ValueError>("cat: tensor ", i, " has shape ", t.shape(), " but tensor 0 has shape ", first.shape(),
                       "; all sizes must match except in dim ", d);
    }
    shape[d] += t.shape()[d];
  }
  Tensor out = Tensor::empty(shape, dtype);
  std::int64_t offset = 0;
  for (const Tensor& t : tensors) {
    const std::int64_t size = t.shape()[d];
    if (size > 0) copy_(out.slice(d, offset, offset + size, 1), t);
    offset += size;
  }
  return out;
}

}  // namespace chainrule
