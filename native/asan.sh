#!/usr/bin/env bash
# Builds the addon and the C++ unit test with AddressSanitizer + UBSan (CMake, offline), runs the C++ test under
# ctest, then runs the whole WAL test suite (test/wal) against the sanitized addon. Any report fails the run.
#   npm run test:native-asan            (uses compiled tests in dist/; OUT=.build/wal/out to use another build)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-dist}"
cmake -S . -B build/asan -DTETCD_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build/asan -j2
ctest --test-dir build/asan --output-on-failure
if [ ! -f "$OUT/test/run.js" ]; then
  echo "asan: $OUT/test/run.js not found; build the TypeScript first (npm run build:ts)" >&2
  exit 1
fi
# The sanitizer runtimes must be loaded before anything else in the (uninstrumented) node process.
ASAN_LIB="$(g++ -print-file-name=libasan.so)"
UBSAN_LIB="$(g++ -print-file-name=libubsan.so)"
# Node itself is not instrumented and keeps memory alive at exit by design, so leak checking is off; heap
# errors, use-after-free, overflows and undefined behaviour in the addon abort the test process.
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1:handle_segv=0:allow_user_segv_handler=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export TETCD_WAL_ADDON="$PWD/build/asan/tetcd_wal.node"
LD_PRELOAD="$ASAN_LIB $UBSAN_LIB" node "$OUT/test/run.js" wal
