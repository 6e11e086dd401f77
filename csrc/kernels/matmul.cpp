// matmul: shape checks, batch broadcasting and 1-D promotion as numpy.matmul, then a
// Goto/BLIS-style GEMM: all of B is packed first (kc x NR panels per KC-row block, shared by the
// team), A into MC x kc blocks by each thread for its own tiles, both straight from any strides
// (so a transposed operand costs nothing extra), and the micro-kernel of the CPU's ISA runs over
// MR x NR tiles. Tiny products skip packing and threads altogether.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
#include <cstdlib>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "chainrule/config.h"
#include "chainrule/errors.h"
#include "chainrule/record.h"
#include "chainrule/ops.h"
#include "elementwise_ops.h"
#include "gemm.h"
#include "parallel.h"

namespace chainrule {

using Ts = record::Tensors;  // a recorded op's tensor operands
using detail::parallel_chunks_of;
using detail::parallel_for;
using detail::parallel_region;
namespace gemm {

MicroKernel<float> micro_kernel_f32(Isa isa) {
  return call_for_isa(isa, generic::kernel_f32, avx2::kernel_f32, avx512::kernel_f32);
}

MicroKernel<double> micro_kernel_f64(Isa isa) {
  return call_for_isa(isa, generic::kernel_f64, avx2::kernel_f64, avx512::kernel_f64);
}

double fma_peak_gflops(Isa isa, double seconds) {
  const int lanes = isa == Isa::Avx512 ? 16 : isa == Isa::Avx2 ? 8 : 4;
  const double flops_per_iteration = 12.0 * lanes * 2;
  auto time_one = [isa](std::int64_t iterations) {
    const auto start = std::chrono::steady_clock::now();
    volatile float sink = call_for_isa(isa, [&] { return generic::fma_chains(iterations); },
                                       [&] { return avx2::fma_chains(iterations); },
                                       [&] { return avx512::fma_chains(iterations); });
    (void)sink;
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  // Runs of about 2 ms, the best of those that fit in `seconds`: on a shared machine most such
  // runs fit between two of the OS's time slices, where longer ones would be cut.
  std::int64_t iterations = 1 << 10;
  while (time_one(iterations) < 1e-3 && iterations < (std::int64_t{1} << 40)) iterations *= 2;
  double best = 0, spent = 0;
  for (int run = 0; run < 3 || spent < seconds; ++run) {
    const double elapsed = time_one(iterations);
    spent += elapsed;
    best = std::max(best, flops_per_iteration * static_cast<double>(iterations) / elapsed / 1e9);
  }
  return best;
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
constexpr std::int64_t kUnpackedMaxK = 1024;  // A and B read in place up to this k
constexpr std::int64_t kMinTileRows = 64;  // a large product's tiles on a team: rows at least
constexpr std::int64_t kTileChunks = 32;  // unpacked_tiles' chunks a thread (parallel_chunks_of)
constexpr std::int64_t kPackedWholeMaxElements = 1 << 15;  // a transposed B packed whole: 128 KiB of float32

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
      if constexpr (elementwise_ops::kWraps<T>) {  // int64 wraps around as PyTorch does (elementwise_ops.h)
        for (std::int64_t j = 0; j < n; ++j) {
          row[j] = elementwise_ops::wrapping_add(row[j], elementwise_ops::wrapping_mul(aip, brow[j * b.cs]));
        }
      } else if (b.cs == 1) {
        for (std::int64_t j = 0; j < n; ++j) row[j] += aip * brow[j];
      } else {
        for (std::int64_t j = 0; j < n; ++j) row[j] += aip * brow[j * b.cs];
      }
    }
  }
}

template <typename T>
gemm::MicroKernel<T> active_kernel() {
  if constexpr (std::is_same_v<T, float>) return gemm::micro_kernel_f32(active_isa());
  else return gemm::micro_kernel_f64(active_isa());
}

// Packing space kept between calls on one thread, so that a large product does not fault in
// fresh pages for its packed operands every time: one buffer of at most kKeptScratchBytes per
// thread that has run a GEMM (the calling thread; OpenMP's workers too when they run the
// products of a batch). Larger requests, and a second Scratch alive on the same thread, get a
// buffer of their own, freed with the Scratch.
constexpr std::size_t kKeptScratchBytes = std::size_t{32} << 20;

struct KeptScratch {
  Buffer<unsigned char> buffer{0};
  std::size_t bytes = 0;
  bool in_use = false;
};

KeptScratch& kept_scratch() {  // one per thread, for float and double products alike
  thread_local KeptScratch instance;
  return instance;
}

template <typename T>
class Scratch {
 public:
  explicit Scratch(std::int64_t count) {
    const std::size_t bytes = static_cast<std::size_t>(count) * sizeof(T);
    if (bytes > kKeptScratchBytes || kept_scratch().in_use) {
      own_.emplace(count);
      data_ = own_->data.get();
      return;
    }
    KeptScratch& mine = kept_scratch();
    if (bytes > mine.bytes) {
      mine.buffer = Buffer<unsigned char>(static_cast<std::int64_t>(bytes));
      mine.bytes = bytes;
    }
    mine.in_use = true;
    data_ = reinterpret_cast<T*>(mine.buffer.data.get());
  }
  ~Scratch() {
    if (!own_) kept_scratch().in_use = false;
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  T* get() const { return data_; }

 private:
  std::optional<Buffer<T>> own_;
  T* data_ = nullptr;
};

// Rows cut into micro-tiles of mr, the last one shorter; but when the remainder r is so short
// that mr + r rows fit in two short tiles (r <= 2 for 6-row tiles of 4-row short ones), the
// last mr + r rows are those two tiles: m = 128 by 6-row tiles ran 21 tiles and a 4-row one
// with 2 rows used (a 4-row tile costs 0.8 of a 6-row one here: 21.8 units for 21.3 of work),
// now 20 and two 4-row ones (21.6); m = 32: 5.8 -> 5.6.
struct RowTiles {
  std::int64_t rows, count, split_at;
  std::int64_t mr, short_mr;
  RowTiles(std::int64_t rows_in, std::int64_t mr_in, std::int64_t short_mr_in)
      : rows(rows_in), count((rows_in + mr_in - 1) / mr_in), split_at(count), mr(mr_in), short_mr(short_mr_in) {
    const std::int64_t r = rows % mr;
    if (r > 0 && rows > mr && r + mr <= 2 * short_mr) split_at = count - 2;
  }
  std::int64_t start(std::int64_t t) const { return t <= split_at ? t * mr : split_at * mr + short_mr; }
  std::int64_t size(std::int64_t t) const {
    return t < split_at ? std::min(mr, rows - t * mr) : t == split_at ? short_mr : rows - start(t);
  }
};

// The Goto/BLIS loops over C[rows, cols] = A[rows, :] * B[:, cols] for one tile: A packed into
// MC x kc blocks (a_packed), B taken from the panels packed beforehand (b_packed: for every
// KC-row block of B at pc, its column panels of kc x NR, block pc starting at pc * n_padded).
template <typename T>
void gemm_tile(std::int64_t row0, std::int64_t rows, std::int64_t col0, std::int64_t cols, std::int64_t k,
               Operand<T> a, const T* b_packed, std::int64_t n_padded, T* c, std::int64_t ldc,
               const gemm::MicroKernel<T>& kernel, std::int64_t MC, std::int64_t KC, std::int64_t NC,
               T* a_packed) {
  const int mr = kernel.mr, nr = kernel.nr;
  // The rows in blocks of equal size (whole micro-panels, at most MC): 1024 rows by MC = 126 were
  // 8 blocks and a 16-row one that swept all of B for little work; now 9 of 114. The panels are
  // shared out so that blocks differ by one panel at most: 171 panels of 6 rows in blocks of up
  // to 10 (float64, AVX2) were 17 blocks of 10 and one of 1, which swept all of B for 4 rows with
  // each panel of B fetched from L3 by its one tile; now 9 blocks of 10 and 9 of 9.
  const std::int64_t row_panels = (rows + mr - 1) / mr;
  const std::int64_t row_blocks = (row_panels + MC / mr - 1) / (MC / mr);
  const std::int64_t block_panels = row_panels / row_blocks, longer_blocks = row_panels % row_blocks;
  for (std::int64_t jc = col0; jc < col0 + cols; jc += NC) {
    const std::int64_t nc = std::min(NC, col0 + cols - jc);
    const std::int64_t b_panels = (nc + nr - 1) / nr;
    for (std::int64_t pc = 0; pc < k; pc += KC) {
      const std::int64_t kc = std::min(KC, k - pc);
      const T* b_block = b_packed + pc * n_padded + jc * kc;
      for (std::int64_t block = 0; block < row_blocks; ++block) {
        const std::int64_t ic = row0 + (block * block_panels + std::min(block, longer_blocks)) * mr;
        const std::int64_t mc = std::min((block_panels + (block < longer_blocks ? 1 : 0)) * mr, row0 + rows - ic);
        const RowTiles panels_of_a(mc, mr, kernel.short_mr);
        const std::int64_t a_panels = panels_of_a.count;
        for (std::int64_t ip = 0; ip < a_panels; ++ip) {
          kernel.pack_a(kc, a.data + (ic + panels_of_a.start(ip)) * a.rs + pc * a.cs, a.rs, a.cs,
                        panels_of_a.size(ip), a_packed + ip * mr * kc * kernel.a_lanes);
        }
        // While the micro-kernel sweeps panel jp of B down the block of A, its first calls
        // fetch panel jp + 1 into L2, kc / 4 lines each (see MicroKernelFn).
        const std::int64_t panel_bytes = kc * nr * std::int64_t{sizeof(T)}, chunk_bytes = kc / 4 * 64;
        for (std::int64_t jp = 0; jp < b_panels; ++jp) {
          const T* next_panel = jp + 1 < b_panels ? b_block + (jp + 1) * nr * kc : nullptr;
          for (std::int64_t ip = 0; ip < a_panels; ++ip) {
            const bool fetch = next_panel != nullptr && ip * chunk_bytes < panel_bytes;
            const std::int64_t tile_rows = panels_of_a.size(ip);
            (tile_rows <= kernel.short_mr ? kernel.run_short : kernel.run)(
                       kc, a_packed + ip * mr * kc * kernel.a_lanes, b_block + jp * nr * kc,
                       c + (ic + panels_of_a.start(ip)) * ldc + jc + jp * nr, ldc,
                       tile_rows, std::min<std::int64_t>(nr, nc - jp * nr),
                       pc > 0, fetch ? reinterpret_cast<const T*>(reinterpret_cast<const char*>(next_panel) + ip * chunk_bytes) : nullptr);
          }
        }
      }
    }
  }
}

// Cache blocking (BLIS's KC, MC, NC) from the cache sizes (CHAINRULE_CACHE_SIZES forces them).
// Two rules for kc, the micro-kernel's choice (b_panel_in_l1):
// - a kc x NR micro-panel of B in half of L1, where the micro-kernel reads it again for every
//   panel of A, and an MC x kc block of A in half of L2 (as BLIS blocks for AVX2: kc = 256,
//   mc = 252 on a Zen 3 core's 32 KiB / 512 KiB). The generic (SSE) kernels use it.
// - kc up to 1024 with the panel of B in an eighth of L2 and the block of A in a quarter: fewer
//   passes over C (n = 1024 on a 1 MiB-L2 Zen 5, AVX-512: 226 -> 241 GFLOP/s on one thread
//   against kc = 256). The AVX-512 and AVX2 kernels use it: AVX2 on a 48 KiB / 2 MiB Xeon, one
//   thread, f64 n = 1024 47 -> 50 GFLOP/s in matmul (CPU time, medians, load 3), f32 2048 88 ->
//   98 (an earlier measurement under load 10-15 had favoured the L1 rule).
// kc x NC of B takes at most a quarter of L3. k is split into equal blocks, never a sliver at the end.
struct Blocking {
  std::int64_t kc, mc, nc;
};

template <typename T>
Blocking blocking_for(std::int64_t k, const gemm::MicroKernel<T>& kernel) {
  const CacheSizes& caches = cache_sizes();
  const std::int64_t element_bytes = sizeof(T), mr = kernel.mr, nr = kernel.nr;
  const std::int64_t a_share = kernel.b_panel_in_l1 ? caches.l2 / 2 : caches.l2 / 4;
  // The L2 rule's kc also leaves room in the block of A for kMinBlockPanels micro-panels, each
  // sweep reusing a panel of B that many times: with a Zen 3's 512 KiB of L2, kc = 1024 left
  // float64 12 rows (2 panels) and n = 1024 ran at 46-48 GFLOP/s against 55 with 2 MiB here.
  constexpr std::int64_t kMinBlockPanels = 8;
  const std::int64_t kc_max = kernel.b_panel_in_l1
                                  ? std::clamp<std::int64_t>(caches.l1 / 2 / (nr * element_bytes), 64, 1024)
                                  : std::clamp<std::int64_t>(std::min(caches.l2 / 8 / (nr * element_bytes),
                                                                      a_share / (kMinBlockPanels * mr * element_bytes)),
                                                             128, 1024);
  const std::int64_t blocks = std::max<std::int64_t>(1, (k + kc_max - 1) / kc_max);
  const std::int64_t kc = std::max<std::int64_t>(1, (k + blocks - 1) / blocks);
  const std::int64_t mc = std::max<std::int64_t>(1, a_share / (kc * element_bytes * kernel.a_lanes) / mr) * mr;
  const std::int64_t nc = std::max<std::int64_t>(4, caches.l3 / 4 / (kc * element_bytes) / nr) * nr;
  return {kc, mc, nc};
}

// The whole GEMM: the team first packs all of B together (panels handed out one at a time),
// then takes tiles of C from a shared counter, each packing only its own rows of A. Between the
// two, a thread waits for the panels still being packed, not for the other threads: one still
// waking up (30-50 us here) holds back nothing, though one the OS descheduled in the middle of a
// panel (a busy neighbour) holds back the whole team until it finishes that panel.
template <typename T>
void gemm_blocked(std::int64_t m, std::int64_t n, std::int64_t k, Operand<T> a, Operand<T> b, T* c,
                  std::int64_t ldc, int threads) {
  const gemm::MicroKernel<T> kernel = active_kernel<T>();
  const int mr = kernel.mr, nr = kernel.nr;
  // Packing all of B costs a copy of it: past kMaxPackedBBytes, C is made in slabs of columns,
  // each a GEMM of its own (A is packed again for each slab).
  constexpr std::int64_t kMaxPackedBBytes = std::int64_t{64} << 20;
  const std::int64_t slab = std::max<std::int64_t>(nr, kMaxPackedBBytes / (k * std::int64_t{sizeof(T)}) / nr * nr);
  if (n > slab) {
    for (std::int64_t j0 = 0; j0 < n; j0 += slab) {
      const Operand<T> b_slab{b.data + j0 * b.cs, b.rs, b.cs};
      gemm_blocked(m, std::min(slab, n - j0), k, a, b_slab, c + j0, ldc, threads);
    }
    return;
  }
  const Blocking blocking = blocking_for(k, kernel);
  const std::int64_t KC = blocking.kc, MC = blocking.mc, NC = blocking.nc;
  const std::int64_t panels = (n + nr - 1) / nr, n_padded = panels * nr;
  const std::int64_t k_blocks = (k + KC - 1) / KC;
  // Tiles: whole micro-panels, along the rows unless there are too few of them (then along the
  // columns, each tile packing A again), of near-equal size (the last had been the short one).
  // Large products get two tiles a thread, of m / 64 rows at least: the rows of a tile share
  // each panel of B it brings in (the wide MLP's 256x1024 @ 1024x1024 on two threads, cut into
  // eight tiles of 32 rows, had read its 4 MiB of packed B eight times over), and gemm_tile cuts
  // a tile into row blocks of at most MC rows, so a tile of 128 rows ran as two blocks of about
  // half of MC (1024^3 float32 on AVX2: 126). With four tiles a thread, 1024^3 on two threads,
  // AVX2, ran at 190-194 GFLOP/s in float32 and 94-96 in float64; with two, 197-199 and 98-99.5
  // (a tile for each of a lone thread's row blocks, their count rounded up to the team's, gave
  // the same at 1024 and 85-93 against 91-94 at float64 2048^3). Fewer tiles leave less to
  // share out when one thread is slowed down.
  const bool large = m * n * k >= (std::int64_t{1} << 26);
  const std::int64_t row_panels = (m + mr - 1) / mr;
  const std::int64_t wanted =
      threads <= 1 ? 1 : large ? std::clamp<std::int64_t>(m / kMinTileRows, threads, 2 * threads) : threads;
  const bool split_rows = row_panels >= wanted || m >= n;
  const std::int64_t unit = split_rows ? mr : nr;
  const std::int64_t extent = split_rows ? m : n;
  const std::int64_t units = (extent + unit - 1) / unit;
  const std::int64_t tiles = std::min(wanted, units);
  const std::int64_t tile_units = units / tiles, longer_tiles = units % tiles;  // the first longer_tiles have one more
  const std::int64_t rows_max = split_rows ? std::min((tile_units + (longer_tiles > 0 ? 1 : 0)) * unit, m) : m;
  const int team = static_cast<int>(std::min<std::int64_t>(threads, std::max(tiles, panels * k_blocks)));
  // All packing space is taken before the parallel region: nothing in it throws.
  const std::int64_t b_size = (k * n_padded + 15) / 16 * 16;  // 64-byte aligned starts after it
  const std::int64_t a_size =
      (std::min(MC, (rows_max + mr - 1) / mr * mr) * std::min(KC, k) * kernel.a_lanes + 15) / 16 * 16;
  Scratch<T> scratch(b_size + a_size * team);
  T* const b_packed = scratch.get();
  // B is packed in jobs of a few panels side by side, so that each row of B is read 512 bytes at a
  // time rather than one panel's 64 (128x784 @ 784x256 on AVX2, one thread: pack_b 14% -> 11.5%
  // of the time in perf in float64, 9.3% -> 7.0% in float32).
  const std::int64_t group = std::max<std::int64_t>(1, 512 / (nr * std::int64_t{sizeof(T)}));
  const std::int64_t groups = (panels + group - 1) / group;
  std::atomic<std::int64_t> next_job{0}, next_tile{0}, jobs_packed{0};
  parallel_region(team, [&](int thread) {
    for (std::int64_t job = next_job++; job < groups * k_blocks; job = next_job++) {
      const std::int64_t pc = job / groups * KC, jp = job % groups * group;
      const std::int64_t kc = std::min(KC, k - pc);
      kernel.pack_b(kc, b.data + pc * b.rs + jp * nr * b.cs, b.rs, b.cs, std::min<std::int64_t>(group * nr, n - jp * nr),
                    b_packed + pc * n_padded + jp * nr * kc);
      jobs_packed.fetch_add(1, std::memory_order_release);
    }
    // Wait for the panels other threads are still packing; not for threads that have not
    // started (an OpenMP barrier would wait for a sleeping thread to wake: 30-50 us here).
    while (jobs_packed.load(std::memory_order_acquire) < groups * k_blocks) std::this_thread::yield();
    T* a_packed = b_packed + b_size + a_size * thread;
    for (std::int64_t t = next_tile++; t < tiles; t = next_tile++) {
      const std::int64_t start = (t * tile_units + std::min(t, longer_tiles)) * unit;
      const std::int64_t length = std::min((tile_units + (t < longer_tiles ? 1 : 0)) * unit, extent - start);
      if (split_rows) {
        gemm_tile(start, length, 0, n, k, a, b_packed, n_padded, c, ldc, kernel, MC, KC, NC, a_packed);
      } else {
        gemm_tile(0, m, start, length, k, a, b_packed, n_padded, c, ldc, kernel, MC, KC, NC, a_packed);
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
  Scratch<T> packed(std::min(KC, k) * nr);
  const std::int64_t blocks = (m + mr - 1) / mr;
  for (std::int64_t p0 = 0; p0 < k; p0 += KC) {
    const std::int64_t kc = std::min(KC, k - p0);
    kernel.pack_narrow_b(kc, b.data + p0 * b.rs, b.rs, b.cs, n, packed.get());
    parallel_for(std::min<std::int64_t>(threads, blocks), blocks, [&](std::int64_t block) {
      const std::int64_t i0 = block * mr;
      kernel.narrow(kc, a.data + i0 * a.rs + p0 * a.cs, a.rs, a.cs, packed.get(), nr, c + i0 * ldc, ldc,
                    std::min<std::int64_t>(mr, m - i0), n, p0 > 0);
    });
  }
}

// C = A B by MR x NR tiles, each made in one pass over k with A read in place, consecutive
// tiles walking down the rows (B's strip stays put, A is read again) or along them. B comes from
// `panels` when given (NR-wide, k x NR each, the last zero-padded), else from B in place, whose n
// is then a multiple of NR. Walking down the rows, B's strip goes to a contiguous panel (copied
// by the strip's first tile as it reads it): in place its rows lie b.rs apart, and with b.rs a multiple of 1 KiB (n = 128 float64,
// n = 256 float32) they fall into a few sets of L1 and evict each other, so every tile read the
// strip from L2 again (64x64 @ 64x128 float64 on AVX2: 46 GFLOP/s).
template <typename T>
void unpacked_tiles(std::int64_t m, std::int64_t n, std::int64_t k, Operand<T> a, Operand<T> b, const T* panels,
                    T* c, std::int64_t ldc, int threads, const gemm::MicroKernel<T>& kernel, bool down_rows) {
  const RowTiles row_tiles(m, kernel.mr, kernel.short_mr);
  const std::int64_t row_blocks = row_tiles.count, col_blocks = (n + kernel.nr - 1) / kernel.nr;
  const std::int64_t tiles = row_blocks * col_blocks;
  const bool copy_strip = panels == nullptr && down_rows && row_blocks > 1 && k <= kUnpackedMaxK;
  // Each thread's copy of the strip it works down and that strip's column, kept from chunk to
  // chunk: chunks of a few tiles (kTileChunks a thread) then cost no copy where a strip runs on
  // into the thread's next chunk, and leave the threads less apart at the end (a chunk of a whole
  // strip was 1/16 of a 256^3 product on two threads, one thread finishing 12 us after the other).
  // The first thread's are on the stack, as a lone thread's (no allocation for a small product).
  const int team = static_cast<int>(std::min<std::int64_t>(threads, tiles));
  struct alignas(64) StripColumn {
    std::int64_t col = -1;
  };
  alignas(64) T first_strip[kUnpackedMaxK * 128 / sizeof(T)];  // k x NR, NR * sizeof(T) <= 128
  StripColumn first_col;
  std::vector<StripColumn> other_cols(static_cast<std::size_t>(team - 1));
  const std::int64_t strip_size = (k * kernel.nr + 15) / 16 * 16;  // 64-byte aligned starts
  std::optional<Scratch<T>> other_strips;
  if (copy_strip && team > 1) other_strips.emplace(strip_size * (team - 1));
  parallel_chunks_of(team, tiles, 1, kTileChunks, [&](int thread, std::int64_t begin, std::int64_t end) {
    T* const strip = thread == 0 ? first_strip : copy_strip ? other_strips->get() + (thread - 1) * strip_size : nullptr;
    std::int64_t& strip_col = (thread == 0 ? first_col : other_cols[static_cast<std::size_t>(thread - 1)]).col;
    // The tile's row and column counted along, not divided out of its index for every tile (a
    // 64-bit division each: 20-40 cycles of a 64-deep tile's 400)
    std::int64_t row = down_rows ? begin % row_blocks : begin / col_blocks;
    std::int64_t col = down_rows ? begin / row_blocks : begin % col_blocks;
    const auto next = [&] {
      if (down_rows) {
        if (++row == row_blocks) row = 0, ++col;
      } else if (++col == col_blocks) {
        col = 0, ++row;
      }
    };
    for (std::int64_t tile = begin; tile < end; ++tile, next()) {
      const std::int64_t i0 = row_tiles.start(row), j0 = col * kernel.nr;
      const std::int64_t tile_rows = row_tiles.size(row), tile_cols = std::min<std::int64_t>(kernel.nr, n - j0);
      const T* b_tile = b.data + j0;
      std::int64_t ldb = b.rs;
      if (panels != nullptr) {
        b_tile = panels + col * kernel.nr * k;
        ldb = kernel.nr;
      } else if (copy_strip) {
        if (col != strip_col && row == 0) {
          // The strip's first tile reads B in place and copies the strip as it goes (a copy
          // first cost 5% of 128x784 @ 784x256 on AVX2: each 64-byte row waited for L2).
          kernel.unpacked_copy(k, a.data, a.rs, a.cs, b.data + j0, b.rs, c + j0, ldc, tile_rows, kernel.nr, false,
                               strip);
          strip_col = col;
          continue;
        }
        if (col != strip_col) {  // a chunk that starts inside a strip
          kernel.pack_b(k, b.data + j0, b.rs, 1, kernel.nr, strip);
          strip_col = col;
        }
        b_tile = strip;
        ldb = kernel.nr;
      }
      (tile_rows <= kernel.short_mr ? kernel.unpacked_short : kernel.unpacked)(
          k, a.data + i0 * a.rs, a.rs, a.cs, b_tile, ldb, c + i0 * ldc + j0, ldc, tile_rows, tile_cols, false);
    }
  });
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
      // A B with contiguous columns (x @ W.t(), a Linear layer's forward) small enough to be
      // packed whole takes the same path: its NR-wide panels are made first (a vector
      // transpose), and each tile reads its panel as it would a copied strip. (32x64 @ 64x128
      // float32 on AVX-512: 6.2 -> 4.3 us a call, as fast as a row-major B.)
      const bool b_packed_whole = b.cs != 1 && b.rs == 1 && k * n <= kPackedWholeMaxElements;
      // A kernel set that packs A already broadcast (a_lanes > 1: SSE, with no broadcast load)
      // runs its packed tiles faster than the in-place ones, which shuffle each element of A,
      // once C has rows and columns enough to spread the packing over: generic, one thread,
      // 256^3 float32 36.9 -> 38.6-40.5 GFLOP/s, float64 17.3 -> 19-20, 64x64 @ 64x128 32.4 ->
      // 33.8-34.8; but 8x784 @ 784x128 49 -> 56 us and 64x784 @ 784x16 46 -> 56-59 us.
      const bool packed_faster = kernel.a_lanes > 1 && m >= 64 && n >= 64;
      if ((b.cs == 1 || b_packed_whole) && n % kernel.nr == 0 && k <= kUnpackedMaxK && !packed_faster) {
        // Tiles straight from A and B, no packing, when one pass over k makes each tile of C
        // and the operand read again for every tile column (or row) fits in L2: the smaller
        // one, so consecutive tiles walk down the rows (B's strip stays put, A is read again)
        // or along them. From n = 192 to 512 this ran 3-6% faster than packing on one thread
        // (n = 256: 249-260 against 239-245 GFLOP/s); with 2 MiB of A read again (1024x512 @
        // 512x1024) it ran 6% slower.
        const std::int64_t a_bytes = m * k * std::int64_t{sizeof(T)}, b_bytes = k * n * std::int64_t{sizeof(T)};
        if (std::min(a_bytes, b_bytes) <= cache_sizes().l2) {
          std::optional<Scratch<T>> whole;
          if (b_packed_whole) {
            whole.emplace(k * n);
            kernel.pack_b(k, b.data, b.rs, b.cs, n, whole->get());
          }
          unpacked_tiles(m, n, k, a, b, whole ? whole->get() : nullptr, c, ldc, threads, kernel, a_bytes <= b_bytes);
          return;
        }
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

namespace gemm {
template <typename T>
void product(std::int64_t m, std::int64_t n, std::int64_t k, const T* a, std::int64_t a_rs, std::int64_t a_cs,
             const T* b, std::int64_t b_rs, std::int64_t b_cs, T* c, std::int64_t ldc, int threads) {
  gemm_any<T>(m, n, k, Operand<T>{a, a_rs, a_cs}, Operand<T>{b, b_rs, b_cs}, c, ldc, threads);
}
template void product<float>(std::int64_t, std::int64_t, std::int64_t, const float*, std::int64_t, std::int64_t,
                             const float*, std::int64_t, std::int64_t, float*, std::int64_t, int);
template void product<double>(std::int64_t, std::int64_t, std::int64_t, const double*, std::int64_t, std::int64_t,
                              const double*, std::int64_t, std::int64_t, double*, std::int64_t, int);

template <typename T>
PackedB<T>::PackedB(std::int64_t k, std::int64_t n, const T* b, std::int64_t rs, std::int64_t cs)
    : k_(k), n_(n), b_(b), rs_(rs), cs_(cs), kernel_(active_kernel<T>()), panels_(nullptr, &std::free) {
  const std::int64_t padded = (n + kernel_.nr - 1) / kernel_.nr * kernel_.nr;
  const std::size_t bytes = (static_cast<std::size_t>(k * padded) * sizeof(T) + 63) / 64 * 64;
  panels_.reset(static_cast<T*>(std::aligned_alloc(64, bytes == 0 ? 64 : bytes)));
  if (!panels_) throw std::bad_alloc();
  if (k > 0 && n > 0) kernel_.pack_b(k, b, rs, cs, n, panels_.get());
}

template <typename T>
void product(std::int64_t m, const T* a, std::int64_t a_rs, std::int64_t a_cs, const PackedB<T>& b, T* c,
             std::int64_t ldc, int threads) {
  const std::int64_t n = b.n(), k = b.k();
  if (m == 0 || n == 0) return;
  if (k == 0) {
    for (std::int64_t i = 0; i < m; ++i) std::fill(c + i * ldc, c + i * ldc + n, T(0));
    return;
  }
  // Tiles straight from the panels, A read in place, while the operand read again for every
  // tile column (or row) fits in L2, as in gemm_any; a larger product (a recurrent layer over
  // a batch of thousands) is matmul's own, which blocks for the caches.
  const std::int64_t a_bytes = m * k * std::int64_t{sizeof(T)}, b_bytes = k * n * std::int64_t{sizeof(T)};
  if (std::min(a_bytes, b_bytes) > cache_sizes().l2) {
    gemm_any<T>(m, n, k, Operand<T>{a, a_rs, a_cs}, Operand<T>{b.b(), b.rs(), b.cs()}, c, ldc, threads);
    return;
  }
  unpacked_tiles(m, n, k, Operand<T>{a, a_rs, a_cs}, Operand<T>{nullptr, 0, 0}, b.panels(), c, ldc, threads,
                 b.kernel(), a_bytes <= b_bytes);
}

template class PackedB<float>;
template class PackedB<double>;
template void product<float>(std::int64_t, const float*, std::int64_t, std::int64_t, const PackedB<float>&, float*,
                             std::int64_t, int);
template void product<double>(std::int64_t, const double*, std::int64_t, std::int64_t, const PackedB<double>&,
                              double*, std::int64_t, int);
}  // namespace gemm

namespace {

// A 2-D product of operands of the result's dtype into `out` (m, n): exactly what matmul does for
// them (one product, the GEMM's thread count), without the shape bookkeeping of batches.
void matmul_2d_into(const Tensor& a, const Tensor& b, const Tensor& out) {
  const std::int64_t m = a.shape()[0], k = a.shape()[1], n = b.shape()[1];
  dispatch_dtype(out.dtype(), [&](auto zero) {
    using T = decltype(zero);
    if constexpr (!std::is_same_v<T, bool>) {
      const int threads = threads_for(m * n * std::max<std::int64_t>(k, 1), kGemmGrain);
      gemm_any<T>(m, n, k, Operand<T>{a.data_as<T>(), a.strides()[0], a.strides()[1]},
                  Operand<T>{b.data_as<T>(), b.strides()[0], b.strides()[1]}, out.data_as<T>(), n, threads);
    }
  });
}

}  // namespace

Tensor matmul(const Tensor& a_in, const Tensor& b_in) {
  if (record::active()) {
    record::Into into;
    if (a_in.ndim() == 2 && b_in.ndim() == 2 && a_in.dtype() == b_in.dtype()) {
      into = [](const Ts& x, const Tensor& out) { matmul_2d_into(x[0], x[1], out); };
    }
    return record::result("matmul", {a_in, b_in}, [](const Ts& x) { return matmul(x[0], x[1]); }, std::move(into));
  }
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
