#!/usr/bin/env bash
# Builds chainrule's C++ core, installs it (library, headers, CMake package) into a temporary
# prefix, then builds examples/cpp against that install with find_package(chainrule) and runs
# it: the check that a C++ program outside this tree can use chainrule::core.
#
#   tools/build_cpp_example.sh          # in a fresh temporary directory, removed afterwards
#   tools/build_cpp_example.sh DIR      # in DIR (kept, and reused by the next run)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
if [ $# -ge 1 ]; then
  work="$1"
  mkdir -p "$work"
else
  work="$(mktemp -d "${TMPDIR:-/tmp}/chainrule-cpp.XXXXXX")"
  trap 'rm -rf "$work"' EXIT
fi
work="$(cd "$work" && pwd)"
jobs="$(nproc 2>/dev/null || echo 2)"
log="$work/build.log"
: > "$log"

step() {  # step DESCRIPTION COMMAND...: runs the command with its output in the log
  echo "build_cpp_example: $1"
  shift
  if ! "$@" >> "$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "build_cpp_example: failed: $*" >&2
    exit 1
  fi
}

step "configuring the core" cmake -S "$root" -B "$work/core" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_INSTALL_PREFIX="$work/prefix"
step "building the core" cmake --build "$work/core" -j "$jobs"
step "installing into $work/prefix" cmake --install "$work/core"
# The consumer and the installed headers compile without a warning.
step "configuring examples/cpp" cmake -S "$root/examples/cpp" -B "$work/example" \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$work/prefix" -DCMAKE_CXX_FLAGS=-Werror
step "building examples/cpp" cmake --build "$work/example" -j "$jobs"
echo "build_cpp_example: running it"
"$work/example/chainrule_example"
