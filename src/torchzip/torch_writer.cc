// PlanTorchFile: the layout of a torch.save archive in the torch 2.1-2.6 record order
// (formats.md 1.1): data.pkl, byteorder, data/0..N-1, version. The 2.7+ records
// .format_version and .storage_alignment are left out on purpose: with .format_version present,
// some torch load paths compute storage offsets from torch's own layout instead of reading the
// local headers (formats.md 1.5). .data/serialization_id is optional and never validated.
#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"
#include "torchzip/pickle_writer.h"
#include "torchzip/torch_file.h"
#include "torchzip/zip_writer.h"

namespace mcaconv {
namespace {

// No single storage record may come near the planner's file-size ceiling.
constexpr uint64_t kMaxStorageBytes = uint64_t{1} << 56;

void CheckArchiveName(const std::string& archive_name) {
  if (archive_name.empty() || archive_name.size() > 1024 ||
      archive_name.find_first_of("/\\") != std::string::npos)
    ThrowInvalid("torch writer: archive name '" + archive_name +
                 "' must be 1..1024 bytes without '/' or '\\'");
}

uint64_t StorageBytes(const OutputTensor& tensor, const std::string& what) {
  const uint64_t numel = static_cast<uint64_t>(WithContext(
      what + ": tensor '" + tensor.name + "'", [&] { return NumElements(tensor.shape); }));
  const uint64_t element_size = static_cast<uint64_t>(ElementSize(tensor.dtype));
  if (numel > kMaxStorageBytes / element_size)
    ThrowInvalid(what + ": tensor '" + tensor.name + "' of shape " + ShapeToString(tensor.shape) +
                 " needs more than " + std::to_string(kMaxStorageBytes) + " bytes");
  return numel * element_size;
}

}  // namespace

FileLayout PlanTorchFile(const std::string& archive_name, const pickle::Value& root,
                         const std::vector<OutputTensor>& tensors) {
  CheckArchiveName(archive_name);
  const std::string what = "torch writer: archive '" + archive_name + "'";
  std::vector<uint64_t> storage_bytes;
  storage_bytes.reserve(tensors.size());
  for (const OutputTensor& tensor : tensors) storage_bytes.push_back(StorageBytes(tensor, what));

  const pickle::TorchPickle pickled = pickle::PickleTorchObject(root, tensors, what);

  const std::string prefix = archive_name + "/";
  ZipPlanner zip(what);
  zip.AddBytes(prefix + "data.pkl", pickled.bytes);
  zip.AddBytes(prefix + "byteorder", "little");
  std::vector<uint64_t> tensor_offsets(tensors.size());
  for (size_t key = 0; key < pickled.storage_tensors.size(); ++key) {
    const int index = pickled.storage_tensors[key];
    tensor_offsets[index] =
        zip.AddSlot(prefix + "data/" + std::to_string(key), storage_bytes[index]);
  }
  // torch.save writes format version 3; every torch since 1.6 accepts 1..10.
  zip.AddBytes(prefix + "version", "3\n");

  FileLayout layout = zip.Finish();
  layout.tensor_offsets = std::move(tensor_offsets);
  return layout;
}

}  // namespace mcaconv
