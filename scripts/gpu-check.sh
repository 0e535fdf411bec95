#!/usr/bin/env bash
# gpu-check.sh: the checks only a GPU can make, in one call, sized to fit a time limit
# (GPU_CHECK_BUDGET, below), on any CUDA machine with the addon built:
#   1. the machine: GPU, driver, node, torch; the CUDA addon loads and names its device
#   2. test/gpu/cuda.test.ts: every op on the GPU against the CPU backend, outputs and gradients, and
#      stage-1 training steps on both devices
#   3. `npm run bench -- --only ops,stage1 --device cuda`: our GPU rows, and the stage-1 rows beside
#      the PyTorch reference's own S_train / S_test on the same GPU (scripts/bench-reference-stage1.py)
#   4. only if step 2 failed and time is left: the test file under compute-sanitizer (memcheck)
#   5. (profile) scripts/profile-stage1.ts on cuda at D = 2048 and 256, and the reference's S_train
#      under torch.profiler on the same D = 2048 files
# GPU_CHECK_PHASES picks among test, bench, profile (default: test,bench).
# Logs and the bench JSON go to OUTDIR (argument, else $OUT, else ./gpu-check-out).
# On a bare offline machine, .device/ from scripts/prepare-device.sh supplies node, node_modules,
# the built addons, the THUMOS14 annotations and the reference's files.
# Time limits (seconds): GPU_CHECK_BUDGET (whole script, default 400), GPU_CHECK_TEST (150),
# GPU_CHECK_BENCH (200); GPU_CHECK_BENCH_ARGS: bench arguments, ahead of (so taking precedence over)
# the defaults; GPU_CHECK_PROFILE_DIMS (2048 256).
set -u
cd "$(dirname "$0")/.."
OUTDIR=${1:-${OUT:-$PWD/gpu-check-out}}
mkdir -p "$OUTDIR"
BUDGET=${GPU_CHECK_BUDGET:-400}
say() { echo "== [${SECONDS} s] $*"; }
left() { echo $((BUDGET - SECONDS)); }

if [ -d .device ]; then
  mkdir -p /tmp/pstal-node/bin
  xz -dc .device/node.xz > /tmp/pstal-node/bin/node && chmod +x /tmp/pstal-node/bin/node
  export PATH=/tmp/pstal-node/bin:$PATH
  [ -d node_modules/ava ] || tar -xJf .device/node_modules.tar.xz
  mkdir -p build/Release build-cuda/Release
  cp .device/pstal.node build/Release/
  [ -f .device/pstal_cuda.node ] && cp .device/pstal_cuda.node build-cuda/Release/
  [ -d .device/THUMOS14 ] && export PSTAL_THUMOS14=$PWD/.device/THUMOS14
  [ -d .device/HR-Pro ] && export PSTAL_HRPRO_REFERENCE=$PWD/.device/HR-Pro
fi
HRPRO_REFERENCE=${PSTAL_HRPRO_REFERENCE:-${PSTAL_REFERENCE:-}}  # a clone or mirror of pipixin321/HR-Pro, if any
# The addon has no rpath: lib/runtime/cublas.ts finds cuBLAS when it loads it. Where the system's
# loader finds none, python3's (PyTorch's wheel) goes on LD_LIBRARY_PATH too, for ldd's line below.
if ! ldd build-cuda/Release/pstal_cuda.node 2>/dev/null | grep -q 'libcublas.so.[0-9]* => /'; then
  lib=$(python3 -c "
import glob, sys
c = [p for d in sys.path if d for p in glob.glob(d + '/nvidia/cu*/lib/libcublas.so.*') + glob.glob(d + '/nvidia/cublas/lib/libcublas.so.*')]
print(c[0].rsplit('/', 1)[0] if c else '')" 2>/dev/null)
  [ -n "$lib" ] && export LD_LIBRARY_PATH=$lib:${LD_LIBRARY_PATH:-}
fi
TSN="node -r ts-node/register/transpile-only"

say "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,temperature.gpu --format=csv 2>&1
nproc; node --version
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')" 2>&1
ldd build-cuda/Release/pstal_cuda.node | grep -E 'cublas|not found'
$TSN -e "const b = require('./lib/runtime/backend'); const a = b.cuda(); console.log('addon', a.backend, JSON.stringify(b.cudaDeviceInfo()))" 2>&1 | tee "$OUTDIR/load.log"

PHASES=",${GPU_CHECK_PHASES:-test,bench},"
has() { [[ "$PHASES" == *",$1,"* ]]; }
test_rc=0
if has test; then
say "test/gpu/cuda.test.ts"
set -o pipefail
timeout "${GPU_CHECK_TEST:-150}" node node_modules/ava/entrypoints/cli.mjs --verbose test/gpu/cuda.test.ts > "$OUTDIR/cuda-test.log" 2>&1
test_rc=$?
set +o pipefail
grep -E '✘|✔|passed|failed|skipped|known failure|uncaught|crash|exited|timed out|Error' "$OUTDIR/cuda-test.log" | head -150
echo "cuda.test.ts rc=$test_rc"
fi

if has profile; then
  say "profile a stage-1 iteration on cuda, ours then the reference's"
  for dim in ${GPU_CHECK_PROFILE_DIMS:-2048 256}; do
    timeout 120 $TSN scripts/profile-stage1.ts --device cuda --dim $dim --iterations 3 --data /tmp/pstal-prof-$dim 2>&1 | tee "$OUTDIR/profile-ours-$dim.log"
  done
  [ -n "$HRPRO_REFERENCE" ] && [ "${GPU_CHECK_PROFILE_REFERENCE:-1}" != 0 ] && timeout 120 python3 scripts/bench-reference-stage1.py --data /tmp/pstal-prof-2048 --reference "$HRPRO_REFERENCE" \
    --device cuda --iterations 2 --no-test --profile > "$OUTDIR/profile-reference-2048.log" 2>&1 && tail -32 "$OUTDIR/profile-reference-2048.log"
fi

if has bench; then
say "bench ops + stage1 on cuda (reference on the same GPU)"
b=$(( $(left) - 20 )); [ "$b" -gt "${GPU_CHECK_BENCH:-200}" ] && b=${GPU_CHECK_BENCH:-200}
if [ "$b" -gt 30 ]; then
  PSTAL_PYTHON=${PSTAL_PYTHON:-python3} timeout "$b" $TSN benchmarks/run.ts --only ops,stage1 --device cuda --quick ${GPU_CHECK_BENCH_ARGS:-} \
    --dims 2048,256 --iterations 10 --test-videos 40 --precision fp32,tf32 --out "$OUTDIR/bench-cuda.json" > "$OUTDIR/bench.log" 2>&1
  echo "bench rc=$?"; tail -40 "$OUTDIR/bench.log"
else echo "no time left for the bench"; fi
fi

if [ "$test_rc" -ne 0 ] && command -v compute-sanitizer >/dev/null && [ "$(left)" -gt 40 ]; then
  say "compute-sanitizer memcheck over test/gpu/cuda.test.ts ($(( $(left) - 15 )) s)"
  timeout $(( $(left) - 15 )) compute-sanitizer --target-processes all --print-limit 40 --log-file "$OUTDIR/sanitizer.log" \
    node node_modules/ava/entrypoints/cli.mjs test/gpu/cuda.test.ts > "$OUTDIR/sanitized-test.log" 2>&1
  grep -m 60 -E 'Invalid|Error|at 0x|by thread|Address' "$OUTDIR/sanitizer.log"
fi
say "done"
