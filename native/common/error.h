// error.h: OpError, the one exception a kernel throws (an argument, shape, CUDA or cuBLAS error).
// Napi-free, so kernels need nothing of Node; the op registry (op.cc) turns it into a JS Error
// whose message starts with the op's name.
#pragma once
#include <stdexcept>
#include <string>

namespace pstal {

struct OpError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace pstal
