// Collects what `mca-convert inspect` lists; inspect_format.cc renders it.
#include "model/inspect.h"

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <optional>
#include <nlohmann/json.hpp>
#include <system_error>

#include "core/error.h"
#include "model/cli_values.h"
#include "safetensors/safetensors.h"
#include "torchzip/torch_file.h"

namespace mcaconv {
namespace {

namespace fs = std::filesystem;

// A hostile pickle can nest deeply or share sub-trees exponentially; listing stops well before
// either exhausts the stack or the clock.
constexpr int kMaxDepth = 200;
constexpr size_t kMaxVisitedNodes = size_t{1} << 22;
constexpr size_t kMaxValueChars = 80;

using pickle::Kind;
using pickle::Value;


std::string Truncated(std::string text) {
  if (text.size() > kMaxValueChars) text = text.substr(0, kMaxValueChars - 3) + "...";
  return text;
}

// The display text of a leaf value; also how a dict key becomes a path component.
std::string Display(const Value& v) {
  switch (v.kind) {
    case Kind::kNone: return "None";
    case Kind::kBool: return v.boolean ? "True" : "False";
    case Kind::kInt: return std::to_string(v.integer);
    case Kind::kFloat: return FormatNumber(v.number);
    case Kind::kString: return v.text;
    case Kind::kBytes: return std::to_string(v.text.size()) + " bytes";
    case Kind::kTuple: return "()";
    case Kind::kList: return "[]";
    case Kind::kDict: return "{}";
    case Kind::kTensor: return "tensor";
    case Kind::kObject: return v.class_name;
  }
  return "";
}

bool IsScalar(const Value& v) {
  switch (v.kind) {
    case Kind::kNone:
    case Kind::kBool:
    case Kind::kInt:
    case Kind::kFloat:
    case Kind::kString:
    case Kind::kBytes:
      return true;
    default:
      return false;
  }
}

// A list or tuple of scalars is one entry ("(0.9, 0.999)", or "625 items" when long): random
// states and hyper-parameter tuples would otherwise flood the listing one number per row.
std::optional<std::string> ScalarSequence(const Value& v) {
  if (v.items.empty()) return std::nullopt;
  std::string text;
  for (const pickle::ValuePtr& item : v.items) {
    if (!item || !IsScalar(*item)) return std::nullopt;
    if (text.size() <= kMaxValueChars) {
      text += text.empty() ? "" : ", ";
      text += item->kind == Kind::kString ? "'" + item->text + "'" : Display(*item);
    }
  }
  if (v.items.size() == 1 && v.kind == Kind::kTuple) text += ",";
  text = v.kind == Kind::kTuple ? "(" + text + ")" : "[" + text + "]";
  if (text.size() > kMaxValueChars) text = std::to_string(v.items.size()) + " items";
  return text;
}

std::string Join(const std::string& prefix, const std::string& key) {
  return prefix.empty() ? key : prefix + "/" + key;
}

// Lists the entries of one torch file in pickle order: tensors through the reader's list (so
// names match TorchFile::tensors), everything else as non-tensor entries.
class PickleLister {
 public:
  PickleLister(const TorchFile& file, int file_index, InspectReport& report)
      : file_(file), file_index_(file_index), report_(report), seen_(file.tensors.size()) {}

  void Run() {
    if (file_.root) Walk(*file_.root, "", 0);
    // Tensors the walk did not reach (held inside opaque objects) still belong in the listing.
    for (size_t i = 0; i < file_.tensors.size(); ++i) {
      if (!seen_[i]) AddTensor(i);
    }
  }

 private:
  void Walk(const Value& v, const std::string& name, int depth) {
    if (++visited_ > kMaxVisitedNodes || depth > kMaxDepth) {
      ThrowInvalid(file_.file.path() + ": pickled object at '" + name +
                   "' is nested too deeply or too large to list");
    }
    switch (v.kind) {
      case Kind::kTensor:
        if (v.tensor >= 0 && static_cast<size_t>(v.tensor) < seen_.size() && !seen_[v.tensor]) {
          AddTensor(static_cast<size_t>(v.tensor));
        }
        return;
      case Kind::kDict:
        if (v.entries.empty()) break;
        for (const auto& [key, value] : v.entries) {
          if (key && value) Walk(*value, Join(name, Display(*key)), depth + 1);
        }
        return;
      case Kind::kList:
      case Kind::kTuple:
        if (v.items.empty()) break;
        if (std::optional<std::string> summary = ScalarSequence(v)) {
          AddNonTensor(name, KindName(v.kind), *summary);
          return;
        }
        for (size_t i = 0; i < v.items.size(); ++i) {
          if (v.items[i]) Walk(*v.items[i], Join(name, std::to_string(i)), depth + 1);
        }
        return;
      default:
        break;
    }
    AddNonTensor(name, KindName(v.kind), Truncated(Display(v)));
  }

  void AddNonTensor(const std::string& name, const std::string& kind, std::string value) {
    report_.rows.push_back({false, report_.non_tensors.size()});
    report_.non_tensors.push_back({name, kind, std::move(value), file_index_});
  }

  void AddTensor(size_t index) {
    seen_[index] = true;
    const SourceTensor& t = file_.tensors[index];
    InspectTensor entry{t.name, t.view.dtype, t.view.shape, t.view.nbytes(), file_index_};
    report_.total_bytes += entry.bytes;
    report_.rows.push_back({true, report_.tensors.size()});
    report_.tensors.push_back(std::move(entry));
  }

  const TorchFile& file_;
  int file_index_;
  InspectReport& report_;
  std::vector<bool> seen_;
  size_t visited_ = 0;
};

bool HasZipMagic(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  in.read(magic, sizeof(magic));
  return in.gcount() == 4 && magic[0] == 'P' && magic[1] == 'K' && magic[2] == 3 && magic[3] == 4;
}

bool IsTorchFile(const fs::path& path) {
  if (path.extension() == ".safetensors") return false;
  std::string ext = path.extension().string();
  return HasZipMagic(path) || ext == ".pt" || ext == ".bin" || ext == ".pth";
}

void AddFile(const fs::path& full, const std::string& relative, InspectReport& report) {
  const int index = static_cast<int>(report.files.size());
  InspectFile entry{relative, "", 0, {}};
  if (!IsTorchFile(full)) {
    SafetensorsFile file = OpenSafetensors(full.string());
    entry.format = "safetensors";
    entry.size = file.file.size();
    entry.metadata = file.metadata;
    report.files.push_back(std::move(entry));
    for (const SourceTensor& t : file.tensors) {
      report.rows.push_back({true, report.tensors.size()});
      report.tensors.push_back({t.name, t.view.dtype, t.view.shape, t.view.nbytes(), index});
      report.total_bytes += t.view.nbytes();
    }
    return;
  }
  TorchFile file = OpenTorchFile(full.string());
  entry.format = "torch";
  entry.size = file.file.size();
  report.files.push_back(std::move(entry));
  PickleLister(file, index, report).Run();
}

// A shard name from an index file must name a file next to the index, nothing elsewhere.
void CheckShardName(const std::string& name, const fs::path& index) {
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos ||
      name.find('\\') != std::string::npos || name.find('\0') != std::string::npos) {
    ThrowInvalid(index.string() + ": weight_map names shard '" + name +
                 "', expected a file name in the same folder");
  }
}

std::vector<std::string> ShardsFromIndex(const fs::path& index) {
  std::ifstream in(index, std::ios::binary);
  if (!in) ThrowIo("cannot open " + index.string(), errno);
  nlohmann::json doc = nlohmann::json::parse(in, nullptr, false);
  if (doc.is_discarded() || !doc.is_object() || !doc.contains("weight_map") ||
      !doc["weight_map"].is_object()) {
    ThrowInvalid(index.string() + ": expected a JSON object with a \"weight_map\" object");
  }
  std::vector<std::string> shards;
  for (const auto& [tensor, shard] : doc["weight_map"].items()) {
    if (!shard.is_string()) {
      ThrowInvalid(index.string() + ": weight_map entry '" + tensor + "' is not a file name");
    }
    std::string name = shard.get<std::string>();
    CheckShardName(name, index);
    if (std::find(shards.begin(), shards.end(), name) == shards.end()) shards.push_back(name);
  }
  std::sort(shards.begin(), shards.end());
  return shards;
}

// Regular files of `dir` whose names start with `prefix` and end with `suffix`, sorted.
std::vector<std::string> FilesMatching(const fs::path& dir, std::string_view prefix,
                                       std::string_view suffix) {
  std::vector<std::string> names;
  for (const fs::directory_entry& e : fs::directory_iterator(dir)) {
    std::string name = e.path().filename().string();
    if (e.is_regular_file() && name.starts_with(prefix) && name.ends_with(suffix)) {
      names.push_back(name);
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<std::string> HfWeightFiles(const fs::path& dir) {
  for (const char* index : {"model.safetensors.index.json", "pytorch_model.bin.index.json"}) {
    if (fs::is_regular_file(dir / index)) return ShardsFromIndex(dir / index);
  }
  for (auto [prefix, suffix] : {std::pair{"model", ".safetensors"}, {"pytorch_model", ".bin"},
                                {"adapter_model", ".safetensors"}, {"adapter_model", ".bin"}}) {
    std::vector<std::string> names = FilesMatching(dir, prefix, suffix);
    if (!names.empty()) return names;
  }
  ThrowInvalid(dir.string() + ": no model*.safetensors, pytorch_model*.bin or index json found");
}

// mp_rank_01_000_001 -> {1, 0, 1}; rank directories sort by these numbers.
std::vector<long> RankKey(const std::string& name) {
  std::vector<long> key;
  std::string_view rest = std::string_view(name).substr(std::string_view("mp_rank_").size());
  while (!rest.empty()) {
    size_t end = rest.find('_');
    std::string part(rest.substr(0, end));
    auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
    bool numeric = !part.empty() && part.size() <= 9 &&
                   std::all_of(part.begin(), part.end(), is_digit);
    key.push_back(numeric ? std::stol(part) : -1);
    rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
  }
  return key;
}

std::vector<std::string> McaRankFiles(const fs::path& dir) {
  const fs::path iteration = dir / "iter_0000001";
  if (!fs::is_directory(iteration)) {
    ThrowInvalid(dir.string() + ": MCA folder without iter_0000001/ (the converter reads only "
                 "iteration 1)");
  }
  std::vector<std::string> ranks;
  for (const fs::directory_entry& e : fs::directory_iterator(iteration)) {
    std::string name = e.path().filename().string();
    if (e.is_directory() && name.starts_with("mp_rank_")) ranks.push_back(name);
  }
  if (ranks.empty() && fs::is_directory(iteration / "dist_model")) {
    ThrowUnsupported(iteration.string() +
                     ": distributed (torch_dist) checkpoints are not supported");
  }
  if (ranks.empty()) ThrowInvalid(iteration.string() + ": no mp_rank_* directories");
  std::sort(ranks.begin(), ranks.end(), [](const std::string& a, const std::string& b) {
    std::vector<long> ka = RankKey(a), kb = RankKey(b);
    return ka != kb ? ka < kb : a < b;
  });
  std::vector<std::string> files;
  for (const std::string& rank : ranks) {
    std::string relative = "iter_0000001/" + rank + "/model_optim_rng.pt";
    if (!fs::is_regular_file(dir / relative)) {
      ThrowInvalid((dir / rank).string() + ": missing model_optim_rng.pt");
    }
    files.push_back(relative);
  }
  return files;
}

}  // namespace

InspectReport InspectPath(const std::string& path) {
  InspectReport report;
  report.path = path;
  std::error_code ec;
  fs::file_status status = fs::status(path, ec);
  if (ec || !fs::exists(status)) ThrowIo("inspect " + path, ec ? ec.value() : ENOENT);

  if (fs::is_regular_file(status)) {
    report.layout = IsTorchFile(path) ? "torch file" : "safetensors file";
    AddFile(path, fs::path(path).filename().string(), report);
    return report;
  }
  if (!fs::is_directory(status)) ThrowUsage("inspect " + path + ": not a file or folder");

  const fs::path dir(path);
  std::vector<std::string> files;
  if (fs::is_regular_file(dir / "mca_config.json")) {
    report.layout = "MCA folder";
    files = McaRankFiles(dir);
  } else if (fs::is_regular_file(dir / "config.json") ||
             fs::is_regular_file(dir / "adapter_config.json")) {
    report.layout = "HF folder";
    files = HfWeightFiles(dir);
  } else {
    ThrowUsage("inspect " + path + ": folder has neither mca_config.json (MCA) nor config.json "
               "(HF)");
  }
  for (const std::string& relative : files) AddFile(dir / relative, relative, report);
  return report;
}

}  // namespace mcaconv
