// The HF -> MCA core shared by full-model conversion and LoRA adapter import.
#pragma once

#include <string>
#include <vector>

#include "core/tensor.h"
#include "engine/plan.h"
#include "model/convert_args.h"
#include "model/layout.h"

namespace mcaconv {

// Adds to `plan` one rank file per (tp, pp, ep) under `dir_prefix` + "iter_0000001/...", holding
// the MCA tensors of `layout` gathered from `sources` (one per layout.hf entry, file indices into
// plan.inputs), plus the checks that HF copies of a shared MCA tensor agree.
void PlanRankFilesFromHf(const Layout& layout, const LayoutParams& params,
                         const std::vector<const SourceTensor*>& sources, const ConvertArgs& args,
                         const std::string& dir_prefix, Plan& plan);

}  // namespace mcaconv
