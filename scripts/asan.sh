#!/usr/bin/env bash
# asan.sh: the native addon under AddressSanitizer + UndefinedBehaviorSanitizer.
#
# Builds the CPU addon with PSTAL_SANITIZE=1 (binding.gyp: -fsanitize=address,undefined -O1 -g) in a
# scratch folder (build/ stays as it is), then runs the op, autograd, kernel and post-processing tests
# with it (PSTAL_ADDON=<that build>/pstal.node, LD_PRELOAD=libasan: Node itself is not instrumented).
# Any ASan report or UBSan error aborts the test process, so a failing test run is a finding.
#
#   scripts/asan.sh                      # build (a few minutes) and run the default tests
#   scripts/asan.sh test/unit/ops.test.ts     # build and run only these test files
#   ASAN_BUILD=/tmp/pstal-asan scripts/asan.sh   # build folder (reused when present: SKIP_BUILD=1)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="${ASAN_BUILD:-${TMPDIR:-/tmp}/pstal-asan}"
TESTS=("$@")
[ ${#TESTS[@]} -eq 0 ] && TESTS=(test/unit/ops.test.ts test/unit/autograd.test.ts test/unit/native-kernels.test.ts test/unit/postprocess.test.ts)

if [ "${SKIP_BUILD:-0}" != 1 ] || [ ! -f "$BUILD/build/Release/pstal.node" ]; then
  rm -rf "$BUILD" && mkdir -p "$BUILD"
  cp -r "$ROOT/binding.gyp" "$ROOT/native" "$ROOT/package.json" "$BUILD/"
  ln -s "$ROOT/node_modules" "$BUILD/node_modules"
  (cd "$BUILD" && PSTAL_SANITIZE=1 npx node-gyp rebuild -j "${JOBS:-1}" >"$BUILD/build.log" 2>&1) || { tail -40 "$BUILD/build.log"; exit 1; }
fi
ADDON="$BUILD/build/Release/pstal.node"
LIBASAN="$(${CXX:-g++} -print-file-name=libasan.so)"
LIBUBSAN="$(${CXX:-g++} -print-file-name=libubsan.so)"
echo "asan.sh: addon $ADDON; LD_PRELOAD $LIBASAN"

cd "$ROOT"
# detect_leaks=0: V8 and Node keep memory until exit by design; the addon's buffers are checked by
# use-after-free and overflow detection. halt_on_error: the first finding fails the test run.
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=1:detect_stack_use_after_return=0:allocator_may_return_null=1:handle_segv=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export PSTAL_ADDON="$ADDON" PSTAL_NUM_THREADS="${PSTAL_NUM_THREADS:-1}"
LD_PRELOAD="$LIBASAN:$LIBUBSAN" npx ava --serial --timeout=30m "${TESTS[@]}"
