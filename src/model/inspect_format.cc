// Renders an InspectReport as an aligned table or as one JSON document.
#include <algorithm>
#include <array>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "model/inspect.h"

namespace mcaconv {
namespace {

constexpr size_t kColumns = 5;
using TableRow = std::array<std::string, kColumns>;

// Names come from untrusted files: keep control characters out of the terminal.
std::string Printable(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) c = '?';
  }
  return out;
}

// "1.50 GB" (decimal units, as shard sizes are quoted).
std::string HumanBytes(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KB", "MB", "GB", "TB", "PB", "EB"};
  double value = static_cast<double>(bytes);
  size_t unit = 0;
  while (value >= 1000 && unit + 1 < std::size(kUnits)) {
    value /= 1000;
    ++unit;
  }
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), unit == 0 ? "%.0f %s" : "%.2f %s", value, kUnits[unit]);
  return buffer;
}

void WriteAligned(const std::vector<TableRow>& rows, std::ostream& out) {
  std::array<size_t, kColumns> width{};
  for (const TableRow& row : rows) {
    for (size_t c = 0; c < kColumns; ++c) width[c] = std::max(width[c], row[c].size());
  }
  for (const TableRow& row : rows) {
    std::string line;
    for (size_t c = 0; c < kColumns; ++c) {
      line += row[c];
      if (c + 1 < kColumns) line += std::string(width[c] - row[c].size() + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out << line << '\n';
  }
}

std::vector<size_t> TensorsPerFile(const InspectReport& report) {
  std::vector<size_t> counts(report.files.size());
  for (const InspectTensor& t : report.tensors) {
    if (t.file >= 0 && static_cast<size_t>(t.file) < counts.size()) ++counts[t.file];
  }
  return counts;
}

}  // namespace

void WriteInspectTable(const InspectReport& report, std::ostream& out) {
  out << report.layout << ' ' << Printable(report.path) << '\n';
  std::vector<size_t> per_file = TensorsPerFile(report);
  std::vector<TableRow> files = {{"file", "format", "bytes", "tensors", ""}};
  for (size_t i = 0; i < report.files.size(); ++i) {
    const InspectFile& f = report.files[i];
    files.push_back({Printable(f.path), f.format, std::to_string(f.size),
                     std::to_string(per_file[i]), ""});
  }
  WriteAligned(files, out);
  out << '\n';

  std::vector<TableRow> rows = {{"name", "dtype", "shape", "bytes", "file"}};
  for (const InspectReport::Row& row : report.rows) {
    if (row.is_tensor) {
      const InspectTensor& t = report.tensors[row.index];
      rows.push_back({Printable(t.name), std::string(Name(t.dtype)), ShapeToString(t.shape),
                      std::to_string(t.bytes), Printable(report.files[t.file].path)});
    } else {
      const InspectNonTensor& n = report.non_tensors[row.index];
      rows.push_back({n.name.empty() ? "(root)" : Printable(n.name), "<" + n.kind + ">",
                      Printable(n.value), "-", Printable(report.files[n.file].path)});
    }
  }
  WriteAligned(rows, out);
  out << "\ntotal: " << report.tensors.size() << " tensors, " << report.total_bytes << " bytes ("
      << HumanBytes(report.total_bytes) << "), " << report.files.size() << " files, "
      << report.non_tensors.size() << " non-tensor entries\n";
}

void WriteInspectJson(const InspectReport& report, std::ostream& out) {
  using Json = nlohmann::ordered_json;
  std::vector<size_t> per_file = TensorsPerFile(report);
  Json files = Json::array();
  for (size_t i = 0; i < report.files.size(); ++i) {
    const InspectFile& f = report.files[i];
    Json metadata = Json::object();
    for (const auto& [key, value] : f.metadata) metadata[key] = value;
    files.push_back({{"path", f.path},
                     {"format", f.format},
                     {"bytes", f.size},
                     {"tensors", per_file[i]},
                     {"metadata", std::move(metadata)}});
  }
  Json tensors = Json::array();
  for (const InspectTensor& t : report.tensors) {
    tensors.push_back({{"name", t.name},
                       {"dtype", std::string(Name(t.dtype))},
                       {"shape", t.shape},
                       {"bytes", t.bytes},
                       {"file", report.files[t.file].path}});
  }
  Json non_tensors = Json::array();
  for (const InspectNonTensor& n : report.non_tensors) {
    non_tensors.push_back({{"name", n.name},
                           {"kind", n.kind},
                           {"value", n.value},
                           {"file", report.files[n.file].path}});
  }
  Json doc = {{"path", report.path},
              {"layout", report.layout},
              {"files", std::move(files)},
              {"tensors", std::move(tensors)},
              {"non_tensors", std::move(non_tensors)},
              {"total_tensors", report.tensors.size()},
              {"total_bytes", report.total_bytes},
              {"total_files", report.files.size()},
              {"total_non_tensors", report.non_tensors.size()}};
  // One line per array element keeps large listings readable and greppable. Names from a file
  // need not be UTF-8; invalid bytes are replaced rather than failing the dump.
  auto dump = [](const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); };
  out << "{";
  const char* separator = "\n";
  for (const auto& [key, value] : doc.items()) {
    out << separator << " " << dump(key) << ": ";
    separator = ",\n";
    if (!value.is_array() || value.empty()) {
      out << dump(value);
      continue;
    }
    out << "[";
    for (size_t i = 0; i < value.size(); ++i) out << (i ? ",\n  " : "\n  ") << dump(value[i]);
    out << "\n ]";
  }
  out << "\n}\n";
}

}  // namespace mcaconv
