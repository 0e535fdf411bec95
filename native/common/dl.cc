// ---------------------------------------------------------------------------------------------
// dl.cc: dlopen_global(path): loads a shared library into the process for good (RTLD_NOW |
// RTLD_GLOBAL, never closed) and returns the path the dynamic linker mapped.
//
// lib/runtime/backend.ts loads cuBLAS with it, from wherever its search found it, before it loads
// the CUDA addon: the addon's DT_NEEDED libcublas.so.N then resolves to the copy already loaded
// (the dynamic linker matches a needed name against the sonames of loaded objects first), so the
// addon carries no rpath and the user no LD_LIBRARY_PATH. Node's own process.dlopen cannot do
// this: it closes any library that is not an addon.
// ---------------------------------------------------------------------------------------------
#include "common/op.h"

#if defined(__unix__) || defined(__APPLE__)
#include <dlfcn.h>
#if defined(__GLIBC__)
#include <link.h>
#endif
#endif

namespace pstal {

PSTAL_OP(dlopen_global) {
  std::string file = args.str(0, "path");
#if defined(__unix__) || defined(__APPLE__)
  dlerror();
  void* h = dlopen(file.c_str(), RTLD_NOW | RTLD_GLOBAL);
  if (!h) {
    const char* e = dlerror();
    args.fail(e ? std::string(e) : "cannot load " + file);
  }
  std::string loaded = file;
#if defined(__GLIBC__)
  struct link_map* map = nullptr;
  if (dlinfo(h, RTLD_DI_LINKMAP, &map) == 0 && map && map->l_name && map->l_name[0]) loaded = map->l_name;
#endif
  // the handle is kept: the library stays loaded for the process's life
  return Napi::String::New(args.env(), loaded);
#else
  args.fail("not supported on this platform");
#endif
}

}  // namespace pstal
