// C++ microbenchmarks of the core (Google Benchmark). Build with -DCHAINRULE_BUILD_BENCHMARKS=ON,
// then run build/<dir>/chainrule_benchmarks. GEMM and elementwise use the ISA chosen at run
// time (CHAINRULE_ISA=generic|avx2|avx512 forces one); the micro-kernel benchmarks run every
// variant the CPU supports, and report their speed as a fraction of the FMA peak measured
// here (2 FMA pipes x 16 float lanes x 2 flops per cycle on an AVX-512 core).
#include <benchmark/benchmark.h>

#include <chrono>
#include <string>
#include <vector>

#include "chainrule/config.h"
#include "chainrule/ops.h"
#include "chainrule/random.h"
#include "gemm.h"

extern "C" float chainrule_fma_peak_avx512(std::int64_t iterations);
extern "C" float chainrule_fma_peak_avx2(std::int64_t iterations);

namespace cr = chainrule;

namespace {

// Peak single-core GFLOP/s of the widest FMA the CPU runs, measured once.
double fma_peak_gflops(cr::Isa isa) {
  if (isa == cr::Isa::Generic) return 0.0;
  const bool wide = isa == cr::Isa::Avx512;
  const double flops_per_iteration = 12.0 * (wide ? 16 : 8) * 2;
  const std::int64_t iterations = 20'000'000;
  double best = 0.0;
  for (int repeat = 0; repeat < 3; ++repeat) {
    const auto start = std::chrono::steady_clock::now();
    const float sink = wide ? chainrule_fma_peak_avx512(iterations) : chainrule_fma_peak_avx2(iterations);
    benchmark::DoNotOptimize(sink);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    best = std::max(best, flops_per_iteration * static_cast<double>(iterations) / seconds / 1e9);
  }
  return best;
}

void BM_FmaPeak(benchmark::State& state, cr::Isa isa) {
  const bool wide = isa == cr::Isa::Avx512;
  const std::int64_t iterations = 1'000'000;
  for (auto _ : state) {
    benchmark::DoNotOptimize(wide ? chainrule_fma_peak_avx512(iterations) : chainrule_fma_peak_avx2(iterations));
  }
  state.counters["GFLOP/s"] = benchmark::Counter(12.0 * (wide ? 16 : 8) * 2 * iterations * state.iterations() / 1e9,
                                                 benchmark::Counter::kIsRate);
}

// The micro-kernel alone on packed panels that sit in L1: its share of the FMA peak.
void BM_MicroKernel(benchmark::State& state, cr::Isa isa) {
  const cr::gemm::MicroKernel<float> kernel = cr::gemm::micro_kernel_f32(isa);
  const std::int64_t kc = 256;
  std::vector<float> a(kc * kernel.mr * kernel.a_lanes, 0.5f), b(kc * kernel.nr, 0.25f), c(kernel.mr * kernel.nr, 0.0f);
  for (auto _ : state) {
    kernel.run(kc, a.data(), b.data(), c.data(), kernel.nr, kernel.mr, kernel.nr, true, nullptr);
    benchmark::ClobberMemory();
  }
  const double flops = 2.0 * kc * kernel.mr * kernel.nr * static_cast<double>(state.iterations());
  state.counters["GFLOP/s"] = benchmark::Counter(flops / 1e9, benchmark::Counter::kIsRate);
  state.SetLabel(std::to_string(kernel.mr) + "x" + std::to_string(kernel.nr));
  static const double peak = fma_peak_gflops(isa);
  if (peak > 0) state.counters["peak GFLOP/s"] = peak;
}

void BM_Gemm(benchmark::State& state) {
  const std::int64_t m = state.range(0), k = state.range(1), n = state.range(2);
  const bool transposed = state.range(3) != 0;
  cr::manual_seed(0);
  const cr::Tensor a = transposed ? cr::rand({k, m}, cr::DType::Float32).transpose(0, 1)
                                  : cr::rand({m, k}, cr::DType::Float32);
  const cr::Tensor b = cr::rand({k, n}, cr::DType::Float32);
  for (auto _ : state) benchmark::DoNotOptimize(cr::matmul(a, b));
  state.counters["GFLOP/s"] =
      benchmark::Counter(2.0 * m * n * k * static_cast<double>(state.iterations()) / 1e9, benchmark::Counter::kIsRate);
  state.SetLabel(std::string(cr::isa_name(cr::active_isa())) + (transposed ? ", a transposed" : ""));
}

void BM_Elementwise(benchmark::State& state, cr::UnaryOp unary, bool binary_add) {
  const std::int64_t n = state.range(0);
  const cr::Tensor x = cr::rand({n}, cr::DType::Float32);
  for (auto _ : state) {
    if (binary_add) benchmark::DoNotOptimize(cr::binary(cr::BinaryOp::Add, x, x));
    else benchmark::DoNotOptimize(cr::unary(unary, x));
  }
  state.SetBytesProcessed(state.iterations() * n * 4 * (binary_add ? 3 : 2));
}

void BM_SumAll(benchmark::State& state) {
  const std::int64_t n = state.range(0);
  const cr::Tensor x = cr::rand({n, n}, cr::DType::Float32);
  for (auto _ : state) benchmark::DoNotOptimize(cr::reduce(cr::ReduceOp::Sum, x, {}, false));
  state.SetBytesProcessed(state.iterations() * n * n * 4);
}

}  // namespace

int main(int argc, char** argv) {
  for (const cr::Isa isa : {cr::Isa::Generic, cr::Isa::Avx2, cr::Isa::Avx512}) {
    if (!cr::cpu_supports(isa)) continue;
    const std::string name = cr::isa_name(isa);
    if (isa != cr::Isa::Generic) benchmark::RegisterBenchmark(("fma_peak/" + name).c_str(), BM_FmaPeak, isa);
    benchmark::RegisterBenchmark(("micro_kernel_f32/" + name).c_str(), BM_MicroKernel, isa);
  }
  auto* gemm = benchmark::RegisterBenchmark("gemm_f32", BM_Gemm);
  gemm->ArgNames({"m", "k", "n", "aT"});
  for (const std::int64_t size : {64, 128, 256, 512, 1024}) gemm->Args({size, size, size, 0});
  gemm->Args({512, 512, 512, 1})->Args({128, 784, 256, 0})->Args({128, 256, 10, 0})->Args({64, 64, 128, 0});
  gemm->UseRealTime();
  for (const std::int64_t n : {1000, 1000000, 16000000}) {
    benchmark::RegisterBenchmark("add_f32", BM_Elementwise, cr::UnaryOp::Neg, true)->Arg(n)->UseRealTime();
    benchmark::RegisterBenchmark("exp_f32", BM_Elementwise, cr::UnaryOp::Exp, false)->Arg(n)->UseRealTime();
    benchmark::RegisterBenchmark("sigmoid_f32", BM_Elementwise, cr::UnaryOp::Sigmoid, false)->Arg(n)->UseRealTime();
  }
  benchmark::RegisterBenchmark("sum_all_f32", BM_SumAll)->Arg(4096)->UseRealTime();
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
