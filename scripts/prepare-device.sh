#!/usr/bin/env bash
# prepare-device.sh: packs what scripts/gpu-check.sh needs on a bare, offline GPU machine (no npm
# registry, perhaps no Node.js) into .device/ (git-ignored), from this checkout after `npm install`:
#   node.xz                 this machine's node binary (used there only when it has no node)
#   node_modules.tar.xz     the runtime dependencies plus ava and ts-node/typescript (tests, bench)
#   pstal.node              the CPU addon (built here: generic x86-64, no -march=native)
#   pstal_cuda.node         the CUDA addon (PSTAL_CUDA_ARCH=90-real npm run build:cuda first, for an H100/H200)
#   THUMOS14/               the annotations benchmarks/stage1.ts synthesizes features for (PSTAL_THUMOS14)
#   HR-Pro/                 the reference's Python files (scripts/bench-reference-stage1.py reads some), exported
#                           from a clone or mirror (PSTAL_HRPRO_REFERENCE, or PSTAL_REFERENCE); never committed, only carried
# Then hand the checkout with .device/ to the GPU machine and run `bash scripts/gpu-check.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."
D=.device
rm -rf "$D"; mkdir -p "$D"
xz -T0 -6 -c "$(command -v node)" > "$D/node.xz"
deps=$(node -e "
const fs = require('fs');
const seen = new Set();
const walk = (n) => { if (seen.has(n)) return; seen.add(n);
  const p = JSON.parse(fs.readFileSync('node_modules/' + n + '/package.json'));
  for (const d of Object.keys({ ...p.dependencies, ...p.optionalDependencies })) if (fs.existsSync('node_modules/' + d)) walk(d); };
for (const r of [...Object.keys(require('./package.json').dependencies), 'ava', 'ts-node', 'typescript']) walk(r);
console.log([...seen].map((n) => 'node_modules/' + n).join('\n'));")
echo "$deps" | tar -cf - -T - | xz -T0 -6 > "$D/node_modules.tar.xz"
cp build/Release/pstal.node "$D/"
if [ -f build-cuda/Release/pstal_cuda.node ]; then cp build-cuda/Release/pstal_cuda.node "$D/"; else echo "no CUDA addon built (npm run build:cuda)" >&2; fi
cp -r "${PSTAL_THUMOS14:-../shared/data/THUMOS14}" "$D/THUMOS14"
REF=${PSTAL_HRPRO_REFERENCE:-${PSTAL_REFERENCE:-}}
if [ -n "$REF" ]; then  # its Python files, from HEAD of a clone or mirror, else copied
  mkdir -p "$D/HR-Pro"
  if git -C "$REF" rev-parse -q --verify HEAD >/dev/null 2>&1; then
    # file by file (a mirror may lack its large data blobs, which `git archive` reports as errors)
    git -C "$REF" ls-tree -r --name-only HEAD | grep '\.py$' | while read -r f; do
      mkdir -p "$D/HR-Pro/$(dirname "$f")"
      git -C "$REF" show "HEAD:$f" > "$D/HR-Pro/$f"
    done
  else
    (cd "$REF" && find . -name '*.py' -exec cp --parents {} "$OLDPWD/$D/HR-Pro/" \;)
  fi
fi
du -sh "$D"/*
