// One LSTM layer and direction over a whole sequence in one call, forward and backward through
// time. A training step of a small recurrent model is hundreds of tiny operations per layer (a
// 32 x 128 state, 64 steps); done one op at a time from Python, their per-call costs outweigh
// the arithmetic, so the time loop lives here.
//
// The input projection and the biases join the recurrent product: each step's input x_t sits
// beside the hidden state h_{t-1} it reads (and a 1 when there are biases), in one row
// [x_t, h_{t-1}, 1] of `inputs`, so a step is one GEMM against [W_ih, W_hh, b_ih + b_hh]^T
// (k = I + H + 1) and one fused pointwise pass (gate nonlinearities, cell and hidden update;
// float32 sigmoid and tanh vectorised by vector_math). Backward walks the steps in reverse with
// one GEMM each, d_gates @ [W_ih, W_hh], which gives the gradients of x_t and h_{t-1} together,
// then forms all the weights' gradients in one product over all steps, d_gates^T @ inputs (the
// column of ones giving the bias's). A separate input projection (one GEMM of k = I over all
// steps, and two in its backward) cost more than the columns it adds to each step's GEMM: the
// char-RNN's k = 32 products ran at 74-118 GFLOP/s against about 200 for the steps'.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <initializer_list>
#include <sstream>
#include <vector>

#include "chainrule/config.h"
#include "chainrule/errors.h"
#include "chainrule/nn_ops.h"
#include "chainrule/ops.h"
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

// Scratch space kept between calls on one thread, up to kKeptBytes per element type: the
// backward's gate gradients (4 MB in the char-RNN) would otherwise fault in fresh pages every
// training step. Larger requests get a buffer of their own, freed with the Scratch.
constexpr std::size_t kKeptBytes = std::size_t{32} << 20;

template <typename T>
class Scratch {
 public:
  explicit Scratch(std::int64_t count) {
    const auto n = static_cast<std::size_t>(count);
    std::vector<T>& kept = kept_buffer();
    if (n * sizeof(T) > kKeptBytes || in_use()) {
      own_.resize(n);
      data_ = own_.data();
      return;
    }
    if (kept.size() < n) kept.resize(n);
    in_use() = kept_ = true;
    data_ = kept.data();
  }
  ~Scratch() {
    if (kept_) in_use() = false;
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  T* get() const { return data_; }

 private:
  static std::vector<T>& kept_buffer() {
    thread_local std::vector<T> buffer;
    return buffer;
  }
  static bool& in_use() {
    thread_local bool flag = false;
    return flag;
  }
  std::vector<T> own_;
  T* data_ = nullptr;
  bool kept_ = false;
};

// The product (or sum) of sizes, or ValueError when it does not fit in int64: empty tensors can
// have any sizes, and the buffers and products an op makes combine them.
std::int64_t checked_product(std::initializer_list<std::int64_t> sizes, const char* op) {
  std::int64_t product = 1;
  for (const std::int64_t size : sizes) {
    if (size < 0 || __builtin_mul_overflow(product, size, &product)) {
      fail<ValueError>(op, ": sizes too large (their product does not fit in int64)");
    }
  }
  return product;
}

std::int64_t checked_sum(std::initializer_list<std::int64_t> sizes, const char* op) {
  std::int64_t sum = 0;
  for (const std::int64_t size : sizes) {
    if (size < 0 || __builtin_add_overflow(sum, size, &sum)) fail<ValueError>(op, ": sizes too large");
  }
  return sum;
}

// Every buffer and product of one LSTM layer's forward or backward fits in int64 (each is at most
// one of these products).
void check_lstm_sizes(std::int64_t L, std::int64_t N, std::int64_t I, std::int64_t H, const char* op) {
  const std::int64_t G = checked_product({H, 4}, op), K = checked_sum({I, H, 2}, op), steps = checked_sum({L, 1}, op);
  const std::int64_t rows = checked_product({steps, N}, op);
  checked_product({checked_sum({rows, K, N}, op), checked_sum({G, K}, op), K}, op);  // L N K, L N 4H, 4H K L N, ...
}

struct LstmSizes {
  std::int64_t length, batch, input, hidden;
};

LstmSizes check_lstm(const Tensor& input, const Tensor& h0, const Tensor& c0, const Tensor& w_ih, const Tensor& w_hh,
                     const Tensor* b_ih, const Tensor* b_hh) {
  const char* op = "lstm_sequence";
  if (!is_floating(input.dtype())) fail<TypeError>(op, ": expected float tensors, got dtype ", input.dtype());
  for (const Tensor* t : {&h0, &c0, &w_ih, &w_hh, b_ih, b_hh}) {
    if (t != nullptr && t->dtype() != input.dtype()) {
      fail<TypeError>(op, ": expected tensors of one dtype, got ", input.dtype(), " and ", t->dtype());
    }
  }
  if (input.ndim() != 3 || h0.ndim() != 2 || c0.ndim() != 2 || w_ih.ndim() != 2 || w_hh.ndim() != 2) {
    fail<ValueError>(op, ": expected an input (L, N, I), states (N, H), W_ih (4H, I) and W_hh (4H, H), got shapes ",
                     input.shape(), ", ", h0.shape(), ", ", c0.shape(), ", ", w_ih.shape(), " and ", w_hh.shape());
  }
  const LstmSizes s{input.shape()[0], input.shape()[1], input.shape()[2], h0.shape()[1]};
  check_lstm_sizes(s.length, s.batch, s.input, s.hidden, op);
  const Shape state{s.batch, s.hidden}, bias{4 * s.hidden};
  if (h0.shape() != state || c0.shape() != state || w_ih.shape() != Shape{4 * s.hidden, s.input} ||
      w_hh.shape() != Shape{4 * s.hidden, s.hidden} || (b_ih != nullptr && b_ih->shape() != bias) ||
      (b_hh != nullptr && b_hh->shape() != bias)) {
    fail<ValueError>(op, ": shapes do not fit: input ", input.shape(), ", h0 ", h0.shape(), ", c0 ", c0.shape(),
                     ", W_ih ", w_ih.shape(), ", W_hh ", w_hh.shape(),
                     " (expected (L, N, I), (N, H), (N, H), (4H, I), (4H, H))");
  }
  return s;
}

// Step k in processing order runs time step t = time_of(k): from the last one when reversed.
std::int64_t time_of(std::int64_t k, std::int64_t length, bool reverse) { return reverse ? length - 1 - k : k; }

// One sample's pointwise update in a step: `gates` comes in as [x_t, h_{t-1}, 1] @ [W_ih, W_hh, b]^T
// and leaves as the activations i, f, g, o; c = f c_prev + i g.
template <typename T>
void lstm_cell_forward(T* __restrict gates, const T* __restrict c_prev, T* __restrict c, std::int64_t H) {
  sigmoid_array(gates, gates, 2 * H);              // i, f
  tanh_array(gates + 2 * H, gates + 2 * H, H);     // g
  sigmoid_array(gates + 3 * H, gates + 3 * H, H);  // o
  const T* i = gates;
  const T* f = gates + H;
  const T* g = gates + 2 * H;
  for (std::int64_t j = 0; j < H; ++j) c[j] = f[j] * c_prev[j] + i[j] * g[j];
}

// One sample's gradients in a step, from the gradient reaching h_t (from the output and from the
// next step) and c_t (grad_c, carried in and out): the gate pre-activations' gradients into d.
template <typename T>
void lstm_cell_backward(const T* __restrict gates, const T* __restrict tanh_c, const T* __restrict c_prev,
                        const T* __restrict grad_output, const T* __restrict grad_h_carried,
                        T* __restrict grad_c, T* __restrict d, std::int64_t H) {
  const T* i = gates;
  const T* f = gates + H;
  const T* g = gates + 2 * H;
  const T* o = gates + 3 * H;
  for (std::int64_t j = 0; j < H; ++j) {
    const T grad_h = grad_output[j] + grad_h_carried[j];
    // c_t reaches the loss directly (the next step) and through h_t = o tanh(c_t)
    const T gc = grad_c[j] + grad_h * o[j] * (T(1) - tanh_c[j] * tanh_c[j]);
    d[j] = gc * g[j] * i[j] * (T(1) - i[j]);                  // sigmoid' = s (1 - s)
    d[H + j] = gc * c_prev[j] * f[j] * (T(1) - f[j]);
    d[2 * H + j] = gc * i[j] * (T(1) - g[j] * g[j]);          // tanh' = 1 - t^2
    d[3 * H + j] = grad_h * tanh_c[j] * o[j] * (T(1) - o[j]);
    grad_c[j] = gc * f[j];
  }
}

// One sample's GRU step: `gates` comes in as the step's input projection x_t W_ih^T + b_ih
// (r, z, n blocks) plus h_{t-1} W_hh^T + b_hh in its r and z blocks (`hidden`, all three) and
// leaves as r, z, n; h' = n + z (h - n).
template <typename T>
void gru_cell_forward(const T* __restrict projected, const T* __restrict hidden, const T* __restrict h,
                      T* __restrict gates, T* __restrict h_new, std::int64_t H) {
  for (std::int64_t j = 0; j < 2 * H; ++j) gates[j] = projected[j] + hidden[j];
  sigmoid_array(gates, gates, 2 * H);  // r, z
  const T* r = gates;
  for (std::int64_t j = 0; j < H; ++j) gates[2 * H + j] = projected[2 * H + j] + r[j] * hidden[2 * H + j];
  tanh_array(gates + 2 * H, gates + 2 * H, H);  // n = tanh(x_n + r (h W_hn^T + b_hn))
  const T* z = gates + H;
  const T* n = gates + 2 * H;
  for (std::int64_t j = 0; j < H; ++j) h_new[j] = n[j] + z[j] * (h[j] - n[j]);
}

// One sample's gradients in a GRU step from the gradient reaching h' (grad_h): those of the
// input projection (into d_projected: r, z, n blocks), of h_{t-1} W_hh^T + b_hh (d_hidden: the n
// block scaled by r) and of h along its direct path h' = ... + z h (d_h_direct).
template <typename T>
void gru_cell_backward(const T* __restrict gates, const T* __restrict hidden, const T* __restrict h,
                       const T* __restrict grad_h, T* __restrict d_projected, T* __restrict d_hidden,
                       T* __restrict d_h_direct, std::int64_t H) {
  const T* r = gates;
  const T* z = gates + H;
  const T* n = gates + 2 * H;
  for (std::int64_t j = 0; j < H; ++j) {
    const T gn = grad_h[j] * (T(1) - z[j]) * (T(1) - n[j] * n[j]);       // tanh' = 1 - t^2
    const T gr = gn * hidden[2 * H + j] * r[j] * (T(1) - r[j]);          // sigmoid' = s (1 - s)
    const T gz = grad_h[j] * (h[j] - n[j]) * z[j] * (T(1) - z[j]);
    d_projected[j] = d_hidden[j] = gr;
    d_projected[H + j] = d_hidden[H + j] = gz;
    d_projected[2 * H + j] = gn;
    d_hidden[2 * H + j] = gn * r[j];
    d_h_direct[j] = grad_h[j] * z[j];
  }
}

// The checks of gru_sequence's (gates = 3) and rnn_sequence's (gates = 1) operands; returns (L, N, H).
LstmSizes check_recurrent(const Tensor& projected, const Tensor& h0, const Tensor& w_hh, const Tensor* b_hh,
                          std::int64_t gates, const char* op) {
  if (!is_floating(projected.dtype())) fail<TypeError>(op, ": expected float tensors, got dtype ", projected.dtype());
  for (const Tensor* t : {&h0, &w_hh, b_hh}) {
    if (t != nullptr && t->dtype() != projected.dtype()) {
      fail<TypeError>(op, ": expected tensors of one dtype, got ", projected.dtype(), " and ", t->dtype());
    }
  }
  const char* g = gates == 1 ? "H" : "3H";
  if (projected.ndim() != 3 || h0.ndim() != 2 || w_hh.ndim() != 2 || (b_hh != nullptr && b_hh->ndim() != 1)) {
    fail<ValueError>(op, ": expected a projected input (L, N, ", g, "), h0 (N, H), W_hh (", g, ", H) and b_hh (", g,
                     ",), got shapes ", projected.shape(), ", ", h0.shape(), ", ", w_hh.shape(),
                     b_hh != nullptr ? " and " : "", b_hh != nullptr ? b_hh->shape() : Shape{});
  }
  const LstmSizes s{projected.shape()[0], projected.shape()[1], 0, h0.shape()[1]};
  check_lstm_sizes(s.length, s.batch, 0, s.hidden, op);  // its products bound these (at most 3H < 4H)
  const std::int64_t G = gates * s.hidden;
  if (projected.shape()[1] != h0.shape()[0] || projected.shape()[2] != G || w_hh.shape() != Shape{G, s.hidden} ||
      (b_hh != nullptr && b_hh->shape()[0] != G)) {
    fail<ValueError>(op, ": shapes do not fit: projected input ", projected.shape(), ", h0 ", h0.shape(), ", W_hh ",
                     w_hh.shape(), b_hh != nullptr ? ", b_hh " : "", b_hh != nullptr ? b_hh->shape() : Shape{},
                     " (expected (L, N, ", g, "), (N, H), (", g, ", H) and (", g, ",))");
  }
  return s;
}

// The shared checks of gru_sequence_backward's and rnn_sequence_backward's operands: the
// gradient of the output and the output (L, N, H), h0 (N, H) and W_hh (G H, H), of one float
// dtype; `more` are saved tensors of shape (L, N, G H). Returns (L, N, H).
LstmSizes check_recurrent_backward(const Tensor& grad, const Tensor& output, const Tensor& h0, const Tensor& w_hh,
                                   std::initializer_list<const Tensor*> more, std::int64_t gates, const char* op,
                                   const char* layer) {
  const DType dtype = grad.dtype();
  bool fits = is_floating(dtype) && grad.ndim() == 3 && h0.ndim() == 2 && w_hh.ndim() == 2;
  if (fits) {
    const std::int64_t L = grad.shape()[0], N = grad.shape()[1], H = grad.shape()[2];
    check_lstm_sizes(L, N, 0, H, op);  // before G H is formed
    fits = output.shape() == Shape{L, N, H} && h0.shape() == Shape{N, H} && w_hh.shape() == Shape{gates * H, H};
    for (const Tensor* t : more) fits = fits && t->shape() == Shape{L, N, gates * H};
    for (const Tensor* t : {&output, &h0, &w_hh}) fits = fits && t->dtype() == dtype;
    for (const Tensor* t : more) fits = fits && t->dtype() == dtype;
  }
  if (!fits) {
    std::ostringstream saved;
    for (const Tensor* t : more) {
      saved << ", ";
      write_part(saved, t->shape());
    }
    fail<ValueError>(op, ": the gradient ", grad.shape(), " (", dtype, "), saved output ", output.shape(), " (",
                     output.dtype(), ")", saved.str(), ", h0 ", h0.shape(), " and W_hh ", w_hh.shape(), " (",
                     w_hh.dtype(), ") do not fit one ", layer, " layer");
  }
  return LstmSizes{grad.shape()[0], grad.shape()[1], 0, grad.shape()[2]};
}

// The gradients' tensors of a GRU (gates = 3) or plain RNN (gates = 1) layer of sizes s, zeros
// when there are no steps, samples or units (nothing then depends on anything).
RecurrentGrads recurrent_grads(const LstmSizes& s, std::int64_t gates, DType dtype, bool has_bias) {
  const std::int64_t L = s.length, N = s.batch, H = s.hidden, G = gates * H;
  RecurrentGrads r{Tensor::empty({L, N, G}, dtype), Tensor::empty({N, H}, dtype), Tensor::empty({G, H}, dtype),
                   has_bias ? Tensor::empty({G}, dtype) : Tensor()};
  if (L == 0 || N == 0 || H == 0) {
    for (const Tensor& t : {r.grad_projected, r.grad_h0, r.grad_w_hh, r.grad_b_hh}) {
      if (t.defined()) fill_(t, Scalar::from_double(0.0));
    }
  }
  return r;
}

// Each step's incoming hidden state h_{t-1}, in time order (L x N x H): h0 before the first step
// in processing order, then the outputs.
template <typename T>
void previous_states(const T* output, const T* h0, std::int64_t L, std::int64_t N, std::int64_t H, bool reverse,
                     T* h_prev_all) {
  for (std::int64_t k = 0; k < L; ++k) {
    const T* h_prev = k == 0 ? h0 : output + time_of(k - 1, L, reverse) * N * H;
    std::memcpy(h_prev_all + time_of(k, L, reverse) * N * H, h_prev, static_cast<std::size_t>(N * H) * sizeof(T));
  }
}

// h_{t-1} W_hh^T + b_hh for a step: N rows of G from the packed W_hh^T, the bias added.
template <typename T>
void recurrent_product(std::int64_t N, const T* h, const gemm::PackedB<T>& weights, const Tensor* b_hh, T* out,
                       int threads) {
  const std::int64_t G = weights.n();
  gemm::product<T>(N, h, weights.k(), 1, weights, out, G, threads);
  if (b_hh == nullptr) return;
  const T* b = b_hh->data_as<T>();
  const std::int64_t bs = b_hh->strides()[0];
  for (std::int64_t n = 0; n < N; ++n) {
    for (std::int64_t g = 0; g < G; ++g) out[n * G + g] += b[g * bs];
  }
}

// The weights' gradients over all steps at once: dW_hh (G x H) = d_all^T (G x rows) @ h_prev_all
// (rows x H), and db_hh the column sums of d_all (when it is defined).
template <typename T>
void recurrent_weight_grads(const T* d_all, const T* h_prev_all, std::int64_t rows, std::int64_t G, std::int64_t H,
                            const Tensor& grad_w, const Tensor& grad_b) {
  gemm::product<T>(G, H, rows, d_all, 1, G, h_prev_all, H, 1, grad_w.data_as<T>(), H,
                   threads_for(G * H * rows, kRecurrentGemmGrain));
  if (!grad_b.defined()) return;
  T* gb = grad_b.data_as<T>();
  std::fill(gb, gb + G, T(0));
  for (std::int64_t row = 0; row < rows; ++row) {
    for (std::int64_t g = 0; g < G; ++g) gb[g] += d_all[row * G + g];
  }
}

}  // namespace

LstmSequence lstm_sequence(const Tensor& input, const Tensor& h0_in, const Tensor& c0_in, const Tensor& w_ih,
                           const Tensor& w_hh, const Tensor* b_ih, const Tensor* b_hh, bool reverse) {
  if (record::active()) {
    const Ts out = record::run("lstm_sequence",
                               {input, h0_in, c0_in, w_ih, w_hh, record::optional(b_ih), record::optional(b_hh)}, {},
                               [reverse](const Ts& x) {
                                 LstmSequence s = lstm_sequence(x[0], x[1], x[2], x[3], x[4], record::optional(x[5]),
                                                                record::optional(x[6]), reverse);
                                 return Ts{s.output, s.inputs, s.gates, s.cells, s.tanh_cells};
                               });
    return LstmSequence{out[0], out[1], out[2], out[3], out[4]};
  }
  const LstmSizes s = check_lstm(input, h0_in, c0_in, w_ih, w_hh, b_ih, b_hh);
  const DType dtype = input.dtype();
  const Tensor h0 = h0_in.contiguous(), c0 = c0_in.contiguous();
  const std::int64_t L = s.length, N = s.batch, I = s.input, H = s.hidden, G = 4 * H;
  // With biases, each row of inputs ends in a 1 and the weights in b_ih + b_hh: the GEMM adds the
  // bias, and backward's weight GEMM gives its gradient as one more column.
  const bool has_bias = b_ih != nullptr || b_hh != nullptr;
  const std::int64_t K = I + H + (has_bias ? 1 : 0);
  LstmSequence r{Tensor::empty({L + 1, N, H}, dtype), Tensor::empty({L, N, K}, dtype), Tensor::empty({L, N, G}, dtype),
                 Tensor::empty({L, N, H}, dtype), Tensor::empty({L, N, H}, dtype)};
  if (N == 0 || H == 0) return r;  // every output is empty (and the steps' loop would have no work)
  dispatch_dtype(dtype, [&](auto zero) {
    using T = decltype(zero);
    if constexpr (std::is_floating_point_v<T>) {
      // [W_ih, W_hh, b] (4H x K, a row per gate unit), then its transpose packed once into the
      // micro-kernel's panels for every step's GEMM
      Scratch<T> joined(G * K);
      T* w = joined.get();
      for (std::int64_t g = 0; g < G; ++g) {
        T* row = w + g * K;
        for (std::int64_t i = 0; i < I; ++i) row[i] = w_ih.data_as<T>()[g * w_ih.strides()[0] + i * w_ih.strides()[1]];
        for (std::int64_t h = 0; h < H; ++h) {
          row[I + h] = w_hh.data_as<T>()[g * w_hh.strides()[0] + h * w_hh.strides()[1]];
        }
        if (has_bias) {
          T b = T(0);
          for (const Tensor* bias : {b_ih, b_hh}) b += bias != nullptr ? bias->data_as<T>()[g * bias->strides()[0]] : T(0);
          row[I + H] = b;
        }
      }
      const gemm::PackedB<T> weights(K, G, w, 1, K);
      // each step's row [x_t, h_{t-1}, 1]: x copied in from any strides, h0 before the first step
      T* inputs = r.inputs.data_as<T>();
      const T* x = input.data_as<T>();
      const Shape& xs = input.strides();
      for (std::int64_t t = 0; t < L; ++t) {
        for (std::int64_t n = 0; n < N; ++n) {
          T* row = inputs + (t * N + n) * K;
          for (std::int64_t i = 0; i < I; ++i) row[i] = x[t * xs[0] + n * xs[1] + i * xs[2]];
          if (has_bias) row[I + H] = T(1);
        }
      }
      const std::int64_t first = time_of(0, L, reverse);
      for (std::int64_t n = 0; n < N && L > 0; ++n) {
        std::memcpy(inputs + (first * N + n) * K + I, h0.data_as<T>() + n * H, static_cast<std::size_t>(H) * sizeof(T));
      }
      const int threads = threads_for(N * G * K, kRecurrentGemmGrain);
      T* out = r.output.data_as<T>();
      const T* c_prev = c0.data_as<T>();
      for (std::int64_t k = 0; k < L; ++k) {
        const std::int64_t t = time_of(k, L, reverse);
        T* gates = r.gates.data_as<T>() + t * N * G;
        gemm::product<T>(N, inputs + t * N * K, K, 1, weights, gates, G, threads);
        T* cell = r.cells.data_as<T>() + t * N * H;
        T* tanh_cell = r.tanh_cells.data_as<T>() + t * N * H;
        for (std::int64_t n = 0; n < N; ++n) lstm_cell_forward(gates + n * G, c_prev + n * H, cell + n * H, H);
        tanh_array(cell, tanh_cell, N * H);
        // h_t = o tanh(c_t): into the output and into the next step's row of inputs
        T* h = out + t * N * H;
        T* h_next = k + 1 < L ? inputs + time_of(k + 1, L, reverse) * N * K + I : nullptr;
        for (std::int64_t n = 0; n < N; ++n) {
          const T* o = gates + n * G + 3 * H;
          for (std::int64_t j = 0; j < H; ++j) h[n * H + j] = o[j] * tanh_cell[n * H + j];
          if (h_next != nullptr) std::memcpy(h_next + n * K, h + n * H, static_cast<std::size_t>(H) * sizeof(T));
        }
        c_prev = cell;
      }
      // the last cell state after the sequence's hidden states
      std::memcpy(out + L * N * H, c_prev, static_cast<std::size_t>(N * H) * sizeof(T));
    }
  });
  return r;
}

LstmSequenceGrads lstm_sequence_backward(const Tensor& grad_in, const LstmSequence& saved, const Tensor& c0_in,
                                         const Tensor& w_ih, const Tensor& w_hh, bool reverse) {
  if (record::active()) {
    const Ts out = record::run(
        "lstm_sequence_backward",
        {grad_in, saved.output, saved.inputs, saved.gates, saved.cells, saved.tanh_cells, c0_in, w_ih, w_hh}, {},
        [reverse](const Ts& x) {
          const LstmSequenceGrads g =
              lstm_sequence_backward(x[0], LstmSequence{x[1], x[2], x[3], x[4], x[5]}, x[6], x[7], x[8], reverse);
          return Ts{g.grad_input, g.grad_h0, g.grad_c0, g.grad_w_ih, g.grad_w_hh, g.grad_bias};
        });
    return LstmSequenceGrads{out[0], out[1], out[2], out[3], out[4], out[5]};
  }
  // What the forward saved, checked (a caller of the module function could pass anything)
  const char* op = "lstm_sequence_backward";
  if (saved.inputs.ndim() != 3 || saved.cells.ndim() != 3 || w_ih.ndim() != 2) {
    fail<ValueError>(op, ": expected saved inputs (L, N, I + H [+ 1]), cells (L, N, H) and W_ih (4H, I), got shapes ",
                     saved.inputs.shape(), ", ", saved.cells.shape(), " and ", w_ih.shape());
  }
  const std::int64_t L = saved.cells.shape()[0], N = saved.cells.shape()[1], H = saved.cells.shape()[2];
  const std::int64_t I = w_ih.shape()[1], K = saved.inputs.shape()[2];
  check_lstm_sizes(L, N, std::max(I, K), H, op);
  const std::int64_t G = 4 * H, J = I + H;
  const bool has_bias = K == J + 1;  // the forward's column of ones
  const DType dtype = saved.inputs.dtype();
  bool fits = is_floating(dtype) && (K == J || has_bias) && saved.inputs.shape() == Shape{L, N, K} &&
              saved.gates.shape() == Shape{L, N, G} && saved.tanh_cells.shape() == Shape{L, N, H} &&
              c0_in.shape() == Shape{N, H} && w_ih.shape() == Shape{G, I} && w_hh.shape() == Shape{G, H} &&
              grad_in.shape() == Shape{L + 1, N, H};
  for (const Tensor* t : {&saved.gates, &saved.cells, &saved.tanh_cells, &c0_in, &w_ih, &w_hh, &grad_in}) {
    fits = fits && t->dtype() == dtype;
  }
  if (!fits) {
    fail<ValueError>(op, ": the gradient ", grad_in.shape(), " (", grad_in.dtype(), "), saved inputs ",
                     saved.inputs.shape(), " (", dtype, "), gates ", saved.gates.shape(), ", cells ",
                     saved.cells.shape(), ", c0 ", c0_in.shape(), ", W_ih ", w_ih.shape(), " and W_hh ", w_hh.shape(),
                     " do not fit one LSTM layer");
  }
  const Tensor grad = grad_in.contiguous(), c0 = c0_in.contiguous();
  const Tensor inputs = saved.inputs.contiguous(), gates_saved = saved.gates.contiguous();
  const Tensor cells = saved.cells.contiguous(), tanh_cells = saved.tanh_cells.contiguous();
  LstmSequenceGrads r{Tensor::empty({L, N, I}, dtype), Tensor::empty({N, H}, dtype), Tensor::empty({N, H}, dtype),
                      Tensor::empty({G, I}, dtype), Tensor::empty({G, H}, dtype),
                      has_bias ? Tensor::empty({G}, dtype) : Tensor()};
  if (N == 0 || H == 0) {  // no samples or no hidden units: nothing depends on anything
    for (const Tensor& t : {r.grad_input, r.grad_h0, r.grad_c0, r.grad_w_ih, r.grad_w_hh, r.grad_bias}) {
      if (t.defined()) fill_(t, Scalar::from_double(0.0));
    }
    return r;
  }
  dispatch_dtype(dtype, [&](auto zero) {
    using T = decltype(zero);
    if constexpr (std::is_floating_point_v<T>) {
      // one scratch: every step's gate gradients (L N x 4H), [W_ih, W_hh] (4H x J), one step's
      // [dx_t, dh_{t-1}] (N x J) and the weights' gradient, transposed (K x 4H)
      Scratch<T> scratch(L * N * G + G * J + N * J + G * K);
      T* d_all = scratch.get();
      T* w = d_all + L * N * G;
      T* step = w + G * J;  // its h part is the hidden state's gradient carried back
      T* gw = step + N * J;
      for (std::int64_t g = 0; g < G; ++g) {
        for (std::int64_t i = 0; i < I; ++i) w[g * J + i] = w_ih.data_as<T>()[g * w_ih.strides()[0] + i * w_ih.strides()[1]];
        for (std::int64_t h = 0; h < H; ++h) {
          w[g * J + I + h] = w_hh.data_as<T>()[g * w_hh.strides()[0] + h * w_hh.strides()[1]];
        }
      }
      const gemm::PackedB<T> weights(G, J, w, J, 1);  // packed once for every step's GEMM
      const int threads = threads_for(N * G * J, kRecurrentGemmGrain);
      std::fill(step, step + N * J, T(0));
      T* grad_c = r.grad_c0.data_as<T>();  // the cell state's gradient carried back: ends as c0's
      std::memcpy(grad_c, grad.data_as<T>() + L * N * H, static_cast<std::size_t>(N * H) * sizeof(T));
      for (std::int64_t k = L - 1; k >= 0; --k) {
        const std::int64_t t = time_of(k, L, reverse);
        const T* c_prev = k == 0 ? c0.data_as<T>() : cells.data_as<T>() + time_of(k - 1, L, reverse) * N * H;
        const T* gates = gates_saved.data_as<T>() + t * N * G;
        const T* tanh_cell = tanh_cells.data_as<T>() + t * N * H;
        const T* grad_output = grad.data_as<T>() + t * N * H;
        T* d = d_all + t * N * G;
        for (std::int64_t n = 0; n < N; ++n) {
          lstm_cell_backward(gates + n * G, tanh_cell + n * H, c_prev + n * H, grad_output + n * H, step + n * J + I,
                             grad_c + n * H, d + n * G, H);
        }
        // [dx_t, dh_{t-1}] = d_gates (N x 4H) @ [W_ih, W_hh] (4H x (I + H))
        gemm::product<T>(N, d, G, 1, weights, step, J, threads);
        T* grad_x = r.grad_input.data_as<T>() + t * N * I;
        for (std::int64_t n = 0; n < N; ++n) {
          std::memcpy(grad_x + n * I, step + n * J, static_cast<std::size_t>(I) * sizeof(T));
        }
      }
      T* grad_h0 = r.grad_h0.data_as<T>();
      for (std::int64_t n = 0; n < N; ++n) {
        std::memcpy(grad_h0 + n * H, step + n * J + I, static_cast<std::size_t>(H) * sizeof(T));
      }
      // The weights' gradients over all steps at once, [dW_ih, dW_hh, db] = d_gates^T @ inputs
      // (the column of ones gives the bias's), made transposed: inputs^T (K x L N) @ d_gates
      // (L N x 4H) packs the narrow operand across instead of the wide one (7% faster for the
      // char-RNN's 161 x 2048 @ 2048 x 512), and the rows of the result are then copied out as columns.
      gemm::product<T>(K, G, L * N, inputs.data_as<T>(), 1, K, d_all, G, 1, gw, G,
                       threads_for(G * K * L * N, kRecurrentGemmGrain));
      T* gw_ih = r.grad_w_ih.data_as<T>();
      T* gw_hh = r.grad_w_hh.data_as<T>();
      for (std::int64_t i = 0; i < I; ++i) {
        for (std::int64_t g = 0; g < G; ++g) gw_ih[g * I + i] = gw[i * G + g];
      }
      for (std::int64_t h = 0; h < H; ++h) {
        for (std::int64_t g = 0; g < G; ++g) gw_hh[g * H + h] = gw[(I + h) * G + g];
      }
      if (has_bias) std::memcpy(r.grad_bias.data_as<T>(), gw + J * G, static_cast<std::size_t>(G) * sizeof(T));
    }
  });
  return r;
}

GruSequence gru_sequence(const Tensor& projected_in, const Tensor& h0_in, const Tensor& w_hh, const Tensor* b_hh,
                         bool reverse) {
  if (record::active()) {
    const Ts out = record::run("gru_sequence", {projected_in, h0_in, w_hh, record::optional(b_hh)}, {},
                               [reverse](const Ts& x) {
                                 GruSequence s = gru_sequence(x[0], x[1], x[2], record::optional(x[3]), reverse);
                                 return Ts{s.output, s.hidden_parts, s.gates};
                               });
    return GruSequence{out[0], out[1], out[2]};
  }
  const LstmSizes s = check_recurrent(projected_in, h0_in, w_hh, b_hh, 3, "gru_sequence");
  const DType dtype = projected_in.dtype();
  const std::int64_t L = s.length, N = s.batch, H = s.hidden, G = 3 * H;
  GruSequence r{Tensor::empty({L, N, H}, dtype), Tensor::empty({L, N, G}, dtype), Tensor::empty({L, N, G}, dtype)};
  if (L == 0 || N == 0 || H == 0) return r;
  const Tensor projected = projected_in.contiguous(), h0 = h0_in.contiguous();
  dispatch_dtype(dtype, [&](auto zero) {
    using T = decltype(zero);
    if constexpr (std::is_floating_point_v<T>) {
      // W_hh^T (H x 3H), packed once for every step's GEMM
      const gemm::PackedB<T> weights(H, G, w_hh.data_as<T>(), w_hh.strides()[1], w_hh.strides()[0]);
      const int threads = threads_for(N * G * H, kRecurrentGemmGrain);
      const T* h = h0.data_as<T>();
      for (std::int64_t k = 0; k < L; ++k) {
        const std::int64_t t = time_of(k, L, reverse);
        T* hidden = r.hidden_parts.data_as<T>() + t * N * G;
        recurrent_product(N, h, weights, b_hh, hidden, threads);
        T* gates = r.gates.data_as<T>() + t * N * G;
        T* h_new = r.output.data_as<T>() + t * N * H;
        const T* x = projected.data_as<T>() + t * N * G;
        for (std::int64_t n = 0; n < N; ++n) {
          gru_cell_forward(x + n * G, hidden + n * G, h + n * H, gates + n * G, h_new + n * H, H);
        }
        h = h_new;
      }
    }
  });
  return r;
}

RecurrentGrads gru_sequence_backward(const Tensor& grad_in, const GruSequence& saved, const Tensor& h0_in,
                                     const Tensor& w_hh, bool has_bias, bool reverse) {
  if (record::active()) {
    const Ts out = record::run(
        "gru_sequence_backward", {grad_in, saved.output, saved.hidden_parts, saved.gates, h0_in, w_hh}, {},
        [has_bias, reverse](const Ts& x) {
          const RecurrentGrads g =
              gru_sequence_backward(x[0], GruSequence{x[1], x[2], x[3]}, x[4], x[5], has_bias, reverse);
          return Ts{g.grad_projected, g.grad_h0, g.grad_w_hh, g.grad_b_hh};
        });
    return RecurrentGrads{out[0], out[1], out[2], out[3]};
  }
  const LstmSizes s = check_recurrent_backward(grad_in, saved.output, h0_in, w_hh, {&saved.hidden_parts, &saved.gates},
                                               3, "gru_sequence_backward", "GRU");
  const DType dtype = grad_in.dtype();
  const std::int64_t L = s.length, N = s.batch, H = s.hidden, G = 3 * H;
  RecurrentGrads r = recurrent_grads(s, 3, dtype, has_bias);
  if (L == 0 || N == 0 || H == 0) return r;
  const Tensor grad = grad_in.contiguous(), output = saved.output.contiguous(), h0 = h0_in.contiguous();
  const Tensor hidden_parts = saved.hidden_parts.contiguous(), gates_saved = saved.gates.contiguous();
  dispatch_dtype(dtype, [&](auto zero) {
    using T = decltype(zero);
    if constexpr (std::is_floating_point_v<T>) {
      // one scratch: every step's gradient of h_{t-1} W_hh^T + b_hh (L N x 3H), every step's
      // h_{t-1} in time order (L N x H: the weight gradient's other operand), the gradient of h
      // carried back and its direct part (N x H each)
      Scratch<T> scratch(L * N * G + L * N * H + 2 * N * H);
      T* d_hidden_all = scratch.get();
      T* h_prev_all = d_hidden_all + L * N * G;
      T* carry = h_prev_all + L * N * H;
      T* direct = carry + N * H;
      previous_states(output.data_as<T>(), h0.data_as<T>(), L, N, H, reverse, h_prev_all);
      const gemm::PackedB<T> weights(G, H, w_hh.data_as<T>(), w_hh.strides()[0], w_hh.strides()[1]);  // W_hh
      const int threads = threads_for(N * G * H, kRecurrentGemmGrain);
      std::fill(carry, carry + N * H, T(0));
      for (std::int64_t k = L - 1; k >= 0; --k) {
        const std::int64_t t = time_of(k, L, reverse);
        T* grad_h = carry;  // the gradient reaching h_t: from the output and from the next step
        const T* grad_output = grad.data_as<T>() + t * N * H;
        for (std::int64_t e = 0; e < N * H; ++e) grad_h[e] += grad_output[e];
        const T* gates = gates_saved.data_as<T>() + t * N * G;
        const T* hidden = hidden_parts.data_as<T>() + t * N * G;
        const T* h_prev = h_prev_all + t * N * H;
        T* d_projected = r.grad_projected.data_as<T>() + t * N * G;
        T* d_hidden = d_hidden_all + t * N * G;
        for (std::int64_t n = 0; n < N; ++n) {
          gru_cell_backward(gates + n * G, hidden + n * G, h_prev + n * H, grad_h + n * H, d_projected + n * G,
                            d_hidden + n * G, direct + n * H, H);
        }
        // dh_{t-1} = d_hidden (N x 3H) @ W_hh (3H x H) + the direct part z dh_t
        gemm::product<T>(N, d_hidden, G, 1, weights, carry, H, threads);
        for (std::int64_t e = 0; e < N * H; ++e) carry[e] += direct[e];
      }
      std::memcpy(r.grad_h0.data_as<T>(), carry, static_cast<std::size_t>(N * H) * sizeof(T));
      recurrent_weight_grads(d_hidden_all, h_prev_all, L * N, G, H, r.grad_w_hh, r.grad_b_hh);
    }
  });
  return r;
}

Tensor rnn_sequence(const Tensor& projected_in, const Tensor& h0_in, const Tensor& w_hh, const Tensor* b_hh, bool relu,
                    bool reverse) {
  if (record::active()) {
    return record::run("rnn_sequence", {projected_in, h0_in, w_hh, record::optional(b_hh)}, {},
                       [relu, reverse](const Ts& x) {
                         return Ts{rnn_sequence(x[0], x[1], x[2], record::optional(x[3]), relu, reverse)};
                       })[0];
  }
  const LstmSizes s = check_recurrent(projected_in, h0_in, w_hh, b_hh, 1, "rnn_sequence");
  const DType dtype = projected_in.dtype();
  const std::int64_t L = s.length, N = s.batch, H = s.hidden;
  Tensor output = Tensor::empty({L, N, H}, dtype);
  if (L == 0 || N == 0 || H == 0) return output;
  const Tensor projected = projected_in.contiguous(), h0 = h0_in.contiguous();
  dispatch_dtype(dtype, [&](auto zero) {
    using T = decltype(zero);
    if constexpr (std::is_floating_point_v<T>) {
      const gemm::PackedB<T> weights(H, H, w_hh.data_as<T>(), w_hh.strides()[1], w_hh.strides()[0]);  // W_hh^T
      const int threads = threads_for(N * H * H, kRecurrentGemmGrain);
      const T* h = h0.data_as<T>();
      for (std::int64_t k = 0; k < L; ++k) {
        const std::int64_t t = time_of(k, L, reverse);
        T* h_new = output.data_as<T>() + t * N * H;
        recurrent_product(N, h, weights, b_hh, h_new, threads);
        const T* x = projected.data_as<T>() + t * N * H;
        for (std::int64_t e = 0; e < N * H; ++e) h_new[e] += x[e];
        if (relu) {
          for (std::int64_t e = 0; e < N * H; ++e) h_new[e] = h_new[e] < T(0) ? T(0) : h_new[e];  // NaN stays, as relu
        } else {
          tanh_array(h_new, h_new, N * H);
        }
        h = h_new;
      }
    }
  });
  return output;
}

RecurrentGrads rnn_sequence_backward(const Tensor& grad_in, const Tensor& output_in, const Tensor& h0_in,
                                     const Tensor& w_hh, bool has_bias, bool relu, bool reverse) {
  if (record::active()) {
    const Ts out = record::run("rnn_sequence_backward", {grad_in, output_in, h0_in, w_hh}, {},
                               [has_bias, relu, reverse](const Ts& x) {
                                 const RecurrentGrads g = rnn_sequence_backward(x[0], x[1], x[2], x[3], has_bias,
                                                                                relu, reverse);
                                 return Ts{g.grad_projected, g.grad_h0, g.grad_w_hh, g.grad_b_hh};
                               });
    return RecurrentGrads{out[0], out[1], out[2], out[3]};
  }
  const LstmSizes s =
      check_recurrent_backward(grad_in, output_in, h0_in, w_hh, {}, 1, "rnn_sequence_backward", "RNN");
  const DType dtype = grad_in.dtype();
  const std::int64_t L = s.length, N = s.batch, H = s.hidden;
  RecurrentGrads r = recurrent_grads(s, 1, dtype, has_bias);
  if (L == 0 || N == 0 || H == 0) return r;
  const Tensor grad = grad_in.contiguous(), output = output_in.contiguous(), h0 = h0_in.contiguous();
  dispatch_dtype(dtype, [&](auto zero) {
    using T = decltype(zero);
    if constexpr (std::is_floating_point_v<T>) {
      // every step's h_{t-1} in time order (L N x H) and the gradient of h carried back (N x H)
      Scratch<T> scratch(L * N * H + N * H);
      T* h_prev_all = scratch.get();
      T* carry = h_prev_all + L * N * H;
      previous_states(output.data_as<T>(), h0.data_as<T>(), L, N, H, reverse, h_prev_all);
      const gemm::PackedB<T> weights(H, H, w_hh.data_as<T>(), w_hh.strides()[0], w_hh.strides()[1]);  // W_hh
      const int threads = threads_for(N * H * H, kRecurrentGemmGrain);
      std::fill(carry, carry + N * H, T(0));
      for (std::int64_t k = L - 1; k >= 0; --k) {
        const std::int64_t t = time_of(k, L, reverse);
        const T* grad_output = grad.data_as<T>() + t * N * H;
        const T* h = output.data_as<T>() + t * N * H;
        T* d = r.grad_projected.data_as<T>() + t * N * H;  // the pre-activation's gradient
        // relu'(pre) = (h > 0), tanh'(pre) = 1 - h^2: both from the output h
        for (std::int64_t e = 0; e < N * H; ++e) {
          const T grad_h = grad_output[e] + carry[e];
          d[e] = relu ? (h[e] <= T(0) ? T(0) : grad_h) : grad_h * (T(1) - h[e] * h[e]);
        }
        gemm::product<T>(N, d, H, 1, weights, carry, H, threads);  // dh_{t-1} = d (N x H) @ W_hh (H x H)
      }
      std::memcpy(r.grad_h0.data_as<T>(), carry, static_cast<std::size_t>(N * H) * sizeof(T));
      recurrent_weight_grads(r.grad_projected.data_as<T>(), h_prev_all, L * N, H, H, r.grad_w_hh, r.grad_b_hh);
    }
  });
  return r;
}

}  // namespace chainrule
