#include "chainrule/random.h"

#include <cmath>
#include <mutex>
#include <random>
#include <sstream>
#include <utility>

#include "chainrule/errors.h"
#include "chainrule/record.h"
#include "chainrule/ops.h"

namespace chainrule {

using Ts = record::Tensors;  // a recorded op's tensor operands

void Generator::manual_seed(std::uint64_t seed) {
  std::lock_guard<std::mutex> lock(mutex_);
  engine_.seed(seed);
  seed_ = seed;
}

std::uint64_t Generator::initial_seed() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return seed_;
}

std::uint64_t Generator::seed() {
  std::random_device entropy;
  const std::uint64_t seed = (static_cast<std::uint64_t>(entropy()) << 32) ^ entropy();
  manual_seed(seed);
  return seed;
}

// The standard library writes a Mersenne Twister's state as its words and position in
// decimal; read them back as numbers so the state travels as a plain int64 tensor.
std::vector<std::uint64_t> Generator::get_state() const {
  std::ostringstream text;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    text << engine_;
  }
  std::vector<std::uint64_t> state;
  std::istringstream numbers(text.str());
  for (std::uint64_t word; numbers >> word;) state.push_back(word);
  state.push_back(initial_seed());
  return state;
}

void Generator::set_state(const std::vector<std::uint64_t>& state) {
  constexpr std::size_t kWords = std::mt19937_64::state_size + 1;  // the words and the position
  if (state.size() != kWords + 1) {
    fail<ValueError>("Generator.set_state: expected a state of ", kWords + 1, " values (from get_state), got ",
                     state.size());
  }
  std::ostringstream text;
  for (std::size_t i = 0; i < kWords; ++i) text << state[i] << ' ';
  std::mt19937_64 restored;
  std::istringstream in(text.str());
  in >> restored;
  if (in.fail() || state[kWords - 1] > std::mt19937_64::state_size) {
    fail<ValueError>("Generator.set_state: the state is not one that get_state returned");
  }
  std::lock_guard<std::mutex> lock(mutex_);
  engine_ = restored;
  seed_ = state[kWords];
}

Generator& default_generator() {
  static Generator g;
  return g;
}

namespace {

Generator& or_default(Generator* generator) { return generator != nullptr ? *generator : default_generator(); }

// 53 random bits as a double in [0, 1).
double uniform_double(std::mt19937_64& engine) {
  return static_cast<double>(engine() >> 11) * (1.0 / 9007199254740992.0);
}
// 24 random bits as a float in [0, 1): a float32 draw never rounds up to 1.
float uniform_float(std::mt19937_64& engine) {
  return static_cast<float>(engine() >> 40) * (1.0f / 16777216.0f);
}

template <typename T, typename Draw>
void fill_with(const Tensor& t, Generator& generator, Draw draw) {
  const Tensor target = t.is_contiguous() ? t : Tensor::empty(t.shape(), t.dtype());
  T* data = target.data_as<T>();
  generator.locked([&](std::mt19937_64& engine) {
    for (std::int64_t i = 0; i < target.numel(); ++i) data[i] = draw(engine);
  });
  if (!t.is_contiguous()) copy_(t, target);
}

void require_float(DType dtype, const char* op) {
  if (!is_floating(dtype)) fail<TypeError>(op, ": expected a float dtype, got ", dtype);
}

}  // namespace

void manual_seed(std::uint64_t seed) { default_generator().manual_seed(seed); }

std::uint64_t initial_seed() { return default_generator().initial_seed(); }

void uniform_(const Tensor& t, double low, double high, Generator* generator) {
  if (record::active() && generator == nullptr) {  // a replay draws from the default generator as eager would
    return record::in_place("uniform_", {t}, [=](const Ts& x) { uniform_(x[0], low, high); });
  }
  if (generator != nullptr) record::unsupported("random numbers from a cr.Generator object");
  require_float(t.dtype(), "uniform_");
  if (t.dtype() == DType::Float32) {
    const float lo = static_cast<float>(low), span = static_cast<float>(high - low);
    fill_with<float>(t, or_default(generator), [=](std::mt19937_64& e) { return lo + span * uniform_float(e); });
  } else {
    fill_with<double>(t, or_default(generator), [=](std::mt19937_64& e) { return low + (high - low) * uniform_double(e); });
  }
  t.bump_version();
}

void normal_(const Tensor& t, double mean, double std, Generator* generator) {
  if (record::active() && generator == nullptr) {
    return record::in_place("normal_", {t}, [=](const Ts& x) { normal_(x[0], mean, std); });
  }
  if (generator != nullptr) record::unsupported("random numbers from a cr.Generator object");
  require_float(t.dtype(), "normal_");
  if (std < 0) fail<ValueError>("normal_: std must be non-negative, got ", std);
  // Box-Muller, one value per pair of uniforms; the second of the pair is kept for the next draw.
  auto draw_normal = [mean, std, spare = 0.0, has_spare = false](std::mt19937_64& e) mutable {
    if (has_spare) {
      has_spare = false;
      return mean + std * spare;
    }
    const double u1 = 1.0 - uniform_double(e);  // in (0, 1]: log is finite
    const double u2 = uniform_double(e);
    const double radius = std::sqrt(-2.0 * std::log(u1));
    spare = radius * std::sin(2.0 * M_PI * u2);
    has_spare = true;
    return mean + std * radius * std::cos(2.0 * M_PI * u2);
  };
  if (t.dtype() == DType::Float32) {
    fill_with<float>(t, or_default(generator), [&](std::mt19937_64& e) { return static_cast<float>(draw_normal(e)); });
  } else {
    fill_with<double>(t, or_default(generator), draw_normal);
  }
  t.bump_version();
}

Tensor rand(const Shape& shape, DType dtype, Generator* generator) {
  require_float(dtype, "rand");
  Tensor t = Tensor::empty(shape, dtype);
  uniform_(t, 0.0, 1.0, generator);
  return t;
}

Tensor randn(const Shape& shape, DType dtype, Generator* generator) {
  require_float(dtype, "randn");
  Tensor t = Tensor::empty(shape, dtype);
  normal_(t, 0.0, 1.0, generator);
  return t;
}

Tensor randint(std::int64_t low, std::int64_t high, const Shape& shape, Generator* generator) {
  if (record::active() && generator == nullptr) {
    return record::result("randint", {}, [=](const Ts&) { return randint(low, high, shape); });
  }
  if (generator != nullptr) record::unsupported("random numbers from a cr.Generator object");
  if (low >= high) fail<ValueError>("randint: expected low < high, got low=", low, " and high=", high);
  Tensor t = Tensor::empty(shape, DType::Int64);
  const std::uint64_t span = static_cast<std::uint64_t>(high) - static_cast<std::uint64_t>(low);
  fill_with<std::int64_t>(t, or_default(generator), [=](std::mt19937_64& e) {
    // Rejection sampling: no modulo bias.
    const std::uint64_t limit = span == 0 ? 0 : (~std::uint64_t{0} / span) * span;
    std::uint64_t x = e();
    while (limit != 0 && x >= limit) x = e();
    return static_cast<std::int64_t>(static_cast<std::uint64_t>(low) + (span == 0 ? x : x % span));
  });
  return t;
}

Tensor randperm(std::int64_t n, Generator* generator) {
  if (record::active() && generator == nullptr) return record::result("randperm", {}, [=](const Ts&) { return randperm(n); });
  if (generator != nullptr) record::unsupported("random numbers from a cr.Generator object");
  if (n < 0) fail<ValueError>("randperm: n must be non-negative, got ", n);
  Tensor t = Tensor::empty({n}, DType::Int64);
  std::int64_t* data = t.data_as<std::int64_t>();
  for (std::int64_t i = 0; i < n; ++i) data[i] = i;
  or_default(generator).locked([&](std::mt19937_64& engine) {
    for (std::int64_t i = n - 1; i > 0; --i) {
      const std::uint64_t j = engine() % static_cast<std::uint64_t>(i + 1);
      std::swap(data[i], data[j]);
    }
  });
  return t;
}

}  // namespace chainrule
