#!/usr/bin/env bash
# Builds chainrule._core with AddressSanitizer + UndefinedBehaviorSanitizer and runs the test
# suite (or the tests given as arguments) against it, with ASan preloaded into Python.
# Any sanitizer report fails the run.
#
#   tools/sanitize.sh                      # the whole suite but three files (see below)
#   tools/sanitize.sh tests/test_errors.py # any pytest arguments
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="$root/build/sanitize"
stage="$build/stage"

pybind11_dir="$(python -c 'import pybind11; print(pybind11.get_cmake_dir())')"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCHAINRULE_BUILD_PYTHON=ON \
  -DCHAINRULE_SANITIZE=ON -Dpybind11_DIR="$pybind11_dir" > "$build.log"
cmake --build "$build" -j 2 >> "$build.log"

# A private copy of the package with the sanitized module in it.
rm -rf "$stage" && mkdir -p "$stage"
cp -r "$root/python/chainrule" "$stage/"
rm -f "$stage"/chainrule/_core*.so
cp "$build"/_core*.so "$stage/chainrule/"

asan="$(g++ -print-file-name=libasan.so)"
ubsan="$(g++ -print-file-name=libubsan.so)"
# Python itself "leaks" by design at exit: leak checking stays off; everything else is fatal.
# allocator_may_return_null: a huge request must become MemoryError, as without ASan.
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1:allocator_may_return_null=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export PYTHONPATH="$stage${PYTHONPATH:+:$PYTHONPATH}"
if [ $# -eq 0 ]; then
  # The whole suite (fuzz and hostile-argument sweep included), less six files. Three run no
  # code of the sanitized module: test_wheel.py builds and installs a separate, unsanitized wheel
  # with pip (minutes of compiling), test_docs.py builds the documentation with mkdocs, and
  # test_typing.py runs mypy and the stub generator. test_memory.py measures the process's RSS,
  # which ASan's allocator inflates and never gives back (freed blocks wait in its quarantine),
  # so its flat-memory bounds cannot hold here; it runs in the plain suite. test_distributed.py
  # launches mpiexec jobs whose Open MPI runtime was never checked under the preloaded ASan.
  # test_dataloader_workers.py forks worker processes from a process that runs ASan's own
  # threads: in one run of five (2026-12-03) a worker never received its indices and the run
  # hung in Queue.get with no report; its Python-only worker code runs in the plain suite.
  set -- tests --ignore=tests/test_wheel.py --ignore=tests/test_docs.py \
    --ignore=tests/test_typing.py --ignore=tests/test_memory.py \
    --ignore=tests/test_distributed.py --ignore=tests/test_dataloader_workers.py
fi
cd "$root"
log="$build/pytest.log"
set +e
LD_PRELOAD="$asan:$ubsan" python -m pytest -q -p no:cacheprovider "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
if grep -qE "ERROR: AddressSanitizer|runtime error:" "$log"; then
  echo "sanitize.sh: sanitizer reports found (see $log)" >&2
  exit 1
fi
exit "$status"
