// Read-only view of the central directory of a STORED zip archive held in memory (a mapped
// torch.save file). See formats.md 1.2-1.4.
//
// The reader follows what PyTorch's miniz reader relies on: the end-of-central-directory record is
// found by scanning back from the end of the file over at most a 64 KiB comment, a zip64 locator in
// front of it is followed to the zip64 end record, and the central directory is the only source of
// names, sizes and header offsets. Local headers are read only to find where each record's data
// starts. Every length and offset is checked against the buffer; nothing is read out of bounds.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace mcaconv {

struct ZipEntry {
  std::string name;              // full name, e.g. "archive/data/0"
  uint16_t method = 0;           // 0 = STORED, 8 = DEFLATED, ...
  uint64_t compressed_size = 0;  // bytes stored in the archive
  uint64_t size = 0;             // uncompressed size
  uint64_t header_offset = 0;    // offset of the local file header
  uint64_t data_offset = 0;      // offset of the first data byte
  uint64_t directory_offset = 0;  // offset of this entry's central-directory record
};

class ZipDirectory {
 public:
  // Parses the archive `data[0, size)`; `path` names it in error messages. Throws
  // Error(kInvalidInput) with the path and a byte offset on any structural defect (missing or
  // truncated end records, bad signatures, entry count mismatch, offsets or sizes out of bounds,
  // duplicate names, an entry outside the common top-level folder), and Error(kUnsupported) for
  // multi-disk or encrypted archives. Compressed entries are listed; StoredData rejects them.
  static ZipDirectory Parse(const uint8_t* data, uint64_t size, const std::string& path);

  const std::vector<ZipEntry>& entries() const { return entries_; }
  // Text before the first '/' of entry 0's name; every entry's name starts with prefix() + "/".
  const std::string& prefix() const { return prefix_; }
  // Offset of the central directory, for messages about records that are missing from it.
  uint64_t directory_offset() const { return directory_offset_; }

  // The entry named prefix() + "/" + relative_name, or nullptr.
  const ZipEntry* Find(std::string_view relative_name) const;
  // Like Find, but throws Error(kUnsupported) naming the record when it is not STORED.
  const ZipEntry* FindStored(std::string_view relative_name) const;

 private:
  std::string path_;
  std::string prefix_;
  uint64_t directory_offset_ = 0;
  std::vector<ZipEntry> entries_;
  std::unordered_map<std::string, size_t> by_name_;
};

}  // namespace mcaconv
