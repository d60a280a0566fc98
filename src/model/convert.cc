#include "model/convert.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "core/error.h"
#include "engine/executor.h"

namespace mcaconv {
namespace fs = std::filesystem;

Direction DetectDirection(const ConvertArgs& args) {
  const std::string probe_dir = args.adapter_path.value_or(args.checkpoint_path);
  return fs::exists(fs::path(probe_dir) / "mca_config.json") ? Direction::kMcaToHf
                                                             : Direction::kHfToMca;
}

namespace {

std::string Bytes(uint64_t n) {
  char text[32];
  if (n >= (1ull << 30))
    std::snprintf(text, sizeof(text), "%.2f GiB", n / double(1ull << 30));
  else if (n >= (1ull << 20))
    std::snprintf(text, sizeof(text), "%.2f MiB", n / double(1ull << 20));
  else
    std::snprintf(text, sizeof(text), "%llu B", static_cast<unsigned long long>(n));
  return text;
}

// The executor's private memory: one work item buffer per thread plus the plan itself.
constexpr uint64_t kWorkItemBytes = 16ull << 20;

// Paths must not nest: writing inside an input, or an input inside the output, is refused.
void CheckOutputPath(const ConvertArgs& args) {
  const fs::path output = fs::weakly_canonical(args.output_path);
  for (const auto& input : {std::optional<std::string>(args.checkpoint_path), args.adapter_path}) {
    if (!input) continue;
    const fs::path in = fs::weakly_canonical(*input);
    auto inside = [](const fs::path& child, const fs::path& parent) {
      auto c = child.begin(), p = parent.begin();
      for (; p != parent.end(); ++p, ++c)
        if (c == child.end() || *c != *p) return false;
      return true;
    };
    if (inside(output, in) || inside(in, output))
      ThrowUsage("output path " + args.output_path + " overlaps input " + *input +
                 "; choose a separate folder");
  }
  if (fs::exists(output) && !fs::is_directory(output))
    ThrowUsage("output path " + args.output_path + " exists and is not a folder");
  if (fs::is_directory(output) && !fs::is_empty(output) && !args.overwrite)
    ThrowUsage("output folder " + args.output_path + " is not empty; pass --overwrite to replace it");
}

std::atomic<bool> g_interrupted{false};
extern "C" void OnSignal(int) { g_interrupted = true; }

void WriteSmallFiles(const Plan& plan, const fs::path& dir) {
  for (const auto& text : plan.text_files) {
    const fs::path path = dir / text.relative_path;
    fs::create_directories(path.parent_path());
    std::ofstream out(path, std::ios::binary);
    out << text.content;
    if (!out.flush()) ThrowIo("cannot write " + path.string(), errno);
  }
  for (const auto& copy : plan.copied_files) {
    const fs::path path = dir / copy.relative_path;
    fs::create_directories(path.parent_path());
    std::error_code error;
    fs::copy_file(copy.source_path, path, fs::copy_options::overwrite_existing, error);
    if (error) ThrowIo("cannot copy " + copy.source_path + " to " + path.string(), error.value());
  }
}

// Moves the finished temporary folder to the output path, replacing an old output only now.
void Publish(const fs::path& temp, const fs::path& output) {
  fs::path old;
  if (fs::exists(output)) {
    old = output.string() + ".mcaconv-old-" + std::to_string(::getpid());
    fs::rename(output, old);
  }
  fs::rename(temp, output);
  if (!old.empty()) fs::remove_all(old);
}

}  // namespace

std::string DescribePlan(const Plan& plan, Direction direction) {
  std::ostringstream out;
  uint64_t tensor_bytes = 0, tensors = 0, ops = 0;
  out << (direction == Direction::kHfToMca ? "HF -> MCA" : "MCA -> HF") << " plan\n";
  out << "  inputs: " << plan.inputs.size() << " weight files\n";
  for (const auto& file : plan.files) {
    uint64_t bytes = 0;
    for (const auto& t : file.tensors) bytes += t.nbytes();
    tensor_bytes += bytes;
    tensors += file.tensors.size();
    ops += file.ops.size();
    out << "  " << file.relative_path << ": " << file.tensors.size() << " tensors, "
        << Bytes(file.layout.size) << "\n";
  }
  for (const auto& text : plan.text_files)
    out << "  " << text.relative_path << ": " << Bytes(text.content.size()) << "\n";
  for (const auto& copy : plan.copied_files) out << "  " << copy.relative_path << " (copied)\n";
  const unsigned threads = std::max(1u, std::thread::hardware_concurrency());
  out << "  total: " << plan.files.size() << " weight files, " << tensors << " tensors, "
      << Bytes(tensor_bytes) << " of tensor data, " << ops << " copy operations, "
      << plan.checks.size() << " replica checks\n";
  out << "  peak private memory: about " << Bytes(threads * kWorkItemBytes)
      << " of work buffers plus the plan (independent of model size)\n";
  return out.str();
}

int RunConvert(const ConvertArgs& args, std::ostream& log,
               const std::function<bool(uint64_t, uint64_t)>& progress) {
  const Direction direction = DetectDirection(args);
  if (args.adapter_path)
    ThrowUnsupported("LoRA adapter conversion (--adapter_path) is not implemented yet");
  CheckOutputPath(args);

  const auto started = std::chrono::steady_clock::now();
  const Plan plan = direction == Direction::kHfToMca ? PlanHfToMca(args) : PlanMcaToHf(args);
  CheckCoverage(plan);
  if (args.verbosity >= 1 || args.dry_run) log << DescribePlan(plan, direction);
  if (args.dry_run) return 0;

  const fs::path output = fs::absolute(args.output_path);
  const fs::path temp = output.parent_path() /
                        ("." + output.filename().string() + ".mcaconv-tmp-" + std::to_string(::getpid()));
  fs::create_directories(output.parent_path());
  fs::remove_all(temp);
  fs::create_directories(temp);
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  try {
    ExecuteOptions options;
    options.threads = args.threads;
    options.progress = [&](uint64_t done, uint64_t total) {
      if (g_interrupted) return false;
      return progress ? progress(done, total) : true;
    };
    ExecutePlan(plan, temp.string(), options);
    if (g_interrupted) ThrowIo("interrupted", EINTR);
    WriteSmallFiles(plan, temp);
    Publish(temp, output);
  } catch (...) {
    std::error_code ignored;
    fs::remove_all(temp, ignored);
    throw;
  }
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);

  if (args.verbosity >= 0) {
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    log << "wrote " << args.output_path << " (" << plan.files.size() << " weight files, "
        << Bytes(plan.OutputBytes()) << ") in " << seconds << " s\n";
  }
  return 0;
}

}  // namespace mcaconv
