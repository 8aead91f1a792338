#!/usr/bin/env bash
# Runs every fuzz target of the module for N seconds each (default 10).
#   tools/fuzz.sh            # 10 s per target
#   tools/fuzz.sh 3          # what .ci/run uses
#   tools/fuzz.sh 60 httpd   # only the targets of ./httpd
# New failing inputs are written to PKG/testdata/fuzz/TARGET/ by go test:
# commit them with the fix, they become regression tests of `go test`.
set -euo pipefail
secs="${1:-10}"
only="${2:-}"
cd "$(dirname "$0")/.."
status=0
# Packages with fuzz targets: directories of *_test.go files defining func FuzzXxx.
for dir in $(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do
  pkg="./${dir#./}"
  if [[ -n "$only" && "$pkg" != "./$only" ]]; then continue; fi
  for target in $(grep -h '^func Fuzz' "$dir"/*_test.go | sed -E 's/^func (Fuzz[A-Za-z0-9_]*).*/\1/' | sort -u); do
    echo "== $pkg $target (${secs}s)"
    if ! go test "$pkg" -run '^$' -fuzz "^${target}\$" -fuzztime "${secs}s" 2>&1 | tail -n 20; then
      status=1
    fi
  done
done
exit $status
