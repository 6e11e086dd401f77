// matmul: shape checks, batch broadcasting and 1-D promotion as numpy.matmul, then a
// Goto/BLIS-style GEMM: B is packed into kc x NC panels, A into MC x kc blocks, both straight
// from any strides (so a transposed operand costs nothing extra), and the micro-kernel of the
// CPU's ISA runs over MR x NR tiles. Tiny products skip packing and threads altogether.
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <exception>
#include <cstdlib>
#include <memory>
#include <vector>

#include "chainrule/config.h"
#include "chainrule/errors.h"
#include "chainrule/ops.h"
#include "gemm.h"
#include "parallel.h"

namespace chainrule {
using detail::parallel_for;
using detail::parallel_region;
namespace gemm {

MicroKernel<float> micro_kernel_f32(Isa isa) {
  switch (isa) {
    case Isa::Avx512: return avx512::kernel_f32();
    case Isa::Avx2: return avx2::kernel_f32();
    case Isa::Generic: break;
  }
  return generic::kernel_f32();
}

MicroKernel<double> micro_kernel_f64(Isa isa) {
  switch (isa) {
    case Isa::Avx512: return avx512::kernel_f64();
    case Isa::Avx2: return avx2::kernel_f64();
    case Isa::Generic: break;
  }
  return generic::kernel_f64();
}

}  // namespace gemm

namespace {

// A matrix operand: element (i, j) is at data[i * rs + j * cs].
template <typename T>
struct Operand {
  const T* data;
  std::int64_t rs, cs;
};

constexpr std::int64_t kTinyFlops = 16384;  // m * n * k below this: a plain loop
constexpr std::int64_t kGemmGrain = 1 << 22;  // multiply-adds per thread worth a fork
constexpr std::int64_t kUnpackedBytes = 128 * 1024;  // A and B this small: no packing

template <typename T>
struct Buffer {
  std::unique_ptr<T, decltype(&std::free)> data{nullptr, &std::free};
  explicit Buffer(std::int64_t count) {
    const std::size_t bytes = (static_cast<std::size_t>(count) * sizeof(T) + 63) / 64 * 64;
    data.reset(static_cast<T*>(std::aligned_alloc(64, bytes == 0 ? 64 : bytes)));
    if (!data) throw std::bad_alloc();
  }
};

// C (m x n, row-major with ldc) = A (m x k) * B (k x n), by the simple i-p-j loop.
template <typename T>
void gemm_plain(std::int64_t m, std::int64_t n, std::int64_t k, Operand<T> a, Operand<T> b, T* c,
                std::int64_t ldc) {
  for (std::int64_t i = 0; i < m; ++i) {
    T* row = c + i * ldc;
    for (std::int64_t j = 0; j < n; ++j) row[j] = T(0);
    for (std::int64_t p = 0; p < k; ++p) {
      const T aip = a.data[i * a.rs + p * a.cs];
      const T* brow = b.data + p * b.rs;
      if (b.cs == 1) {
        for (std::int64_t j = 0; j < n; ++j) row[j] += aip * brow[j];
      } else {
        for (std::int64_t j = 0; j < n; ++j) row[j] += aip * brow[j * b.cs];
      }
    }
  }
}

// Packs rows [row0, row0 + rows) and cols [col0, col0 + kc) of A into MR-row panels,
// column by column, zero-padding the last panel.
template <typename T>
void pack_a_panel(Operand<T> a, std::int64_t row0, std::int64_t rows, std::int64_t col0,
                  std::int64_t kc, int mr, T* out) {
  for (std::int64_t p = 0; p < kc; ++p) {
    const T* column = a.data + (col0 + p) * a.cs + row0 * a.rs;
    for (std::int64_t i = 0; i < mr; ++i) out[p * mr + i] = i < rows ? column[i * a.rs] : T(0);
  }
}

// pack_b_panel for a B whose columns are contiguous (B = X.T, as in a @ x.T): walking a column
// at a time reads memory in order and scatters into the small panel instead.
template <typename T>
void pack_b_panel_by_columns(Operand<T> b, std::int64_t row0, std::int64_t kc, std::int64_t col0,
                             std::int64_t cols, int nr, T* out) {
  for (std::int64_t j = 0; j < cols; ++j) {
    const T* column = b.data + row0 * b.rs + (col0 + j) * b.cs;
    for (std::int64_t p = 0; p < kc; ++p) out[p * nr + j] = column[p];
  }
  for (std::int64_t p = 0; p < kc; ++p) {
    for (std::int64_t j = cols; j < nr; ++j) out[p * nr + j] = T(0);
  }
}

// Packs rows [row0, row0 + kc) and cols [col0, col0 + cols) of B into one NR-wide panel,
// row by row, zero-padding missing columns.
template <typename T>
void pack_b_panel(Operand<T> b, std::int64_t row0, std::int64_t kc, std::int64_t col0,
                  std::int64_t cols, int nr, T* out) {
  if (b.rs == 1 && b.cs != 1) {
    pack_b_panel_by_columns(b, row0, kc, col0, cols, nr, out);
    return;
  }
  for (std::int64_t p = 0; p < kc; ++p) {
    const T* row = b.data + (row0 + p) * b.rs + col0 * b.cs;
    T* dst = out + p * nr;
    if (b.cs == 1) {
      for (std::int64_t j = 0; j < cols; ++j) dst[j] = row[j];
    } else {
      for (std::int64_t j = 0; j < cols; ++j) dst[j] = row[j * b.cs];
    }
    for (std::int64_t j = cols; j < nr; ++j) dst[j] = T(0);
  }
}

template <typename T>
gemm::MicroKernel<T> active_kernel() {
  if constexpr (std::is_same_v<T, float>) return gemm::micro_kernel_f32(active_isa());
  else return gemm::micro_kernel_f64(active_isa());
}

// One thread's share: C[rows, cols] = A[rows, :] * B[:, cols], blocked and packed into the
// caller's buffers (a_packed: MC x KC, b_packed: KC x NC).
template <typename T>
void gemm_block(std::int64_t row0, std::int64_t rows, std::int64_t col0, std::int64_t cols,
                std::int64_t k, Operand<T> a, Operand<T> b, T* c, std::int64_t ldc,
                const gemm::MicroKernel<T>& kernel, std::int64_t MC, std::int64_t KC, std::int64_t NC,
                T* a_packed, T* b_packed) {
  const int mr = kernel.mr, nr = kernel.nr;
  for (std::int64_t jc = col0; jc < col0 + cols; jc += NC) {
    const std::int64_t nc = std::min(NC, col0 + cols - jc);
    const std::int64_t b_panels = (nc + nr - 1) / nr;
    for (std::int64_t pc = 0; pc < k; pc += KC) {
      const std::int64_t kc = std::min(KC, k - pc);
      for (std::int64_t jp = 0; jp < b_panels; ++jp) {
        pack_b_panel(b, pc, kc, jc + jp * nr, std::min<std::int64_t>(nr, nc - jp * nr), nr,
                     b_packed + jp * nr * kc);
      }
      for (std::int64_t ic = row0; ic < row0 + rows; ic += MC) {
        const std::int64_t mc = std::min(MC, row0 + rows - ic);
        const std::int64_t a_panels = (mc + mr - 1) / mr;
        for (std::int64_t ip = 0; ip < a_panels; ++ip) {
          pack_a_panel(a, ic + ip * mr, std::min<std::int64_t>(mr, mc - ip * mr), pc, kc, mr,
                       a_packed + ip * mr * kc);
        }
        for (std::int64_t jp = 0; jp < b_panels; ++jp) {
          for (std::int64_t ip = 0; ip < a_panels; ++ip) {
            kernel.run(kc, a_packed + ip * mr * kc, b_packed + jp * nr * kc,
                       c + (ic + ip * mr) * ldc + jc + jp * nr, ldc,
                       std::min<std::int64_t>(mr, mc - ip * mr), std::min<std::int64_t>(nr, nc - jp * nr),
                       pc > 0);
          }
        }
      }
    }
  }
}

// The Goto/BLIS loops over independent tiles of C. Threads take tiles from a shared counter:
// no barrier anywhere, so a thread the OS descheduled (a busy neighbour on a shared machine)
// delays only the tile it holds while the others take the rest.
template <typename T>
void gemm_blocked(std::int64_t m, std::int64_t n, std::int64_t k, Operand<T> a, Operand<T> b, T* c,
                  std::int64_t ldc, int threads) {
  const gemm::MicroKernel<T> kernel = active_kernel<T>();
  const int mr = kernel.mr, nr = kernel.nr;
  // kc x NR of B stays in L1, MC x kc of A in L2, kc x NC of B in L3.
  const std::int64_t KC = 256;
  const std::int64_t MC = mr * (sizeof(T) == 4 ? 24 : 16);
  const std::int64_t NC = nr * 64;
  // Tiles: whole micro-panels, split along the longer side; every tile packs its own copy of
  // the other operand, so small products get one tile per thread and large ones four (which
  // balances the load when a thread is slowed down).
  const bool large = m * n * k >= (std::int64_t{1} << 26);
  const std::int64_t wanted = threads > 1 ? (large ? 4 : 1) * threads : 1;
  const bool split_rows = m >= n;
  const std::int64_t unit = split_rows ? mr : nr;
  const std::int64_t extent = split_rows ? m : n;
  const std::int64_t units = (extent + unit - 1) / unit;
  const std::int64_t tile = std::max<std::int64_t>(1, (units + wanted - 1) / wanted) * unit;
  const std::int64_t tiles = (extent + tile - 1) / tile;
  const std::int64_t rows_max = split_rows ? std::min(tile, m) : m;
  const std::int64_t cols_max = split_rows ? n : std::min(tile, n);
  const std::int64_t kc_max = std::min(KC, k);
  const std::int64_t a_size = std::min(MC, (rows_max + mr - 1) / mr * mr) * kc_max;
  const std::int64_t b_size = std::min(NC, (cols_max + nr - 1) / nr * nr) * kc_max;
  std::atomic<std::int64_t> next{0};
  const int team = static_cast<int>(std::min<std::int64_t>(threads, tiles));
  // Every thread's packing buffers, allocated before the parallel region: nothing in it throws.
  const std::int64_t a_stride = (a_size + 15) / 16 * 16;  // 64-byte aligned starts
  const std::int64_t per_thread = a_stride + (b_size + 15) / 16 * 16;
  Buffer<T> packed(per_thread * team);
  parallel_region(team, [&] {
    T* a_packed = packed.data.get() + per_thread * omp_get_thread_num();
    T* b_packed = a_packed + a_stride;
    for (std::int64_t t = next++; t < tiles; t = next++) {
      const std::int64_t start = t * tile;
      const std::int64_t length = std::min(tile, extent - start);
      if (split_rows) {
        gemm_block(start, length, 0, n, k, a, b, c, ldc, kernel, MC, KC, NC, a_packed, b_packed);
      } else {
        gemm_block(0, m, start, length, k, a, b, c, ldc, kernel, MC, KC, NC, a_packed, b_packed);
      }
    }
  });
}

// A narrow C (n <= the narrow kernel's NR: a classifier's outputs): A read in place, B packed
// once per KC rows (kc x NR, zero-padded), row blocks of C split over the team.
template <typename T>
void gemm_narrow(std::int64_t m, std::int64_t n, std::int64_t k, Operand<T> a, Operand<T> b, T* c,
                 std::int64_t ldc, int threads, const gemm::MicroKernel<T>& kernel) {
  const int mr = kernel.narrow_mr, nr = kernel.narrow_nr;
  constexpr std::int64_t KC = 512;
  Buffer<T> packed(std::min(KC, k) * nr);
  const std::int64_t blocks = (m + mr - 1) / mr;
  for (std::int64_t p0 = 0; p0 < k; p0 += KC) {
    const std::int64_t kc = std::min(KC, k - p0);
    pack_b_panel(b, p0, kc, 0, n, nr, packed.data.get());
    parallel_for(std::min<std::int64_t>(threads, blocks), blocks, [&](std::int64_t block) {
      const std::int64_t i0 = block * mr;
      kernel.narrow(kc, a.data + i0 * a.rs + p0 * a.cs, a.rs, a.cs, packed.data.get(), nr, c + i0 * ldc, ldc,
                    std::min<std::int64_t>(mr, m - i0), n, p0 > 0);
    });
  }
}

template <typename T>
void gemm_any(std::int64_t m, std::int64_t n, std::int64_t k, Operand<T> a, Operand<T> b, T* c,
              std::int64_t ldc, int threads) {
  if (m == 0 || n == 0) return;
  if constexpr (std::is_floating_point_v<T>) {
    if (m * n * k >= kTinyFlops && k > 0) {
      const gemm::MicroKernel<T> kernel = active_kernel<T>();
      if (n == 1 && a.cs == 1) {  // matrix times vector: dot products, rows split over the team
        const std::int64_t chunk = (m + threads - 1) / threads;
        parallel_for(threads, threads, [&](std::int64_t t) {
          const std::int64_t i0 = std::min(m, t * chunk), rows = std::min(m, i0 + chunk) - i0;
          kernel.dot(rows, k, a.data + i0 * a.rs, a.rs, b.data, b.rs, c + i0 * ldc, ldc);
        });
        return;
      }
      if (b.cs == 1 && n % kernel.nr == 0 && (m * k + k * n) * std::int64_t{sizeof(T)} <= kUnpackedBytes &&
          k <= 512) {
        // Small operands (they fit in L2): tiles straight from A and B, no packing.
        const std::int64_t row_blocks = (m + kernel.mr - 1) / kernel.mr, col_blocks = n / kernel.nr;
        parallel_for(std::min<std::int64_t>(threads, row_blocks * col_blocks), row_blocks * col_blocks,
                     [&](std::int64_t tile) {
          const std::int64_t i0 = (tile / col_blocks) * kernel.mr, j0 = (tile % col_blocks) * kernel.nr;
          kernel.unpacked(k, a.data + i0 * a.rs, a.rs, a.cs, b.data + j0, b.rs, c + i0 * ldc + j0, ldc,
                          std::min<std::int64_t>(kernel.mr, m - i0), kernel.nr, false);
        });
        return;
      }
      if (n <= kernel.narrow_nr && n < kernel.nr) {
        gemm_narrow(m, n, k, a, b, c, ldc, threads, kernel);
        return;
      }
      gemm_blocked(m, n, k, a, b, c, ldc, threads);
      return;
    }
  }
  gemm_plain(m, n, k, a, b, c, ldc);
}

}  // namespace

Tensor matmul(const Tensor& a_in, const Tensor& b_in) {
  if (a_in.ndim() == 0 || b_in.ndim() == 0) {
    fail<ValueError>("matmul: both operands need at least 1 dim, got shapes ", a_in.shape(), " and ",
                     b_in.shape());
  }
  const DType dtype = promote(a_in.dtype(), b_in.dtype());
  if (dtype == DType::Bool) {
    fail<TypeError>("matmul: not supported for bool tensors (dtypes ", a_in.dtype(), " and ", b_in.dtype(), ")");
  }
  // A 1-D operand becomes a row (left) or a column (right), removed from the result again.
  const Tensor a = a_in.ndim() == 1 ? a_in.unsqueeze(0) : a_in;
  const Tensor b = b_in.ndim() == 1 ? b_in.unsqueeze(1) : b_in;
  const std::int64_t m = a.shape()[a.ndim() - 2], k = a.shape()[a.ndim() - 1];
  const std::int64_t k2 = b.shape()[b.ndim() - 2], n = b.shape()[b.ndim() - 1];
  if (k != k2) {
    fail<ValueError>("matmul: shapes ", a_in.shape(), " and ", b_in.shape(), " cannot be multiplied (", k,
                     " != ", k2, ")");
  }
  const Shape a_batch(a.shape().begin(), a.shape().end() - 2);
  const Shape b_batch(b.shape().begin(), b.shape().end() - 2);
  Shape batch;
  try {
    batch = broadcast_shapes(a_batch, b_batch, "matmul");
  } catch (const ValueError&) {
    fail<ValueError>("matmul: the batch dims of shapes ", a_in.shape(), " and ", b_in.shape(),
                     " cannot be broadcast together (", a_batch, " and ", b_batch, ")");
  }
  Shape a_full = batch, b_full = batch, out_shape = batch;
  a_full.insert(a_full.end(), {m, k});
  b_full.insert(b_full.end(), {k, n});
  out_shape.insert(out_shape.end(), {m, n});
  const Tensor ea = a.to(dtype).expand(a_full);
  const Tensor eb = b.to(dtype).expand(b_full);
  Tensor out;
  try {
    out = Tensor::empty(out_shape, dtype);
  } catch (const MemoryError& error) {
    fail<MemoryError>("matmul: shapes ", a_in.shape(), " and ", b_in.shape(), ": ", error.what());
  }
  const std::int64_t batches = numel_of(batch);
  const std::int64_t nb = static_cast<std::int64_t>(batch.size());

  dispatch_dtype(dtype, [&](auto zero) {
    using T = decltype(zero);
    if constexpr (!std::is_same_v<T, bool>) {
      const std::int64_t work = m * n * std::max<std::int64_t>(k, 1);
      // Many small products: one thread each. Few large ones: the GEMM's team.
      const int batch_threads = batches > 1 ? std::min<std::int64_t>(threads_for(work * batches, kGemmGrain), batches) : 1;
      const int gemm_threads = batch_threads > 1 ? 1 : threads_for(work, kGemmGrain);
      // Each product may allocate packing buffers: an exception must not leave the OpenMP
      // region, so the first one is kept and rethrown after it.
      std::exception_ptr error;
      parallel_for(batch_threads, batches, [&](std::int64_t index) {
       try {
        std::int64_t a_offset = 0, b_offset = 0, rest = index;
        for (std::int64_t d = nb - 1; d >= 0; --d) {
          const std::int64_t i = rest % batch[d];
          rest /= batch[d];
          a_offset += i * ea.strides()[d];
          b_offset += i * eb.strides()[d];
        }
        const Operand<T> oa{ea.data_as<T>() + a_offset, ea.strides()[nb], ea.strides()[nb + 1]};
        const Operand<T> ob{eb.data_as<T>() + b_offset, eb.strides()[nb], eb.strides()[nb + 1]};
        gemm_any<T>(m, n, k, oa, ob, out.data_as<T>() + index * m * n, n, gemm_threads);
       } catch (...) {
#pragma omp critical(chainrule_matmul_error)
        if (!error) error = std::current_exception();
       }
      });
      if (error) std::rethrow_exception(error);
    }
  });
  if (a_in.ndim() == 1 && b_in.ndim() == 1) return out.reshape({});
  if (a_in.ndim() == 1) return out.squeeze(-2);
  if (b_in.ndim() == 1) return out.squeeze(-1);
  return out;
}

}  // namespace chainrule
