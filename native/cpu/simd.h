// simd.h: the x86 vector instructions the hand-written CPU kernels may use, and <immintrin.h>.
//
// simd_avx2() / simd_avx512(): what the CPU has, capped by PSTAL_SIMD ('avx512', 'avx2' or
// 'generic'; read once), so that one machine runs, and the tests compare bit for bit, every path
// a kernel has. Every vector path gives the same bits as the scalar one (each kernel says how);
// compiler-cloned loops (target_clones) are dispatched by the loader and not capped: they are
// element-wise, the same bits at every width.
//
// GCC 12 warns "'__Y' may be used uninitialized" inside its own AVX-512 intrinsics (the
// _mm512_undefined_* they start from; GCC bug 105593); the warning is located in the header, so it
// is silenced for the header's lines only.
#pragma once
#if defined(__x86_64__) || defined(__i386__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#endif

namespace pstal {
bool simd_avx2();    // AVX2 and FMA3
bool simd_avx512();  // AVX-512F
const char* simd_level();  // "avx512", "avx2" or "generic": the best the two allow
}  // namespace pstal
