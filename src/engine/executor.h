// Runs a Plan: creates each output file at its final size, writes the format writer's blobs,
// performs the CopyOps in parallel, patches CRCs, and syncs. Inputs are mapped read-only.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "engine/plan.h"

namespace mcaconv {

struct ExecuteOptions {
  int threads = 0;  // 0: one per online CPU
  // Optional progress sink, called from worker threads (serialized by the executor) with bytes
  // of tensor data written so far and the total. Returning false cancels the run (kIo error).
  std::function<bool(uint64_t done, uint64_t total)> progress;
};

// Writes every file of `plan` under `output_dir`, which must exist. Runs plan.checks first, so a
// replica mismatch stops the run before output is produced. Throws Error on failure; files
// already written are left for the caller to remove (the CLI builds in a temporary folder).
void ExecutePlan(const Plan& plan, const std::string& output_dir, const ExecuteOptions& options);

}  // namespace mcaconv
