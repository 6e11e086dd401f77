// The LSTM recurrence over a whole sequence in one call, forward and backward through time.
// A training step of a small recurrent model is hundreds of tiny operations per layer (a
// 32 x 128 state, 64 steps); done one op at a time from Python, their per-call costs outweigh
// the arithmetic, so the time loop lives here: each step is one GEMM (h W_hh^T) and one fused
// pointwise pass (gate nonlinearities, cell and hidden update), with the float32 sigmoid and
// tanh vectorised (vector_math). The backward walks the steps in reverse with one GEMM each
// (the hidden state's gradient through W_hh), then forms W_hh's gradient in a single product
// over all steps.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "chainrule/config.h"
#include "chainrule/errors.h"
#include "chainrule/nn_ops.h"
#include "chainrule/record.h"
#include "gemm.h"
#include "vector_math.h"

namespace chainrule {

using Ts = record::Tensors;  // a recorded op's tensor operands
namespace {

constexpr std::int64_t kRecurrentGemmGrain = std::int64_t{1} << 22;  // multiply-adds per thread

template <typename T>
void sigmoid_array(const T* x, T* out, std::int64_t n) {
  if constexpr (std::is_same_v<T, float>) {
    vector_math::functions().sigmoid(x, out, n);
  } else {
    for (std::int64_t e = 0; e < n; ++e) out[e] = T(1) / (T(1) + std::exp(-x[e]));
  }
}

template <typename T>
void tanh_array(const T* x, T* out, std::int64_t n) {
  if constexpr (std::is_same_v<T, float>) {
    vector_math::functions().tanh(x, out, n);
  } else {
    for (std::int64_t e = 0; e < n; ++e) out[e] = std::tanh(x[e]);
  }
}

struct LstmSizes {
  std::int64_t length, batch, hidden;
};

LstmSizes check_lstm(const Tensor& projected, const Tensor& h0, const Tensor& c0, const Tensor& w_hh,
                     const Tensor* b_hh) {
  const char* op = "lstm_sequence";
  if (!is_floating(projected.dtype())) fail<TypeError>(op, ": expected float tensors, got dtype ", projected.dtype());
  for (const Tensor* t : {&h0, &c0, &w_hh, b_hh}) {
    if (t != nullptr && t->dtype() != projected.dtype()) {
      fail<TypeError>(op, ": expected tensors of one dtype, got ", projected.dtype(), " and ", t->dtype());
    }
  }
  if (projected.ndim() != 3 || h0.ndim() != 2 || w_hh.ndim() != 2) {
    fail<ValueError>(op, ": expected projected inputs (L, N, 4H), states (N, H) and W_hh (4H, H), got shapes ",
                     projected.shape(), ", ", h0.shape(), " and ", w_hh.shape());
  }
  const LstmSizes s{projected.shape()[0], projected.shape()[1], h0.shape()[1]};
  const Shape state{s.batch, s.hidden}, weight{4 * s.hidden, s.hidden};
  if (projected.shape()[2] != 4 * s.hidden || h0.shape() != state || c0.shape() != state || w_hh.shape() != weight ||
      (b_hh != nullptr && b_hh->shape() != Shape{4 * s.hidden})) {
    fail<ValueError>(op, ": shapes do not fit: projected ", projected.shape(), ", h0 ", h0.shape(), ", c0 ",
                     c0.shape(), ", W_hh ", w_hh.shape(), " (expected (L, N, 4H), (N, H), (N, H), (4H, H))");
  }
  return s;
}

// The step's hidden state coming in, in processing order: h0 first, then the previous output.
template <typename T>
const T* incoming_hidden(const T* output, const T* h0, std::int64_t t, const LstmSizes& s, bool reverse) {
  const std::int64_t previous = reverse ? t + 1 : t - 1;
  if (previous < 0 || previous >= s.length) return h0;
  return output + previous * s.batch * s.hidden;
}

}  // namespace

LstmSequence lstm_sequence(const Tensor& projected_in, const Tensor& h0_in, const Tensor& c0_in, const Tensor& w_hh_in,
                           const Tensor* b_hh_in, bool reverse) {
  if (record::active()) {
    const Ts out = record::run("lstm_sequence", {projected_in, h0_in, c0_in, w_hh_in, record::optional(b_hh_in)}, {},
                               [reverse](const Ts& x) {
                                 LstmSequence s = lstm_sequence(x[0], x[1], x[2], x[3], record::optional(x[4]), reverse);
                                 return Ts{s.output, s.gates, s.cells, s.tanh_cells};
                               });
    return LstmSequence{out[0], out[1], out[2], out[3]};
  }
  const LstmSizes s = check_lstm(projected_in, h0_in, c0_in, w_hh_in, b_hh_in);
  const DType dtype = projected_in.dtype();
  const Tensor projected = projected_in.contiguous(), h0 = h0_in.contiguous(), c0 = c0_in.contiguous();
  const Tensor w_t = w_hh_in.transpose(0, 1).contiguous();  // (H, 4H): the GEMM reads it in place
  const Tensor b_hh = b_hh_in != nullptr ? b_hh_in->contiguous() : Tensor();
  const std::int64_t N = s.batch, H = s.hidden, G = 4 * H;
  LstmSequence r{Tensor::empty({s.length + 1, N, H}, dtype), Tensor::empty({s.length, N, G}, dtype),
                 Tensor::empty({s.length, N, H}, dtype), Tensor::empty({s.length, N, H}, dtype)};
  dispatch_dtype(dtype, [&](auto zero) {
    using T = decltype(zero);
    if constexpr (std::is_floating_point_v<T>) {
      const int threads = threads_for(N * G * H, kRecurrentGemmGrain);
      T* out = r.output.data_as<T>();
      const T* bias = b_hh.defined() ? b_hh.data_as<T>() : nullptr;
      const T* cell_in = c0.data_as<T>();
      for (std::int64_t k = 0; k < s.length; ++k) {
        const std::int64_t t = reverse ? s.length - 1 - k : k;
        const T* h_in = incoming_hidden(out, h0.data_as<T>(), t, s, reverse);
        T* gates = r.gates.data_as<T>() + t * N * G;  // pre-activations first, then activations
        gemm::product<T>(N, G, H, h_in, H, 1, w_t.data_as<T>(), G, 1, gates, G, threads);
        const T* x = projected.data_as<T>() + t * N * G;
        T* cell = r.cells.data_as<T>() + t * N * H;
        T* tanh_cell = r.tanh_cells.data_as<T>() + t * N * H;
        T* h = out + t * N * H;
        for (std::int64_t n = 0; n < N; ++n) {
          T* row = gates + n * G;
          const T* x_row = x + n * G;
          if (bias != nullptr) {
            for (std::int64_t j = 0; j < G; ++j) row[j] += x_row[j] + bias[j];
          } else {
            for (std::int64_t j = 0; j < G; ++j) row[j] += x_row[j];
          }
          sigmoid_array(row, row, 2 * H);                 // i, f
          tanh_array(row + 2 * H, row + 2 * H, H);        // g
          sigmoid_array(row + 3 * H, row + 3 * H, H);     // o
          const T* c_prev = cell_in + n * H;
          T* c = cell + n * H;
          for (std::int64_t j = 0; j < H; ++j) c[j] = row[H + j] * c_prev[j] + row[j] * row[2 * H + j];
        }
        tanh_array(cell, tanh_cell, N * H);
        for (std::int64_t n = 0; n < N; ++n) {
          const T* o = gates + n * G + 3 * H;
          for (std::int64_t j = 0; j < H; ++j) h[n * H + j] = o[j] * tanh_cell[n * H + j];
        }
        cell_in = cell;
      }
      // the last cell state after the sequence's hidden states
      std::memcpy(out + s.length * N * H, cell_in, static_cast<std::size_t>(N * H) * sizeof(T));
    }
  });
  return r;
}

LstmSequenceGrads lstm_sequence_backward(const Tensor& grad_in, const LstmSequence& saved, const Tensor& h0_in,
                                         const Tensor& c0_in, const Tensor& w_hh_in, bool has_bias, bool reverse) {
  if (record::active()) {
    const Ts out = record::run(
        "lstm_sequence_backward",
        {grad_in, saved.output, saved.gates, saved.cells, saved.tanh_cells, h0_in, c0_in, w_hh_in}, {},
        [has_bias, reverse](const Ts& x) {
          const LstmSequenceGrads g = lstm_sequence_backward(x[0], LstmSequence{x[1], x[2], x[3], x[4]}, x[5], x[6],
                                                             x[7], has_bias, reverse);
          return Ts{g.grad_projected, g.grad_h0, g.grad_c0, g.grad_w_hh, g.grad_b_hh};
        });
    return LstmSequenceGrads{out[0], out[1], out[2], out[3], out[4]};
  }
  const LstmSizes s{saved.gates.shape()[0], saved.gates.shape()[1], saved.cells.shape()[2]};
  const std::int64_t N = s.batch, H = s.hidden, G = 4 * H;
  if (grad_in.shape() != saved.output.shape() || grad_in.dtype() != saved.output.dtype()) {
    fail<ValueError>("lstm_sequence_backward: gradient of shape ", grad_in.shape(), " for an output of shape ",
                     saved.output.shape());
  }
  const DType dtype = grad_in.dtype();
  const Tensor grad = grad_in.contiguous(), h0 = h0_in.contiguous(), c0 = c0_in.contiguous();
  const Tensor w_hh = w_hh_in.contiguous();
  LstmSequenceGrads r{Tensor::empty({s.length, N, G}, dtype), Tensor::empty({N, H}, dtype),
                      Tensor::empty({N, H}, dtype), Tensor::empty({G, H}, dtype),
                      has_bias ? Tensor::empty({G}, dtype) : Tensor()};
  dispatch_dtype(dtype, [&](auto zero) {
    using T = decltype(zero);
    if constexpr (std::is_floating_point_v<T>) {
      const int threads = threads_for(N * G * H, kRecurrentGemmGrain);
      T* grad_h = r.grad_h0.data_as<T>();  // the hidden state's gradient carried back: ends as h0's
      T* grad_c = r.grad_c0.data_as<T>();  // likewise the cell state's
      std::fill(grad_h, grad_h + N * H, T(0));
      std::memcpy(grad_c, grad.data_as<T>() + s.length * N * H, static_cast<std::size_t>(N * H) * sizeof(T));
      const T* out = saved.output.data_as<T>();
      for (std::int64_t k = s.length - 1; k >= 0; --k) {
        const std::int64_t t = reverse ? s.length - 1 - k : k;
        const std::int64_t previous = reverse ? t + 1 : t - 1;
        const T* c_prev = previous < 0 || previous >= s.length ? c0.data_as<T>()
                                                               : saved.cells.data_as<T>() + previous * N * H;
        const T* act = saved.gates.data_as<T>() + t * N * G;
        const T* tanh_cell = saved.tanh_cells.data_as<T>() + t * N * H;
        const T* g_out = grad.data_as<T>() + t * N * H;
        T* d_gates = r.grad_projected.data_as<T>() + t * N * G;
        for (std::int64_t n = 0; n < N; ++n) {
          const T* a = act + n * G;
          T* d = d_gates + n * G;
          for (std::int64_t j = 0; j < H; ++j) {
            const std::int64_t e = n * H + j;
            const T i = a[j], f = a[H + j], g = a[2 * H + j], o = a[3 * H + j], tc = tanh_cell[e];
            const T gh = g_out[e] + grad_h[e];
            // c_t reaches the loss directly and through h_t = o tanh(c_t)
            const T gc = grad_c[e] + gh * o * (T(1) - tc * tc);
            d[j] = gc * g * i * (T(1) - i);
            d[H + j] = gc * c_prev[e] * f * (T(1) - f);
            d[2 * H + j] = gc * i * (T(1) - g * g);
            d[3 * H + j] = gh * tc * o * (T(1) - o);
            grad_c[e] = gc * f;
          }
        }
        // the incoming hidden state's gradient: d_gates (N x 4H) @ W_hh (4H x H)
        gemm::product<T>(N, H, G, d_gates, G, 1, w_hh.data_as<T>(), H, 1, grad_h, H, threads);
      }
      // W_hh's gradient over all steps at once: d_gates^T (4H x L N) @ incoming hidden states (L N x H)
      std::vector<T> incoming(static_cast<std::size_t>(s.length * N * H));
      for (std::int64_t t = 0; t < s.length; ++t) {
        std::memcpy(incoming.data() + t * N * H, incoming_hidden(out, h0.data_as<T>(), t, s, reverse),
                    static_cast<std::size_t>(N * H) * sizeof(T));
      }
      const T* all_d = r.grad_projected.data_as<T>();
      gemm::product<T>(G, H, s.length * N, all_d, 1, G, incoming.data(), H, 1, r.grad_w_hh.data_as<T>(), H,
                       threads_for(G * H * s.length * N, kRecurrentGemmGrain));
      if (has_bias) {
        T* gb = r.grad_b_hh.data_as<T>();
        std::fill(gb, gb + G, T(0));
        for (std::int64_t row = 0; row < s.length * N; ++row) {
          for (std::int64_t j = 0; j < G; ++j) gb[j] += all_d[row * G + j];
        }
      }
    }
  });
  return r;
}

}  // namespace chainrule
