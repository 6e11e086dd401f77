#!/usr/bin/env bash
# Prints the commands of README.md's first ```bash block, one a line, without their trailing
# comments: the two commands a newcomer runs first. CI runs exactly these, so the README and CI
# cannot drift apart.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
awk '/^```bash/ && !seen { inside = 1; seen = 1; next }
     /^```/ && inside   { exit }
     inside && NF       { sub(/[ \t]+#[^"]*$/, ""); print }' "$root/README.md"
