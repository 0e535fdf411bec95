// synth.cu: synthetic features are generated on the host only (native/cpu/synth.cc); lib/data/synth.ts
// calls the CPU addon. This keeps the op table of both addons one (native/ops/synth.cc).
#include "common/error.h"
#include "ops/synth.h"

namespace pstal {

void synth_features(const SynthFeatures&) {
  throw OpError("synthetic features are generated on the CPU: call synth_features on the CPU addon");
}

}  // namespace pstal
