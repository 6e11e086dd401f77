// The one generator behind every random number chainrule draws; manual_seed makes runs repeat.
#pragma once
#include <cstdint>

#include "chainrule/tensor.h"

namespace chainrule {

void manual_seed(std::uint64_t seed);
std::uint64_t initial_seed();
Tensor rand(const Shape& shape, DType dtype);    // uniform in [0, 1)
Tensor randn(const Shape& shape, DType dtype);   // standard normal
Tensor randint(std::int64_t low, std::int64_t high, const Shape& shape);
Tensor randperm(std::int64_t n);
// Fills `t` in place with uniform values in [low, high) or normal(mean, std).
void uniform_(const Tensor& t, double low, double high);
void normal_(const Tensor& t, double mean, double std);

}  // namespace chainrule
