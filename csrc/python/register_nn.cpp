// The convolution, pooling, normalisation and recurrent kernels (chainrule/nn_ops.h) as module
// functions for the op table's entries (python/chainrule/ops/convolution.py, normalization.py,
// recurrent.py), each pairing a forward with its backward. Sizes come as Python pairs
// (height, width); each call releases the GIL when its work is large.
#include "bindings.h"
#include "chainrule/nn_ops.h"

namespace chainrule::python {
namespace {

using Pair = std::pair<std::int64_t, std::int64_t>;

Conv2dSettings conv_settings(Pair stride, Pair padding, Pair dilation, std::int64_t groups) {
  return {stride.first, stride.second, padding.first, padding.second, dilation.first, dilation.second, groups};
}

Pool2dSettings pool_settings(Pair kernel, Pair stride, Pair padding, Pair dilation, bool ceil_mode,
                             bool count_include_pad, std::int64_t divisor_override) {
  return {kernel.first,   kernel.second,   stride.first, stride.second,     padding.first,   padding.second,
          dilation.first, dilation.second, ceil_mode,    count_include_pad, divisor_override};
}

const Tensor* optional_tensor(const std::optional<Tensor>& t) { return t ? &*t : nullptr; }

}  // namespace

void register_nn(py::module_& m) {
  m.def("conv2d", [](const Tensor& input, const Tensor& weight, std::optional<Tensor> bias, Pair stride,
                     Pair padding, Pair dilation, std::int64_t groups) {
    MaybeReleaseGil gil(input.numel() * weight.numel());
    return conv2d(input, weight, optional_tensor(bias), conv_settings(stride, padding, dilation, groups));
  });
  m.def("conv2d_backward_input", [](const Tensor& grad, const Tensor& weight, const Shape& input_shape, Pair stride,
                                    Pair padding, Pair dilation, std::int64_t groups) {
    MaybeReleaseGil gil(grad.numel() * weight.numel());
    return conv2d_backward_input(grad, weight, input_shape, conv_settings(stride, padding, dilation, groups));
  });
  m.def("conv2d_backward_weight", [](const Tensor& grad, const Tensor& input, const Shape& weight_shape, Pair stride,
                                     Pair padding, Pair dilation, std::int64_t groups) {
    MaybeReleaseGil gil(grad.numel() * input.numel());
    return conv2d_backward_weight(grad, input, weight_shape, conv_settings(stride, padding, dilation, groups));
  });
  m.def("conv2d_backward_bias", [](const Tensor& grad) {
    MaybeReleaseGil gil(grad.numel());
    return conv2d_backward_bias(grad);
  });
  m.def("max_pool2d", [](const Tensor& input, Pair kernel, Pair stride, Pair padding, Pair dilation, bool ceil_mode) {
    MaybeReleaseGil gil(input.numel());
    return max_pool2d(input, pool_settings(kernel, stride, padding, dilation, ceil_mode, true, 0));
  });
  m.def("max_pool2d_backward", [](const Tensor& grad, const Tensor& indices, const Shape& input_shape) {
    MaybeReleaseGil gil(grad.numel());
    return max_pool2d_backward(grad, indices, input_shape);
  });
  m.def("avg_pool2d", [](const Tensor& input, Pair kernel, Pair stride, Pair padding, bool ceil_mode,
                         bool count_include_pad, std::int64_t divisor_override) {
    MaybeReleaseGil gil(input.numel());
    return avg_pool2d(input, pool_settings(kernel, stride, padding, {1, 1}, ceil_mode, count_include_pad,
                                           divisor_override));
  });
  m.def("avg_pool2d_backward", [](const Tensor& grad, const Shape& input_shape, Pair kernel, Pair stride,
                                  Pair padding, bool ceil_mode, bool count_include_pad,
                                  std::int64_t divisor_override) {
    MaybeReleaseGil gil(grad.numel());
    return avg_pool2d_backward(grad, input_shape, pool_settings(kernel, stride, padding, {1, 1}, ceil_mode,
                                                                count_include_pad, divisor_override));
  });
  m.def("batch_norm_statistics", [](const Tensor& input) {
    MaybeReleaseGil gil(input.numel());
    return batch_norm_statistics(input);
  });
  m.def("batch_norm", [](const Tensor& input, const Tensor& mean, const Tensor& invstd, std::optional<Tensor> weight,
                         std::optional<Tensor> bias) {
    MaybeReleaseGil gil(input.numel());
    return batch_norm(input, mean, invstd, optional_tensor(weight), optional_tensor(bias));
  });
  m.def("batch_norm_backward", [](const Tensor& grad, const Tensor& input, const Tensor& mean, const Tensor& invstd,
                                  std::optional<Tensor> weight, bool training) {
    MaybeReleaseGil gil(input.numel());
    return batch_norm_backward(grad, input, mean, invstd, optional_tensor(weight), training);
  });
  m.def("layer_norm", [](const Tensor& input, std::int64_t normalized_numel, std::optional<Tensor> weight,
                         std::optional<Tensor> bias, double eps) {
    MaybeReleaseGil gil(input.numel());
    return layer_norm(input, normalized_numel, optional_tensor(weight), optional_tensor(bias), eps);
  });
  m.def("lstm_sequence", [](const Tensor& input, const Tensor& h0, const Tensor& c0, const Tensor& w_ih,
                            const Tensor& w_hh, std::optional<Tensor> b_ih, std::optional<Tensor> b_hh, bool reverse) {
    MaybeReleaseGil gil(input.numel() + w_hh.numel());
    const LstmSequence r = lstm_sequence(input, h0, c0, w_ih, w_hh, optional_tensor(b_ih), optional_tensor(b_hh), reverse);
    return std::make_tuple(r.output, r.inputs, r.gates, r.cells, r.tanh_cells);
  });
  m.def("lstm_sequence_backward", [](const Tensor& grad, const Tensor& inputs, const Tensor& gates, const Tensor& cells,
                                     const Tensor& tanh_cells, const Tensor& c0, const Tensor& w_ih, const Tensor& w_hh,
                                     bool reverse) {
    MaybeReleaseGil gil(gates.numel() + inputs.numel());
    const LstmSequenceGrads r =
        lstm_sequence_backward(grad, LstmSequence{Tensor(), inputs, gates, cells, tanh_cells}, c0, w_ih, w_hh, reverse);
    return std::make_tuple(r.grad_input, r.grad_h0, r.grad_c0, r.grad_w_ih, r.grad_w_hh,
                           r.grad_bias.defined() ? py::cast(r.grad_bias) : py::none());
  });
  m.def("gru_sequence", [](const Tensor& projected, const Tensor& h0, const Tensor& w_hh, std::optional<Tensor> b_hh,
                           bool reverse) {
    MaybeReleaseGil gil(projected.numel() + w_hh.numel());
    const GruSequence r = gru_sequence(projected, h0, w_hh, optional_tensor(b_hh), reverse);
    return std::make_tuple(r.output, r.hidden_parts, r.gates);
  });
  m.def("gru_sequence_backward", [](const Tensor& grad, const Tensor& output, const Tensor& h0,
                                    const Tensor& hidden_parts, const Tensor& gates, const Tensor& w_hh, bool has_bias,
                                    bool reverse) {
    MaybeReleaseGil gil(gates.numel() + w_hh.numel());
    const RecurrentGrads r =
        gru_sequence_backward(grad, GruSequence{output, hidden_parts, gates}, h0, w_hh, has_bias, reverse);
    return std::make_tuple(r.grad_projected, r.grad_h0, r.grad_w_hh,
                           r.grad_b_hh.defined() ? py::cast(r.grad_b_hh) : py::none());
  });
  m.def("rnn_sequence", [](const Tensor& projected, const Tensor& h0, const Tensor& w_hh, std::optional<Tensor> b_hh,
                           bool relu, bool reverse) {
    MaybeReleaseGil gil(projected.numel() + w_hh.numel());
    return rnn_sequence(projected, h0, w_hh, optional_tensor(b_hh), relu, reverse);
  });
  m.def("rnn_sequence_backward", [](const Tensor& grad, const Tensor& output, const Tensor& h0, const Tensor& w_hh,
                                    bool has_bias, bool relu, bool reverse) {
    MaybeReleaseGil gil(output.numel() + w_hh.numel());
    const RecurrentGrads r = rnn_sequence_backward(grad, output, h0, w_hh, has_bias, relu, reverse);
    return std::make_tuple(r.grad_projected, r.grad_h0, r.grad_w_hh,
                           r.grad_b_hh.defined() ? py::cast(r.grad_b_hh) : py::none());
  });
  m.def("layer_norm_backward", [](const Tensor& grad, const Tensor& input, const Tensor& mean, const Tensor& invstd,
                                  std::optional<Tensor> weight) {
    MaybeReleaseGil gil(input.numel());
    return layer_norm_backward(grad, input, mean, invstd, optional_tensor(weight));
  });
}

}  // namespace chainrule::python
