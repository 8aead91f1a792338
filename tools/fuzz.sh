#!/usr/bin/env bash
# Runs every fuzz target of the module for a while each (default 10s).
#   tools/fuzz.sh            # 10 s per target
#   tools/fuzz.sh 5s         # what .ci/run uses (a plain number means seconds)
#   tools/fuzz.sh 1m httpd   # only the targets of ./httpd
# New failing inputs are written to PKG/testdata/fuzz/TARGET/ by go test:
# commit them with the fix, they become regression tests of `go test`.
set -euo pipefail
secs="${1:-10s}"
if [[ "$secs" =~ ^[0-9]+$ ]]; then secs="${secs}s"; fi
only="${2:-}"
cd "$(dirname "$0")/.."
status=0
# Packages with fuzz targets: directories of *_test.go files defining func FuzzXxx.
for dir in $(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do
  pkg="./${dir#./}"
  if [[ -n "$only" && "$pkg" != "./$only" ]]; then continue; fi
  for target in $(grep -h '^func Fuzz' "$dir"/*_test.go | sed -E 's/^func (Fuzz[A-Za-z0-9_]*).*/\1/' | sort -u); do
    echo "== $pkg $target ($secs)"
    if ! go test "$pkg" -run '^$' -fuzz "^${target}\$" -fuzztime "$secs" 2>&1 | tail -n 20; then
      status=1
    fi
  done
done
exit $status
