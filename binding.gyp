{
  # CPU addon. Every .cc under native/common, native/ops (each op's arguments, registered once with
  # PSTAL_OP for both addons) and native/cpu (the kernels) is compiled, so adding an op family
  # needs no edit here. native/ops/*.cu (CUDA-only ops) and native/cuda are the CUDA addon's.
  "targets": [{
    "target_name": "pstal",
    "sources": [
      "<!@(node -p \"['common','ops','cpu'].flatMap(d=>require('fs').readdirSync('native/'+d).filter(f=>f.endsWith('.cc')).sort().map(f=>'native/'+d+'/'+f)).join(' ')\")"
    ],
    "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "native"],
    # PSTAL_BENCH_OPENBLAS=1 at build time: benchmarks/ops.ts can compare our GEMM with OpenBLAS.
    "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "<!(node -p \"'PSTAL_WITH_OPENBLAS=' + (process.env.PSTAL_BENCH_OPENBLAS === '1' ? 1 : 0)\")"],
    "cflags!": ["-fno-exceptions", "-O2"],
    "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-O2"],
    "cflags_cc": ["-std=c++20", "-O3", "-fexceptions", "-ffp-contract=fast", "-fno-math-errno", "-pthread"],
    "ldflags": ["-pthread", "-ldl"],
    "libraries": ["-ldl"],
    "xcode_settings": {"GCC_ENABLE_CPP_EXCEPTIONS": "YES", "OTHER_CPLUSPLUSFLAGS": ["-std=c++20", "-O3"]},
    # PSTAL_SANITIZE=1 at build time (or `node-gyp rebuild -- -Dpstal_sanitize=1`): AddressSanitizer +
    # UndefinedBehaviorSanitizer, -O1 -g; load it with LD_PRELOAD of libasan (scripts/asan.sh does it all)
    "conditions": [
      ["pstal_sanitize==1", {
        "cflags_cc": ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer", "-g", "-O1"],
        "ldflags": ["-fsanitize=address,undefined"]
      }]
    ]
  }],
  "variables": {
    "pstal_sanitize%": "<!(node -p \"process.env.PSTAL_SANITIZE === '1' ? 1 : 0\")"
  }
}
