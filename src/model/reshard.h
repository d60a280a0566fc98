// Offline MCA -> MCA resharding (--reshard): an MCA checkpoint rewritten for other TP / PP / VPP /
// EP sizes or another expert layout, in one pass and without an intermediate HF copy.
//
// The target config is what HF -> MCA would build from the HF config this checkpoint converts
// to, with the given parallel arguments; the result is byte-identical to converting MCA -> HF ->
// MCA. Each target piece's HF box is intersected with the source layout's primary pieces, so every
// element is copied straight from the rank file that holds it; replicas in the source are checked
// as in MCA -> HF.
#pragma once

#include "engine/plan.h"
#include "model/convert_args.h"

namespace mcaconv {

Plan PlanReshard(const ConvertArgs& args);

}  // namespace mcaconv
