// The ops of convolutional and normalising layers: 2-D convolution, max and average pooling,
// batch and layer normalisation, each a forward and the backward pieces autograd needs. Inputs
// may have any strides; results are fresh and contiguous. Shapes follow PyTorch: images are
// (N, C, H, W), convolution weights (out_channels, in_channels / groups, kH, kW).
#pragma once
#include <cstdint>
#include <tuple>
#include <utility>

#include "chainrule/tensor.h"

namespace chainrule {

struct Conv2dSettings {
  std::int64_t stride_h = 1, stride_w = 1;
  std::int64_t padding_h = 0, padding_w = 0;
  std::int64_t dilation_h = 1, dilation_w = 1;
  std::int64_t groups = 1;
};

// Cross-correlation of input (N, C, H, W) with weight (O, C / groups, kH, kW), plus bias (O,).
Tensor conv2d(const Tensor& input, const Tensor& weight, const Tensor* bias, const Conv2dSettings& settings);
// The gradients with respect to the input and to the weight, given the output's gradient.
Tensor conv2d_backward_input(const Tensor& grad, const Tensor& weight, const Shape& input_shape,
                             const Conv2dSettings& settings);
Tensor conv2d_backward_weight(const Tensor& grad, const Tensor& input, const Shape& weight_shape,
                              const Conv2dSettings& settings);
// The bias's gradient: the output's gradient summed over (N, H, W).
Tensor conv2d_backward_bias(const Tensor& grad);

struct Pool2dSettings {
  std::int64_t kernel_h = 1, kernel_w = 1;
  std::int64_t stride_h = 1, stride_w = 1;
  std::int64_t padding_h = 0, padding_w = 0;
  std::int64_t dilation_h = 1, dilation_w = 1;  // max pooling only
  bool ceil_mode = false;
  bool count_include_pad = true;     // average pooling only
  std::int64_t divisor_override = 0;  // average pooling only; 0: none
};

// Max pooling of (N, C, H, W) or (C, H, W): the maxima and, for each, its flat position
// h * W + w in its input plane (int64, PyTorch's `return_indices`). NaN counts as the largest.
std::pair<Tensor, Tensor> max_pool2d(const Tensor& input, const Pool2dSettings& settings);
Tensor max_pool2d_backward(const Tensor& grad, const Tensor& indices, const Shape& input_shape);
Tensor avg_pool2d(const Tensor& input, const Pool2dSettings& settings);
Tensor avg_pool2d_backward(const Tensor& grad, const Shape& input_shape, const Pool2dSettings& settings);

// Batch normalisation of (N, C, *) over every dim but C. `batch_norm_statistics` gives each
// channel's mean and biased variance (C,); `batch_norm` applies
// y = (x - mean) * invstd * weight + bias (weight and bias may be null).
std::pair<Tensor, Tensor> batch_norm_statistics(const Tensor& input);
Tensor batch_norm(const Tensor& input, const Tensor& mean, const Tensor& invstd, const Tensor* weight,
                  const Tensor* bias);
// (grad of input, sum of grad * xhat per channel, sum of grad per channel). With `training`, the
// mean and invstd were the batch's own and depend on the input; else they are constants.
std::tuple<Tensor, Tensor, Tensor> batch_norm_backward(const Tensor& grad, const Tensor& input, const Tensor& mean,
                                                       const Tensor& invstd, const Tensor* weight, bool training);

// Layer normalisation over the last dims of `input` holding `normalized_numel` elements:
// (y, mean, invstd), the statistics one per row (input.numel() / normalized_numel rows).
std::tuple<Tensor, Tensor, Tensor> layer_norm(const Tensor& input, std::int64_t normalized_numel,
                                              const Tensor* weight, const Tensor* bias, double eps);
// (grad of input, grad of weight, grad of bias): the last two summed over the rows (weight's shape
// flattened; undefined without a weight).
std::tuple<Tensor, Tensor, Tensor> layer_norm_backward(const Tensor& grad, const Tensor& input, const Tensor& mean,
                                                       const Tensor& invstd, const Tensor* weight);

// One LSTM layer and direction over a whole sequence (csrc/kernels/recurrent.cpp): input (L, N, I)
// (any strides: a batch_first input's transposed view too), states h0, c0 (N, H), W_ih (4H, I),
// W_hh (4H, H), b_ih and b_hh (4H,) or null, gates in PyTorch's order i, f, g, o; `reverse` walks
// the steps from the last. Each step is one GEMM, [x_t, h_{t-1}, 1] @ [W_ih, W_hh, b_ih + b_hh]^T,
// and one fused pointwise pass.
struct LstmSequence {
  Tensor output;      // (L + 1, N, H): the hidden states in time order, then the last cell state
  Tensor inputs;      // (L, N, I + H [+ 1]): each step's [x_t, h_{t-1}] (and a 1 with biases), saved
  Tensor gates;       // (L, N, 4H): the gates after their nonlinearities (saved for backward)
  Tensor cells;       // (L, N, H): each step's cell state
  Tensor tanh_cells;  // (L, N, H): tanh of it
};
LstmSequence lstm_sequence(const Tensor& input, const Tensor& h0, const Tensor& c0, const Tensor& w_ih,
                           const Tensor& w_hh, const Tensor* b_ih, const Tensor* b_hh, bool reverse);
struct LstmSequenceGrads {
  Tensor grad_input, grad_h0, grad_c0, grad_w_ih, grad_w_hh;
  Tensor grad_bias;  // b_ih's and b_hh's gradient alike (undefined without biases)
};
// Back-propagation through time from the gradient of `output` (the saved output itself is not read).
LstmSequenceGrads lstm_sequence_backward(const Tensor& grad, const LstmSequence& saved, const Tensor& c0,
                                         const Tensor& w_ih, const Tensor& w_hh, bool reverse);

// One GRU layer and direction over a whole sequence (csrc/kernels/recurrent.cpp), from its input
// projection: projected (L, N, 3H) = x_t W_ih^T + b_ih for every step (any strides), h0 (N, H),
// W_hh (3H, H), b_hh (3H,) or null, gates in PyTorch's order r, z, n; `reverse` walks the steps
// from the last. Each step is one GEMM, h_{t-1} @ W_hh^T (+ b_hh), and one fused pointwise pass.
struct GruSequence {
  Tensor output;        // (L, N, H): the hidden states in time order
  Tensor hidden_parts;  // (L, N, 3H): each step's h_{t-1} W_hh^T + b_hh (n reads its third block)
  Tensor gates;         // (L, N, 3H): r, z and n after their nonlinearities
};
GruSequence gru_sequence(const Tensor& projected, const Tensor& h0, const Tensor& w_hh, const Tensor* b_hh,
                         bool reverse);
// The gradients of a GRU or plain RNN layer given its input projection.
struct RecurrentGrads {
  Tensor grad_projected, grad_h0, grad_w_hh;
  Tensor grad_b_hh;  // undefined unless has_bias
};
// Back-propagation through time from the gradient of `saved.output`, whose values (each step's
// h_{t-1}) it reads.
RecurrentGrads gru_sequence_backward(const Tensor& grad, const GruSequence& saved, const Tensor& h0,
                                     const Tensor& w_hh, bool has_bias, bool reverse);

// One plain RNN layer and direction (csrc/kernels/recurrent.cpp): h_t = tanh (or relu) of
// projected_t + h_{t-1} W_hh^T + b_hh, from the input projection projected (L, N, H) (any
// strides), h0 (N, H), W_hh (H, H), b_hh (H,) or null. Returns the hidden states (L, N, H) in
// time order; the backward reads them (each activation's derivative comes from its output).
Tensor rnn_sequence(const Tensor& projected, const Tensor& h0, const Tensor& w_hh, const Tensor* b_hh, bool relu,
                    bool reverse);
RecurrentGrads rnn_sequence_backward(const Tensor& grad, const Tensor& output, const Tensor& h0, const Tensor& w_hh,
                                     bool has_bias, bool relu, bool reverse);

}  // namespace chainrule
