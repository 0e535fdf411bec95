// hd.h: PSTAL_HD marks a function that serves the CPU kernels and, compiled by nvcc, the CUDA ones.
#pragma once
#if defined(__CUDACC__)
#define PSTAL_HD __host__ __device__
#else
#define PSTAL_HD
#endif
