#include "engine/plan.h"

#include <sys/stat.h>

#include <algorithm>
#include <iterator>
#include <string>
#include <vector>

#include "core/error.h"
#include "engine/box.h"

namespace mcaconv {
namespace {

// A byte region of the file with its owner, for overlap checks.
struct Region {
  ByteRange range;
  std::string owner;  // "tensor <name>" or "blob <i>"
  int tensor = -1;    // index into OutputFilePlan::tensors, -1 for blobs
};

void CheckRangeInFile(const ByteRange& range, uint64_t file_size, const std::string& owner) {
  if (range.end < range.begin || range.end > file_size) {
    ThrowInvalid(owner + " at bytes " + RangeToString(range) + " ends past the file size " +
                 std::to_string(file_size));
  }
}

uint64_t CheckedEnd(uint64_t offset, uint64_t size, const std::string& owner) {
  uint64_t end = 0;
  if (__builtin_add_overflow(offset, size, &end)) {
    ThrowInvalid(owner + " at offset " + std::to_string(offset) + " overflows 64 bits");
  }
  return end;
}

// Tensor slots and blobs, sorted by offset, verified to lie in the file and not to overlap.
std::vector<Region> CollectRegions(const OutputFilePlan& file) {
  const FileLayout& layout = file.layout;
  if (layout.tensor_offsets.size() != file.tensors.size()) {
    ThrowInvalid("layout has " + std::to_string(layout.tensor_offsets.size()) +
                 " tensor offsets for " + std::to_string(file.tensors.size()) + " tensors");
  }
  std::vector<Region> regions;
  for (size_t i = 0; i < file.tensors.size(); ++i) {
    const OutputTensor& tensor = file.tensors[i];
    const std::string owner = "tensor " + tensor.name;
    const uint64_t size = static_cast<uint64_t>(NumElements(tensor.shape)) *
                          static_cast<uint64_t>(ElementSize(tensor.dtype));
    const uint64_t offset = layout.tensor_offsets[i];
    const ByteRange range{offset, CheckedEnd(offset, size, owner)};
    CheckRangeInFile(range, layout.size, owner);
    if (size > 0) regions.push_back({range, owner, static_cast<int>(i)});
  }
  for (size_t i = 0; i < layout.blobs.size(); ++i) {
    const std::string owner = "blob " + std::to_string(i);
    const Blob& blob = layout.blobs[i];
    const ByteRange range{blob.offset, CheckedEnd(blob.offset, blob.bytes.size(), owner)};
    CheckRangeInFile(range, layout.size, owner);
    if (!blob.bytes.empty()) regions.push_back({range, owner, -1});
  }
  std::sort(regions.begin(), regions.end(),
            [](const Region& a, const Region& b) { return a.range.begin < b.range.begin; });
  for (size_t i = 1; i < regions.size(); ++i) {
    if (regions[i].range.begin < regions[i - 1].range.end) {
      ThrowInvalid(regions[i].owner + " at bytes " + RangeToString(regions[i].range) +
                   " overlaps " + regions[i - 1].owner + " at bytes " +
                   RangeToString(regions[i - 1].range));
    }
  }
  return regions;
}

void CheckCrcPatches(const FileLayout& layout) {
  for (size_t i = 0; i < layout.crc_patches.size(); ++i) {
    const CrcPatch& patch = layout.crc_patches[i];
    const std::string owner = "CRC patch " + std::to_string(i);
    const ByteRange data{patch.data_offset, CheckedEnd(patch.data_offset, patch.data_size, owner)};
    CheckRangeInFile(data, layout.size, owner + " data");
    for (uint64_t at : patch.patch_offsets) {
      CheckRangeInFile({at, CheckedEnd(at, 4, owner)}, layout.size, owner + " field");
      // Patches are written after every CRC is computed, so none may land in CRC'd data.
      for (const CrcPatch& other : layout.crc_patches) {
        if (at + 4 > other.data_offset && at < other.data_offset + other.data_size) {
          ThrowInvalid(owner + " field at offset " + std::to_string(at) +
                       " lies inside CRC'd data starting at " + std::to_string(other.data_offset));
        }
      }
    }
  }
}

void CheckOpShape(const CopyOp& op, size_t input_count, const std::string& name) {
  if (op.src_strides.size() != op.shape.size() || op.dst_strides.size() != op.shape.size()) {
    ThrowInvalid(name + ": shape " + ShapeToString(op.shape) + " has " +
                 std::to_string(op.src_strides.size()) + " source and " +
                 std::to_string(op.dst_strides.size()) + " destination strides");
  }
  if (op.src_file < 0 || static_cast<size_t>(op.src_file) >= input_count) {
    ThrowInvalid(name + ": input index " + std::to_string(op.src_file) + " out of range (" +
                 std::to_string(input_count) + " inputs)");
  }
  if (op.src_dtype != op.dst_dtype && !(IsCastable(op.src_dtype) && IsCastable(op.dst_dtype))) {
    ThrowInvalid(name + ": cannot convert " + std::string(Name(op.src_dtype)) + " to " +
                 std::string(Name(op.dst_dtype)));
  }
}

// The tensor slot among `regions` that holds all of `range`, or throws.
const Region& FindSlot(const std::vector<Region>& regions, const ByteRange& range,
                       const std::string& name) {
  auto it = std::upper_bound(regions.begin(), regions.end(), range.begin,
                             [](uint64_t at, const Region& r) { return at < r.range.begin; });
  if (it == regions.begin() || std::prev(it)->tensor < 0 || range.end > std::prev(it)->range.end) {
    ThrowInvalid(name + " writes bytes " + RangeToString(range) +
                 " outside any single tensor slot");
  }
  return *std::prev(it);
}

void CheckFile(const OutputFilePlan& file, size_t input_count) {
  const std::vector<Region> regions = CollectRegions(file);
  CheckCrcPatches(file.layout);
  std::vector<uint64_t> written(file.tensors.size(), 0);
  for (size_t j = 0; j < file.ops.size(); ++j) {
    const CopyOp& op = file.ops[j];
    const std::string name = "copy op " + std::to_string(j);
    CheckOpShape(op, input_count, name);
    const int64_t count = NumElements(op.shape);
    if (count == 0) continue;
    ByteRange range;
    if (!BoxByteRange(op.dst_offset, op.shape, op.dst_strides, ElementSize(op.dst_dtype), &range)) {
      ThrowInvalid(name + ": destination strides address bytes outside 64-bit offsets");
    }
    const Region& slot = FindSlot(regions, range, name);
    const OutputTensor& tensor = file.tensors[slot.tensor];
    if (op.dst_dtype != tensor.dtype) {
      ThrowInvalid(name + " writes " + std::string(Name(op.dst_dtype)) + " into " + slot.owner +
                   " of dtype " + std::string(Name(tensor.dtype)));
    }
    if (__builtin_add_overflow(written[slot.tensor], static_cast<uint64_t>(count),
                               &written[slot.tensor])) {
      ThrowInvalid(name + ": element count for " + slot.owner + " overflows");
    }
  }
  for (size_t i = 0; i < file.tensors.size(); ++i) {
    const uint64_t expected = static_cast<uint64_t>(NumElements(file.tensors[i].shape));
    if (written[i] != expected) {
      ThrowInvalid("tensor " + file.tensors[i].name + ": copy ops write " +
                   std::to_string(written[i]) + " elements, expected " +
                   std::to_string(expected) + " (shape " +
                   ShapeToString(file.tensors[i].shape) + ")");
    }
  }
}

}  // namespace

uint64_t Plan::OutputBytes() const {
  uint64_t total = 0;
  for (const OutputFilePlan& file : files) total += file.layout.size;
  for (const TextFile& text : text_files) total += text.content.size();
  for (const CopiedFile& copied : copied_files) {
    // Sizes of files to copy are known only if they can be stat'ed now; missing ones count 0
    // here and fail later, when copied, with a proper error.
    struct stat st;
    if (::stat(copied.source_path.c_str(), &st) == 0) total += static_cast<uint64_t>(st.st_size);
  }
  return total;
}

void CheckCoverage(const Plan& plan) {
  for (const OutputFilePlan& file : plan.files) {
    WithContext(file.relative_path, [&] { CheckFile(file, plan.inputs.size()); });
  }
}

}  // namespace mcaconv
