// Planning of a STORED zip archive laid out the way PyTorch's writer (miniz with the zip64 flag)
// lays it out: every record's data starts at a multiple of the alignment thanks to an 'FB' local
// extra field padded with 'Z' bytes, non-empty records carry a data descriptor, and the archive
// ends with a zip64 end record, its locator and a classic end record. See formats.md 1.2.
//
// The planner never touches the data of "slot" records (tensor storages): it reserves their bytes
// and emits CRC patches for them, so the executor fills data and CRCs after planning.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/plan.h"

namespace mcaconv {

class ZipPlanner {
 public:
  static constexpr uint64_t kAlignment = 64;

  // `what` names the archive in error messages, e.g. "archive 'ckpt'".
  explicit ZipPlanner(std::string what);

  // Adds a record holding `data`, whose CRC is computed here. Returns the data offset.
  uint64_t AddBytes(const std::string& name, const std::string& data);
  // Adds a record of `size` bytes written later by the executor; its CRC is left to a CrcPatch.
  // Returns the data offset.
  uint64_t AddSlot(const std::string& name, uint64_t size);

  // Appends the central directory and end records and returns the finished layout
  // (tensor_offsets empty). The planner must not be used afterwards.
  FileLayout Finish();

 private:
  struct Entry {
    std::string name;
    uint64_t header_offset = 0;
    uint64_t size = 0;
    uint32_t crc = 0;
    int patch = -1;  // index into layout_.crc_patches, -1 when the CRC is known
  };

  uint64_t AddRecord(const std::string& name, uint64_t size, const std::string* data);
  void AppendCentralEntry(const Entry& entry);
  void AppendEnd(uint64_t cd_offset, uint64_t cd_size);
  // Appends bytes at the current position, extending the last blob when contiguous.
  void Append(const std::string& bytes);
  // Reserves `n` bytes that no blob covers.
  void Skip(uint64_t n);

  std::string what_;
  uint64_t pos_ = 0;
  FileLayout layout_;
  std::vector<Entry> entries_;
};

}  // namespace mcaconv
