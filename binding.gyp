{
  # CPU addon. Every .cc under native/common and native/cpu is compiled; each op file registers
  # its ops with PSTAL_OP (native/common/op.h), so adding an op family needs no edit here.
  "targets": [{
    "target_name": "pstal",
    "sources": [
      "<!@(node -p \"['common','cpu'].flatMap(d=>require('fs').readdirSync('native/'+d).filter(f=>f.endsWith('.cc')).sort().map(f=>'native/'+d+'/'+f)).join(' ')\")"
    ],
    "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "native"],
    "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
    "cflags!": ["-fno-exceptions", "-O2"],
    "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-O2"],
    "cflags_cc": ["-std=c++17", "-O3", "-fexceptions", "-ffp-contract=fast", "-fno-math-errno", "-pthread"],
    "ldflags": ["-pthread", "-ldl"],
    "libraries": ["-ldl"],
    "xcode_settings": {"GCC_ENABLE_CPP_EXCEPTIONS": "YES", "OTHER_CPLUSPLUSFLAGS": ["-std=c++17", "-O3"]}
  }]
}
