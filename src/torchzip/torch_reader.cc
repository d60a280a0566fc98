// OpenTorchFile: the zero-copy reader of torch.save archives (formats.md 1 and 2).
#include <string_view>
#include <unordered_set>

#include "core/error.h"
#include "torchzip/pickle_reader.h"
#include "torchzip/torch_file.h"
#include "torchzip/zip_reader.h"

namespace mcaconv {
namespace {

constexpr uint64_t kMinFormatVersion = 1;
constexpr uint64_t kMaxFormatVersion = 10;

class Reader {
 public:
  Reader(const std::string& path, const MappedFile& file, const ZipDirectory& dir)
      : path_(path), file_(file), dir_(dir) {}

  [[noreturn]] void Fail(uint64_t offset, const std::string& what) const {
    ThrowInvalid(path_ + ": offset " + std::to_string(offset) + ": " + what);
  }
  [[noreturn]] void FailUnsupported(uint64_t offset, const std::string& what) const {
    ThrowUnsupported(path_ + ": offset " + std::to_string(offset) + ": " + what);
  }

  std::string_view Contents(const ZipEntry& entry) const {
    return {reinterpret_cast<const char*>(file_.data()) + entry.data_offset, entry.size};
  }

  // The archive must declare a format version torch can read.
  void CheckVersion() const {
    const ZipEntry* entry = dir_.FindStored("version");
    if (entry == nullptr) entry = dir_.FindStored(".data/version");
    if (entry == nullptr)
      Fail(dir_.directory_offset(), "archive '" + dir_.prefix() + "' has no 'version' record");
    std::string_view text = Contents(*entry);
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' '))
      text.remove_suffix(1);
    uint64_t version = 0;
    bool numeric = !text.empty() && text.size() <= 9;
    for (char c : text) {
      numeric = numeric && c >= '0' && c <= '9';
      version = version * 10 + static_cast<uint64_t>(c - '0');
    }
    if (!numeric)
      Fail(entry->data_offset, "record '" + entry->name + "' is not a decimal version number");
    if (version < kMinFormatVersion || version > kMaxFormatVersion)
      FailUnsupported(entry->data_offset, "record '" + entry->name + "' declares format version " +
                                              std::to_string(version) + ", expected 1 to 10");
  }

  void CheckArchiveKind() const {
    if (const ZipEntry* constants = dir_.Find("constants.pkl"))
      FailUnsupported(constants->directory_offset,
                      "archive holds 'constants.pkl': a TorchScript module, not a torch.save file");
    const ZipEntry* entry = dir_.FindStored("byteorder");
    if (entry == nullptr) return;
    std::string_view order = Contents(*entry);
    if (order == "big")
      FailUnsupported(entry->data_offset, "big-endian tensor data (record '" + entry->name + "')");
    if (order != "little")
      Fail(entry->data_offset, "record '" + entry->name + "' is neither 'little' nor 'big'");
  }

  const ZipEntry& PickleRecord() const {
    const ZipEntry* entry = dir_.FindStored("data.pkl");
    if (entry == nullptr)
      Fail(dir_.directory_offset(), "archive '" + dir_.prefix() + "' has no 'data.pkl' record");
    return *entry;
  }

  // The record of each storage, checked to hold the storage's bytes.
  std::vector<const ZipEntry*> ResolveStorages(
      const std::vector<pickle::PickleStorage>& storages) const {
    std::vector<const ZipEntry*> records;
    for (const pickle::PickleStorage& storage : storages) {
      const ZipEntry* entry = dir_.FindStored("data/" + storage.key);
      if (entry == nullptr)
        Fail(dir_.directory_offset(), "storage '" + storage.key + "' (data.pkl offset " +
                                          std::to_string(storage.offset) + ") has no record '" +
                                          dir_.prefix() + "/data/" + storage.key + "'");
      if (entry->size < storage.nbytes)
        Fail(entry->data_offset, "record '" + entry->name + "' holds " +
                                     std::to_string(entry->size) + " bytes, but storage '" +
                                     storage.key + "' declares " + std::to_string(storage.nbytes));
      records.push_back(entry);
    }
    return records;
  }

  // Checks that every element of the view lies inside its storage and returns the view.
  TensorView View(const pickle::PickleTensor& tensor, const pickle::PickleStorage& storage,
                  const ZipEntry& record, const std::string& name) const {
    auto fail = [&](const std::string& what) {
      Fail(record.data_offset, "tensor '" + name + "' (data.pkl offset " +
                                   std::to_string(tensor.offset) + "): " + what);
    };
    uint64_t element_size = ElementSize(tensor.dtype);
    uint64_t storage_elements = storage.nbytes / element_size;
    if (tensor.storage_offset < 0) fail("negative storage offset");
    bool empty = false;
    for (size_t i = 0; i < tensor.shape.size(); ++i) {
      if (tensor.shape[i] < 0 || tensor.strides[i] < 0)
        fail("negative size or stride: size " + ShapeToString(tensor.shape) + ", stride " +
             ShapeToString(tensor.strides));
      empty = empty || tensor.shape[i] == 0;
    }
    // An empty view addresses nothing; otherwise its last element is the farthest one.
    uint64_t last = static_cast<uint64_t>(tensor.storage_offset);
    for (size_t i = 0; i < tensor.shape.size() && !empty; ++i) {
      uint64_t reach = 0;
      if (__builtin_mul_overflow(static_cast<uint64_t>(tensor.shape[i] - 1),
                                 static_cast<uint64_t>(tensor.strides[i]), &reach) ||
          __builtin_add_overflow(last, reach, &last))
        fail("view extent overflows");
    }
    if (empty ? last > storage_elements : last >= storage_elements)
      fail("view of size " + ShapeToString(tensor.shape) + ", stride " +
           ShapeToString(tensor.strides) + ", offset " + std::to_string(tensor.storage_offset) +
           " reaches element " + std::to_string(last) + " but storage '" + storage.key +
           "' holds " + std::to_string(storage_elements) + " " + std::string(Name(tensor.dtype)) +
           " elements");
    TensorView view;
    view.dtype = tensor.dtype;
    view.shape = tensor.shape;
    view.strides = tensor.strides;
    view.data_offset =
        record.data_offset + static_cast<uint64_t>(tensor.storage_offset) * element_size;
    return view;
  }

 private:
  const std::string& path_;
  const MappedFile& file_;
  const ZipDirectory& dir_;
};

std::string KeySegment(const pickle::Value& key) {
  switch (key.kind) {
    case pickle::Kind::kString: return key.text;
    case pickle::Kind::kInt: return std::to_string(key.integer);
    case pickle::Kind::kBool: return key.boolean ? "True" : "False";
    default: return "?";
  }
}

// Names each tensor by its first path from the root; shared subtrees are walked once.
class Namer {
 public:
  explicit Namer(std::vector<std::string>& names) : names_(names), named_(names.size()) {}

  void Walk(const pickle::Value& v, const std::string& path) {
    if (v.kind == pickle::Kind::kTensor) {
      if (!named_[v.tensor]) names_[v.tensor] = path;
      named_[v.tensor] = true;
      return;
    }
    if (!visited_.insert(&v).second) return;
    for (size_t i = 0; i < v.items.size(); ++i) Walk(*v.items[i], Join(path, std::to_string(i)));
    for (const auto& [key, value] : v.entries) Walk(*value, Join(path, KeySegment(*key)));
    if (v.state) Walk(*v.state, path);
  }

 private:
  static std::string Join(const std::string& path, const std::string& segment) {
    return path.empty() ? segment : path + "/" + segment;
  }

  std::vector<std::string>& names_;
  std::vector<bool> named_;
  std::unordered_set<const pickle::Value*> visited_;
};

}  // namespace

TorchFile OpenTorchFile(const std::string& path) {
  TorchFile out;
  out.file = MappedFile::Open(path);
  ZipDirectory dir = ZipDirectory::Parse(out.file.data(), out.file.size(), path);
  out.archive_prefix = dir.prefix();
  Reader reader(path, out.file, dir);
  reader.CheckArchiveKind();
  reader.CheckVersion();

  const ZipEntry& pkl = reader.PickleRecord();
  pickle::UnpickledTorch unpickled = WithContext(path + ": record '" + pkl.name + "'", [&] {
    return pickle::Unpickle(reader.Contents(pkl), "data.pkl");
  });
  out.root = unpickled.root;
  std::vector<const ZipEntry*> records = reader.ResolveStorages(unpickled.storages);

  std::vector<std::string> names(unpickled.tensors.size());
  Namer(names).Walk(*out.root, "");
  out.tensors.reserve(names.size());
  for (size_t i = 0; i < names.size(); ++i) {
    const pickle::PickleTensor& tensor = unpickled.tensors[i];
    if (names[i].empty()) names[i] = "tensor#" + std::to_string(i);
    SourceTensor source;
    source.name = names[i];
    source.view = reader.View(tensor, unpickled.storages[tensor.storage],
                              *records[tensor.storage], names[i]);
    out.tensors.push_back(std::move(source));
  }
  return out;
}

}  // namespace mcaconv
