// LoRA adapters between ROLL's MCA adapter folders (mca-format.md section 8) and PEFT.
//
// An MCA adapter folder holds the base model's mca_config.json and one sub-folder per adapter
// (adapter_config.json + MCA rank files of lora_A/lora_B tensors). A PEFT adapter is
// adapter_config.json + adapter_model.safetensors with "base_model.model.<HF module>.lora_X.weight"
// keys; PEFT saves the adapter named "default" at the root and others in sub-folders.
#pragma once

#include "engine/plan.h"
#include "model/convert_args.h"

namespace mcaconv {

// --adapter_path is an MCA adapter folder (it has mca_config.json): write PEFT adapters. Base
// weights are not read.
Plan PlanMcaAdapterToPeft(const ConvertArgs& args);

// --adapter_path is a PEFT adapter (adapter_config.json at its root and/or in sub-folders) of
// the HF model at --checkpoint_path: write an MCA adapter folder for the requested TP/PP/EP.
// Only the base config.json is read.
Plan PlanPeftToMcaAdapter(const ConvertArgs& args);

}  // namespace mcaconv
