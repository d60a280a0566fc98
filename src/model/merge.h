// Merged LoRA export (--merge_lora NAME): a full HF model equal to base + s * B @ A on every
// weight the adapter targets, computed in fp32 and cast once to the output dtype. s is
// lora_alpha / r, or lora_alpha / sqrt(r) with use_rslora, with PEFT's alpha_pattern and
// rank_pattern overrides (formats.md 5.5).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "engine/plan.h"
#include "model/convert_args.h"

namespace mcaconv {

// The base HF checkpoint (--checkpoint_path) copied to HF shards, cast per --bf16/--fp16, with
// config.json and tokenizer files. MergeLora then rewrites the adapted weights in place.
Plan PlanMergedBase(const ConvertArgs& args);

// After `plan` (from PlanMergedBase) was executed into `output_dir`: adds the adapter named
// args.merge_lora (from the MCA adapter folder or PEFT adapter at --adapter_path) to every
// weight it targets, reading the base weights from the inputs, not from the output.
void MergeLora(const Plan& plan, const ConvertArgs& args, const std::string& output_dir);

}  // namespace mcaconv
