// Typed errors of the core. The binding layer maps each one to the Python exception that
// API.md names; nothing here knows about Python.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace chainrule {

// Incompatible or invalid shapes and values -> Python ValueError.
struct ValueError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// A dtype an op cannot take -> Python TypeError.
struct TypeError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// A dim or index out of range -> Python IndexError.
struct IndexError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// An allocation the machine cannot satisfy -> Python MemoryError.
struct MemoryError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// Misuse that is neither of the above (e.g. a freed graph) -> Python RuntimeError.
struct RuntimeError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A message piece: anything streamable, and shapes printed as Python prints a tuple.
template <typename T>
void write_part(std::ostream& out, const T& part) {
  out << part;
}
inline void write_part(std::ostream& out, const std::vector<std::int64_t>& shape) {
  out << '(';
  for (std::size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
  out << (shape.size() == 1 ? ",)" : ")");
}

// Builds a message from pieces and throws it: fail<ValueError>("reshape: ", shape, ...).
template <typename Error, typename... Parts>
[[noreturn]] void fail(const Parts&... parts) {
  std::ostringstream out;
  (write_part(out, parts), ...);
  throw Error(out.str());
}

}  // namespace chainrule
