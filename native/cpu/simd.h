// simd.h: <immintrin.h> for the x86 kernels. GCC 12 warns "'__Y' may be used uninitialized" inside
// its own AVX-512 intrinsics (the _mm512_undefined_* they start from; GCC bug 105593); the warning
// is located in the header, so it is silenced for the header's lines only.
#pragma once
#if defined(__x86_64__) || defined(__i386__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#endif
