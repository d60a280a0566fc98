#include "model/convert.h"

#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <sstream>
#include <thread>

#include "core/error.h"
#include "engine/executor.h"
#include "model/lora.h"
#include "model/merge.h"
#include "model/reshard.h"

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

// The executor's private memory per thread: a staging row for strided copies and casts
// (8192 elements of at most 8 bytes) plus CRC and bookkeeping; tensor data itself stays in
// mapped files.
constexpr uint64_t kWorkBufferBytes = 1ull << 20;

// The output folder as an absolute, normalized path: "out/", "./out" and "a/../out" all name the
// same folder, and a trailing separator must not put the temporary folder inside the output.
fs::path NormalizedPath(const std::string& path) {
  fs::path out = fs::weakly_canonical(fs::absolute(path));
  if (out.filename().empty() && out.has_parent_path()) out = out.parent_path();
  return out;
}

// Paths must not nest: writing inside an input, or an input inside the output, is refused.
void CheckOutputPath(const ConvertArgs& args) {
  const fs::path output = NormalizedPath(args.output_path);
  for (const auto& input : {std::optional<std::string>(args.checkpoint_path), args.adapter_path}) {
    if (!input) continue;
    const fs::path in = NormalizedPath(*input);
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
    ThrowUsage("output folder " + args.output_path +
               " is not empty; pass --overwrite to replace it");
}

std::atomic<bool> g_interrupted{false};
extern "C" void OnSignal(int) { g_interrupted = true; }

// While alive, SIGINT, SIGTERM and SIGHUP only request a clean stop (the run removes its partial
// output and fails). SA_RESETHAND: a second signal terminates at once, as the user asked.
class InterruptGuard {
 public:
  InterruptGuard() {
    g_interrupted = false;
    struct sigaction action {};
    action.sa_handler = OnSignal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESETHAND;
    for (size_t i = 0; i < kSignals.size(); ++i) sigaction(kSignals[i], &action, &previous_[i]);
  }
  ~InterruptGuard() {
    for (size_t i = 0; i < kSignals.size(); ++i) sigaction(kSignals[i], &previous_[i], nullptr);
  }
  InterruptGuard(const InterruptGuard&) = delete;
  InterruptGuard& operator=(const InterruptGuard&) = delete;

 private:
  static constexpr std::array<int, 3> kSignals = {SIGINT, SIGTERM, SIGHUP};
  std::array<struct sigaction, 3> previous_{};
};

// Where a run writes before its output is put in place. A new output is built in a hidden
// sibling and renamed; an existing empty folder (a mount point, the working directory) is kept
// and filled from a hidden folder inside it, since renaming it away may fail or confuse.
struct Staging {
  fs::path output;
  fs::path temp;
  fs::path created_root;  // outermost parent folder this run created, removed on failure
  bool fill_existing = false;
};

Staging PrepareStaging(const fs::path& output) {
  Staging staging;
  staging.output = output;
  const std::string tag = ".mcaconv-tmp-" + std::to_string(::getpid());
  std::error_code error;
  if (fs::is_directory(output) && fs::is_empty(output)) {
    staging.fill_existing = true;
    staging.temp = output / tag;
  } else {
    staging.temp = output.parent_path() / ("." + output.filename().string() + tag);
    for (fs::path p = output.parent_path(); !p.empty() && !fs::exists(p); p = p.parent_path()) {
      staging.created_root = p;
      if (p == p.parent_path()) break;
    }
    fs::create_directories(output.parent_path(), error);
    if (error) ThrowIo("cannot create the folder " + output.parent_path().string(), error.value());
  }
  fs::remove_all(staging.temp, error);
  if (!fs::create_directory(staging.temp, error) || error) {
    const int code = error ? error.value() : EEXIST;
    if (!staging.created_root.empty()) fs::remove_all(staging.created_root, error);
    ThrowIo("cannot create the temporary folder " + staging.temp.string(), code);
  }
  return staging;
}

// Removes everything the run created: the temporary folder, entries already moved into a kept
// empty output folder, and parent folders it made.
void Discard(const Staging& staging) {
  std::error_code ignored;
  fs::remove_all(staging.temp, ignored);
  if (staging.fill_existing) {
    for (const auto& entry : fs::directory_iterator(staging.output, ignored))
      fs::remove_all(entry.path(), ignored);
  }
  if (!staging.created_root.empty()) fs::remove_all(staging.created_root, ignored);
}

void Rename(const fs::path& from, const fs::path& to) {
  std::error_code error;
  fs::rename(from, to, error);
  if (error) ThrowIo("cannot rename " + from.string() + " to " + to.string(), error.value());
}

// Puts the finished output in place, replacing an old output only now. If the new folder cannot
// be moved in, the old one is put back.
void Publish(const Staging& staging) {
  if (staging.fill_existing) {
    for (const auto& entry : fs::directory_iterator(staging.temp))
      Rename(entry.path(), staging.output / entry.path().filename());
    std::error_code error;
    fs::remove(staging.temp, error);
    if (error) ThrowIo("cannot remove " + staging.temp.string(), error.value());
    return;
  }
  if (!fs::exists(staging.output)) {
    Rename(staging.temp, staging.output);
    return;
  }
  const fs::path old = staging.output.parent_path() /
                       ("." + staging.output.filename().string() + ".mcaconv-old-" +
                        std::to_string(::getpid()));
  Rename(staging.output, old);
  try {
    Rename(staging.temp, staging.output);
  } catch (const Error&) {
    std::error_code ignored;
    fs::rename(old, staging.output, ignored);
    throw;
  }
  std::error_code ignored;
  fs::remove_all(old, ignored);
}

// The message of an error raised while writing under the temporary folder, naming the final
// path instead (the temporary folder is gone by the time the user reads it).
std::string AtFinalPath(std::string message, const Staging& staging) {
  const std::string temp = staging.temp.string();
  const std::string final_path = staging.output.string();
  for (size_t at = message.find(temp); at != std::string::npos; at = message.find(temp, at)) {
    message.replace(at, temp.size(), final_path);
    at += final_path.size();
  }
  return message;
}

}  // namespace

Plan PlanConversion(const ConvertArgs& args, Direction direction) {
  if (args.reshard) {
    if (direction == Direction::kHfToMca || args.adapter_path)
      ThrowUsage("--reshard needs an MCA checkpoint (a folder with mca_config.json) as "
                 "--checkpoint_path and no --adapter_path");
    return PlanReshard(args);
  }
  if (args.adapter_path) {
    if (args.merge_lora) return PlanMergedBase(args);
    return direction == Direction::kMcaToHf ? PlanMcaAdapterToPeft(args)
                                            : PlanPeftToMcaAdapter(args);
  }
  return direction == Direction::kHfToMca ? PlanHfToMca(args) : PlanMcaToHf(args);
}

std::string DescribePlan(const Plan& plan, Direction direction) {
  std::ostringstream out;
  uint64_t tensor_bytes = 0, tensors = 0, ops = 0;
  const char* names[] = {"HF -> MCA", "MCA -> HF", "MCA -> MCA"};
  out << names[static_cast<int>(direction)] << " plan\n";
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
  out << "  peak private memory: the plan above plus under " << Bytes(threads * kWorkBufferBytes)
      << " of per-thread buffers (" << threads
      << " threads); independent of model size: tensor data is mapped, never buffered whole\n";
  return out.str();
}

int RunConvert(const ConvertArgs& args, std::ostream& log,
               const std::function<bool(uint64_t, uint64_t)>& progress) {
  const Direction direction = args.reshard && DetectDirection(args) == Direction::kMcaToHf
                                  ? Direction::kMcaToMca
                                  : DetectDirection(args);
  CheckOutputPath(args);

  const auto started = std::chrono::steady_clock::now();
  const Plan plan = PlanConversion(args, direction);
  CheckCoverage(plan);
  if (args.verbosity >= 1 || args.dry_run) log << DescribePlan(plan, direction);
  if (args.dry_run) return 0;

  InterruptGuard interrupt_guard;
  const Staging staging = PrepareStaging(NormalizedPath(args.output_path));
  try {
    ExecuteOptions options;
    options.threads = args.threads;
    options.progress = [&](uint64_t done, uint64_t total) {
      if (g_interrupted) return false;
      return progress ? progress(done, total) : true;
    };
    // ExecutePlan writes the text and copied files too.
    ExecutePlan(plan, staging.temp.string(), options);
    if (args.merge_lora) MergeLora(plan, args, staging.temp.string());
    // Checked again here: a signal after the last progress report must still stop the run.
    if (g_interrupted) ThrowIo("interrupted", EINTR);
    Publish(staging);
  } catch (const Error& e) {
    Discard(staging);
    if (g_interrupted)
      throw Error(ErrorKind::kIo, "interrupted; removed the partial output, nothing was written "
                                  "to " + args.output_path);
    throw Error(e.kind(), AtFinalPath(e.what(), staging));
  } catch (...) {
    Discard(staging);
    throw;
  }

  if (args.verbosity >= 0) {
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    log << "wrote " << args.output_path << " (" << plan.files.size() << " weight files, "
        << Bytes(plan.OutputBytes()) << ") in " << seconds << " s\n";
  }
  return 0;
}

}  // namespace mcaconv
