// Random numbers: a Generator (a seeded Mersenne Twister) and the draws that take one. Every
// draw without an explicit generator uses the default one, which manual_seed seeds, so a seed
// makes a whole run repeat; a Generator of one's own keeps one stream (a data loader's
// shuffling, say) apart from the others.
#pragma once
#include <cstdint>
#include <mutex>
#include <random>
#include <vector>

#include "chainrule/tensor.h"

namespace chainrule {

class Generator {
 public:
  static constexpr std::uint64_t kDefaultSeed = 67280421310721ULL;  // PyTorch's default CPU seed

  explicit Generator(std::uint64_t seed = kDefaultSeed) { manual_seed(seed); }
  Generator(const Generator&) = delete;
  Generator& operator=(const Generator&) = delete;

  void manual_seed(std::uint64_t seed);
  std::uint64_t initial_seed() const;
  // Seeds from the operating system's entropy and returns the seed (PyTorch's seed()).
  std::uint64_t seed();
  // The whole state (the twister's 312 words, its position, and the seed), to restore later.
  std::vector<std::uint64_t> get_state() const;
  void set_state(const std::vector<std::uint64_t>& state);

  // Draws run under the lock, in a fixed element order, so a seed gives the same numbers
  // whatever the thread count.
  template <typename Draws>
  void locked(Draws draws) {
    std::lock_guard<std::mutex> lock(mutex_);
    draws(engine_);
  }

 private:
  mutable std::mutex mutex_;
  std::mt19937_64 engine_;
  std::uint64_t seed_ = kDefaultSeed;
};

Generator& default_generator();

void manual_seed(std::uint64_t seed);
std::uint64_t initial_seed();
// `generator` nullptr: the default generator.
Tensor rand(const Shape& shape, DType dtype, Generator* generator = nullptr);   // uniform in [0, 1)
Tensor randn(const Shape& shape, DType dtype, Generator* generator = nullptr);  // standard normal
Tensor randint(std::int64_t low, std::int64_t high, const Shape& shape, Generator* generator = nullptr);
Tensor randperm(std::int64_t n, Generator* generator = nullptr);
// Fills `t` in place with uniform values in [low, high) or normal(mean, std).
void uniform_(const Tensor& t, double low, double high, Generator* generator = nullptr);
void normal_(const Tensor& t, double mean, double std, Generator* generator = nullptr);

}  // namespace chainrule
