// mca-convert: parse the command line, dispatch, and turn errors into one stderr line and an
// exit status (0 success, 1 failure, 2 usage error). All work lives in the libraries.
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <iostream>
#include <new>
#include <string>

#include "core/error.h"
#include "model/cli_args.h"
#include "model/inspect.h"
#include "model/rewrite.h"

#if __has_include("model/convert.h")
#include "model/convert.h"
#define MCACONV_HAVE_CONVERT 1
#endif

namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

// Errors are one line, whatever the message carries.
int ReportError(std::string message, int status) {
  for (char& c : message) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  std::cout.flush();
  std::cerr << "mca-convert: error: " << message << std::endl;
  return status;
}

// "12.3 MiB": three significant figures are plenty for a status line.
std::string HumanBytes(double bytes) {
  static const char* const kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int unit = 0;
  while (bytes >= 1024 && unit < 4) {
    bytes /= 1024;
    ++unit;
  }
  char text[32];
  std::snprintf(text, sizeof(text), unit == 0 ? "%.0f %s" : "%.1f %s", bytes, kUnits[unit]);
  return text;
}

// One status line overprinted on a terminal's stderr: bytes done / total, throughput and ETA.
// Redrawn at most five times a second (the executor reports every few MiB) and erased when the
// run ends, however it ends, so narration and the error line start on a clean line.
class ProgressLine {
 public:
  ProgressLine() = default;
  ProgressLine(const ProgressLine&) = delete;
  ProgressLine& operator=(const ProgressLine&) = delete;
  ~ProgressLine() { Clear(); }

  // The executor serializes calls; returns true (never cancels).
  bool Update(uint64_t done, uint64_t total) {
    const Clock::time_point now = Clock::now();
    if (!started_) {
      // Timed from the first write: planning and replica checks would skew throughput and ETA.
      started_ = true;
      start_ = now;
      last_draw_ = now;
    }
    if (done >= total) {
      Clear();
      return true;
    }
    if (now - last_draw_ < kRedrawInterval) return true;
    last_draw_ = now;
    const double seconds = std::chrono::duration<double>(now - start_).count();
    const double rate = seconds > 0 ? done / seconds : 0;
    std::string line = "converting: " + HumanBytes(done) + " / " + HumanBytes(total) + " (" +
                       std::to_string(total > 0 ? done * 100 / total : 0) + "%)";
    if (rate > 0) {
      const auto eta = static_cast<uint64_t>((total - done) / rate + 0.5);
      char tail[64];
      std::snprintf(tail, sizeof(tail), ", %s/s, ETA %llu:%02llu", HumanBytes(rate).c_str(),
                    static_cast<unsigned long long>(eta / 60),
                    static_cast<unsigned long long>(eta % 60));
      line += tail;
    }
    std::cerr << "\r\x1b[K" << line << std::flush;
    shown_ = true;
    return true;
  }

  void Clear() {
    if (!shown_) return;
    std::cerr << "\r\x1b[K" << std::flush;
    shown_ = false;
  }

 private:
  using Clock = std::chrono::steady_clock;
  static constexpr std::chrono::milliseconds kRedrawInterval{200};
  Clock::time_point start_;
  Clock::time_point last_draw_;
  bool started_ = false;
  bool shown_ = false;
};

int Convert(const mcaconv::ConvertArgs& args) {
#ifdef MCACONV_HAVE_CONVERT
  // Narration goes to stderr so stdout stays clean; a dry run's plan is the product, so stdout.
  std::ostream& log = args.dry_run ? std::cout : std::cerr;
  // Only a person watching a terminal wants the status line; logs and pipes get none.
  if (args.dry_run || args.verbosity < 0 || !::isatty(STDERR_FILENO))
    return mcaconv::RunConvert(args, log);
  ProgressLine progress;
  return mcaconv::RunConvert(args, log, [&progress](uint64_t done, uint64_t total) {
    return progress.Update(done, total);
  });
#else
  return ReportError("this build has no conversion driver (model/convert.h)", kExitFailure);
#endif
}

int Run(int argc, char** argv) {
  mcaconv::ParsedCommand command = mcaconv::ParseCommandLine(argc, argv);
  switch (command.command) {
    case mcaconv::Command::kHelp:
      std::cout << mcaconv::HelpText();
      return kExitOk;
    case mcaconv::Command::kVersion:
      std::cout << "mca-convert " << mcaconv::kMcaConvertVersion << '\n';
      return kExitOk;
    case mcaconv::Command::kInspect: {
      mcaconv::InspectReport report = mcaconv::InspectPath(command.inspect.path);
      if (command.inspect.json) {
        mcaconv::WriteInspectJson(report, std::cout);
      } else {
        mcaconv::WriteInspectTable(report, std::cout);
      }
      std::cout.flush();
      return std::cout ? kExitOk : ReportError("cannot write to standard output", kExitFailure);
    }
    case mcaconv::Command::kConvert:
      return Convert(command.convert);
    case mcaconv::Command::kRewrite:
      mcaconv::RunRewrite(command.rewrite);
      return kExitOk;
  }
  return kExitFailure;
}

}  // namespace

int main(int argc, char** argv) {
  std::ios::sync_with_stdio(false);
  try {
    return Run(argc, argv);
  } catch (const mcaconv::Error& e) {
    bool usage = e.kind() == mcaconv::ErrorKind::kUsage;
    return ReportError(e.what(), usage ? kExitUsage : kExitFailure);
  } catch (const std::bad_alloc&) {
    return ReportError("out of memory", kExitFailure);
  } catch (const std::exception& e) {
    return ReportError(e.what(), kExitFailure);
  }
}
