// device.cu: the CUDA-only ops of ops/device.h (a .cu file, so only the CUDA addon compiles it).
#include "common/op.h"
#include "ops/device.h"

namespace pstal {

PSTAL_OP(device_info) { return to_js(args.env(), device_info()); }

// set_tf32(on)
PSTAL_OP(set_tf32) {
  set_tf32(args.flag(0, "on"));
  return args.env().Undefined();
}

PSTAL_OP(synchronize) {
  synchronize();
  return args.env().Undefined();
}

}  // namespace pstal
