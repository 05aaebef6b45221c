#!/usr/bin/env bash
# Generate the benchmark world of one size and load it into the benchmark servers, reusing
# whatever is already loaded for the same generated files (so a second run only checks).
#   scripts/bench/prepare.sh S|M|L [--directory-only]
# World files: .local/bench/world/<size>/ (see generate.py). Prints that directory.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/env.sh"
size=${1:?usage: prepare.sh S|M|L [--directory-only]}
out=$BENCH_DIR/world/$size
mkdir -p "$out"
python3 "$here/generate.py" "$size" "$out" >/dev/null
"$here/dirsrv.sh" load "$out/directory.ldif"
[ "${2:-}" = --directory-only ] || "$here/mm.sh" load "$size" "$out"
echo "$out"
