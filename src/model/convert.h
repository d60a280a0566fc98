// Conversion entry points: plan a conversion from its arguments, describe a plan for --dry-run,
// and run one end to end with safe output handling.
#pragma once

#include <functional>
#include <ostream>
#include <string>

#include "engine/plan.h"
#include "model/convert_args.h"

namespace mcaconv {

enum class Direction { kHfToMca, kMcaToHf, kMcaToMca };

// As the reference decides (mca-format.md 9.1): an mca_config.json in the adapter folder (if
// given) or else in the checkpoint folder means MCA -> HF.
Direction DetectDirection(const ConvertArgs& args);

// Plans the whole conversion from file headers alone. Throws Error on bad input or arguments.
Plan PlanHfToMca(const ConvertArgs& args);
Plan PlanMcaToHf(const ConvertArgs& args);

// The plan for any conversion the arguments describe: full models either way, or LoRA adapters
// (MCA adapter folder -> PEFT, PEFT -> MCA adapter folder) when --adapter_path is given.
Plan PlanConversion(const ConvertArgs& args, Direction direction);

// A human summary of a plan: files, tensors, bytes, copy operations, replica checks, and the peak
// private memory the executor needs.
std::string DescribePlan(const Plan& plan, Direction direction);

// Runs a conversion: plans it, builds the output in a temporary sibling folder, and renames it
// into place only when everything succeeded. Narration goes to `log` (verbosity from args);
// `progress` (may be empty) receives bytes done and total. Returns 0; throws Error on failure,
// after removing the temporary folder.
int RunConvert(const ConvertArgs& args, std::ostream& log,
               const std::function<bool(uint64_t, uint64_t)>& progress = {});

}  // namespace mcaconv
