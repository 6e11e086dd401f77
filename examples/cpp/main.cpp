// chainrule's tensor core from plain C++: no Python, no autograd, just the library that
// find_package(chainrule) brings in as chainrule::core.
//
//   a = [[0, 1, 2],      b = [[1, 1],      a @ b + 1 = [[ 9,  9],    sum = 72
//        [3, 4, 5]]           [2, 2],                   [27, 27]]
//                             [3, 3]]
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>

#include "chainrule/config.h"
#include "chainrule/ops.h"
#include "chainrule/tensor.h"

namespace cr = chainrule;

int main() {
  try {
    // a: a range reshaped into a 2x3 matrix (a view of the range's storage).
    const cr::Tensor a = cr::arange(0, 6, 1, cr::DType::Float32).reshape({2, 3});

    // b: an uninitialised 3x2 tensor filled through its data pointer: row i holds i + 1.
    const cr::Tensor b = cr::Tensor::empty({3, 2}, cr::DType::Float32);
    float* values = b.data_as<float>();
    for (std::int64_t i = 0; i < 3; ++i) {
      for (std::int64_t j = 0; j < 2; ++j) values[i * 2 + j] = static_cast<float>(i + 1);
    }

    const cr::Tensor ones = cr::full({2, 2}, cr::Scalar::from_double(1.0), cr::DType::Float32);
    const cr::Tensor c = cr::binary(cr::BinaryOp::Add, cr::matmul(a, b), ones);
    const cr::Tensor total = cr::reduce(cr::ReduceOp::Sum, c, {}, /*keepdim=*/false);

    const float expected_c[4] = {9, 9, 27, 27};
    const cr::Tensor c_contiguous = c.contiguous();
    bool ok = c.shape() == cr::Shape{2, 2} && total.ndim() == 0;
    for (int k = 0; ok && k < 4; ++k) ok = c_contiguous.data_as<float>()[k] == expected_c[k];
    const float sum = *total.data_as<float>();
    ok = ok && std::fabs(sum - 72.0f) < 1e-5f;

    std::printf("chainrule C++ core (%s kernels): sum(a @ b + 1) = %g (expected 72)\n",
                cr::isa_name(cr::active_isa()), static_cast<double>(sum));
    std::printf("a @ b + 1 = [[%g, %g], [%g, %g]]\n",
                static_cast<double>(c_contiguous.data_as<float>()[0]),
                static_cast<double>(c_contiguous.data_as<float>()[1]),
                static_cast<double>(c_contiguous.data_as<float>()[2]),
                static_cast<double>(c_contiguous.data_as<float>()[3]));
    if (!ok) {
      std::fprintf(stderr, "chainrule_example: wrong result\n");
      return 1;
    }
    return 0;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "chainrule_example: %s\n", error.what());
    return 2;
  }
}
