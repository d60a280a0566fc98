// mca-convert: parse the command line, dispatch, and turn errors into one stderr line and an
// exit status (0 success, 1 failure, 2 usage error). All work lives in the libraries.
#include <exception>
#include <iostream>
#include <new>
#include <string>

#include "core/error.h"
#include "model/cli_args.h"
#include "model/inspect.h"

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

int Convert(const mcaconv::ConvertArgs& args) {
#ifdef MCACONV_HAVE_CONVERT
  // Narration goes to stderr so stdout stays clean; a dry run's plan is the product, so stdout.
  return mcaconv::RunConvert(args, args.dry_run ? std::cout : std::cerr);
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
