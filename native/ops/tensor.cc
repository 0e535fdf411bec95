// tensor.cc: the arguments of the ops in tensor.h, read and checked once for both backends.
#include "ops/tensor.h"

#include "common/op.h"

namespace pstal {

// first_nonfinite(x): the autograd layer's anomaly check.
PSTAL_OP(first_nonfinite) {
  FirstNonfinite a;
  a.n = args.buf_size(0, "x");
  a.x = args.buf(0, a.n, "x");
  return Napi::Number::New(args.env(), (double)first_nonfinite(a));
}

// copy(src, src_offset, dst, dst_offset, n)
PSTAL_OP(copy) {
  Copy a;
  a.n = args.i64(4, "n"), a.src_offset = args.i64(1, "src_offset"), a.dst_offset = args.i64(3, "dst_offset");
  PSTAL_CHECK(args, a.n >= 0 && a.src_offset >= 0 && a.dst_offset >= 0, "offsets and count must be non-negative");
  a.src = args.buf(0, a.src_offset + a.n, "src");
  a.dst = args.buf(2, a.dst_offset + a.n, "dst");
  copy(a);
  return args.env().Undefined();
}

}  // namespace pstal
