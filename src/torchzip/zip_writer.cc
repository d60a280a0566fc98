#include "torchzip/zip_writer.h"

#include <zlib.h>

#include <utility>

#include "core/error.h"

namespace mcaconv {
namespace {

constexpr uint32_t kLocalHeaderSig = 0x04034b50;
constexpr uint32_t kDescriptorSig = 0x08074b50;
constexpr uint32_t kCentralSig = 0x02014b50;
constexpr uint32_t kZip64EndSig = 0x06064b50;
constexpr uint32_t kZip64LocatorSig = 0x07064b50;
constexpr uint32_t kEndSig = 0x06054b50;

constexpr uint16_t kFlagUtf8 = 0x0800;
constexpr uint16_t kFlagDescriptor = 0x0008;
constexpr uint16_t kZip64ExtraId = 0x0001;
constexpr uint16_t kPaddingExtraId = 0x4246;  // "FB" as stored little-endian
constexpr uint64_t kSaturated = 0xFFFFFFFF;
constexpr uint64_t kLocalHeaderSize = 30;
// Far beyond any real checkpoint; keeps every offset computation free of overflow.
constexpr uint64_t kMaxFileSize = uint64_t{1} << 62;

void PutU16(std::string& out, uint16_t v) {
  for (int i = 0; i < 2; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
}
void PutU32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
}
void PutU64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
}

uint32_t Crc32(const std::string& data) {
  const uLong crc = crc32_z(0L, reinterpret_cast<const Bytef*>(data.data()), data.size());
  return static_cast<uint32_t>(crc);
}

uint16_t Flags(uint64_t size) { return size > 0 ? (kFlagUtf8 | kFlagDescriptor) : kFlagUtf8; }

// The zip64 extended-information field: only the values that do not fit 32 bits, in the order
// uncompressed size, compressed size, local-header offset. Empty when nothing overflows.
std::string Zip64Extra(uint64_t size, uint64_t header_offset) {
  const bool big_size = size >= kSaturated;
  const bool big_offset = header_offset >= kSaturated;
  if (!big_size && !big_offset) return {};
  std::string extra;
  PutU16(extra, kZip64ExtraId);
  PutU16(extra, static_cast<uint16_t>((big_size ? 16 : 0) + (big_offset ? 8 : 0)));
  if (big_size) {
    PutU64(extra, size);
    PutU64(extra, size);
  }
  if (big_offset) PutU64(extra, header_offset);
  return extra;
}

uint32_t Saturate(uint64_t v) { return static_cast<uint32_t>(v >= kSaturated ? kSaturated : v); }

}  // namespace

ZipPlanner::ZipPlanner(std::string what) : what_(std::move(what)) {}

uint64_t ZipPlanner::AddBytes(const std::string& name, const std::string& data) {
  return AddRecord(name, data.size(), &data);
}

uint64_t ZipPlanner::AddSlot(const std::string& name, uint64_t size) {
  return AddRecord(name, size, nullptr);
}

uint64_t ZipPlanner::AddRecord(const std::string& name, uint64_t size, const std::string* data) {
  if (name.empty() || name.size() > 0xFFFF)
    ThrowInvalid("zip writer: " + what_ + ": record name length " + std::to_string(name.size()) +
                 " at offset " + std::to_string(pos_) + " must be 1..65535");
  Entry entry{name, pos_, size, 0, -1};
  const std::string zip64 = Zip64Extra(size, entry.header_offset);

  // The data start must land on the alignment; PyTorch pads with an 'FB' field of 'Z' bytes.
  const uint64_t unpadded = pos_ + kLocalHeaderSize + name.size() + zip64.size() + 4;
  const uint64_t padding = (kAlignment - unpadded % kAlignment) % kAlignment;

  std::string header;
  PutU32(header, kLocalHeaderSig);
  PutU16(header, 0);  // version needed, as PyTorch writes it
  PutU16(header, Flags(size));
  PutU16(header, 0);  // method: stored
  PutU32(header, 0);  // time and date
  PutU32(header, 0);  // crc32: in the data descriptor
  PutU32(header, 0);  // compressed size: idem
  PutU32(header, 0);  // uncompressed size: idem
  PutU16(header, static_cast<uint16_t>(name.size()));
  PutU16(header, static_cast<uint16_t>(zip64.size() + 4 + padding));
  header += name;
  header += zip64;
  PutU16(header, kPaddingExtraId);
  PutU16(header, static_cast<uint16_t>(padding));
  header.append(padding, 'Z');
  Append(header);

  const uint64_t data_offset = pos_;
  if (data != nullptr) {
    entry.crc = Crc32(*data);
    Append(*data);
  } else {
    Skip(size);
  }

  if (size > 0) {
    std::string descriptor;
    PutU32(descriptor, kDescriptorSig);
    if (data == nullptr) {
      entry.patch = static_cast<int>(layout_.crc_patches.size());
      layout_.crc_patches.push_back({data_offset, size, {pos_ + 4}});
    }
    PutU32(descriptor, entry.crc);
    // miniz widens the descriptor sizes whenever it emitted a zip64 field for the record.
    if (zip64.empty()) {
      PutU32(descriptor, static_cast<uint32_t>(size));
      PutU32(descriptor, static_cast<uint32_t>(size));
    } else {
      PutU64(descriptor, size);
      PutU64(descriptor, size);
    }
    Append(descriptor);
  }
  entries_.push_back(std::move(entry));
  return data_offset;
}

void ZipPlanner::AppendCentralEntry(const Entry& entry) {
  // The central copy of the zip64 field holds only the saturated values; no 'FB' padding here.
  const std::string zip64 = Zip64Extra(entry.size, entry.header_offset);
  std::string cd;
  PutU32(cd, kCentralSig);
  PutU16(cd, 0);  // version made by
  PutU16(cd, 0);  // version needed
  PutU16(cd, Flags(entry.size));
  PutU16(cd, 0);  // method: stored
  PutU32(cd, 0);  // time and date
  if (entry.patch >= 0) layout_.crc_patches[entry.patch].patch_offsets.push_back(pos_ + 16);
  PutU32(cd, entry.crc);
  PutU32(cd, Saturate(entry.size));
  PutU32(cd, Saturate(entry.size));
  PutU16(cd, static_cast<uint16_t>(entry.name.size()));
  PutU16(cd, static_cast<uint16_t>(zip64.size()));
  PutU16(cd, 0);  // comment length
  PutU16(cd, 0);  // disk number
  PutU16(cd, 0);  // internal attributes
  PutU32(cd, 0);  // external attributes
  PutU32(cd, Saturate(entry.header_offset));
  cd += entry.name;
  cd += zip64;
  Append(cd);
}

void ZipPlanner::AppendEnd(uint64_t cd_offset, uint64_t cd_size) {
  const uint64_t zip64_end_offset = pos_;
  const uint64_t count = entries_.size();
  std::string end;
  PutU32(end, kZip64EndSig);
  PutU64(end, 44);      // size of the rest of this record
  PutU16(end, 0x031E);  // version made by, as miniz writes it
  PutU16(end, 0x002D);  // version needed: 4.5, zip64
  PutU32(end, 0);       // this disk
  PutU32(end, 0);       // disk with the central directory
  PutU64(end, count);
  PutU64(end, count);
  PutU64(end, cd_size);
  PutU64(end, cd_offset);

  PutU32(end, kZip64LocatorSig);
  PutU32(end, 0);  // disk with the zip64 end record
  PutU64(end, zip64_end_offset);
  PutU32(end, 1);  // total disks

  const uint16_t short_count = static_cast<uint16_t>(count >= 0xFFFF ? 0xFFFF : count);
  PutU32(end, kEndSig);
  PutU16(end, 0);  // this disk
  PutU16(end, 0);  // disk with the central directory
  PutU16(end, short_count);
  PutU16(end, short_count);
  PutU32(end, Saturate(cd_size));
  PutU32(end, Saturate(cd_offset));
  PutU16(end, 0);  // comment length
  Append(end);
}

FileLayout ZipPlanner::Finish() {
  const uint64_t cd_offset = pos_;
  for (const Entry& entry : entries_) AppendCentralEntry(entry);
  const uint64_t cd_size = pos_ - cd_offset;
  if (cd_size >= kSaturated)
    ThrowUnsupported("zip writer: " + what_ + ": central directory of " + std::to_string(cd_size) +
                     " bytes at offset " + std::to_string(cd_offset) + " exceeds 4 GiB");
  AppendEnd(cd_offset, cd_size);
  layout_.size = pos_;
  return std::move(layout_);
}

void ZipPlanner::Append(const std::string& bytes) {
  if (bytes.empty()) return;
  if (layout_.blobs.empty() ||
      layout_.blobs.back().offset + layout_.blobs.back().bytes.size() != pos_)
    layout_.blobs.push_back({pos_, {}});
  layout_.blobs.back().bytes += bytes;
  pos_ += bytes.size();
}

void ZipPlanner::Skip(uint64_t n) {
  if (n > kMaxFileSize - pos_)
    ThrowInvalid("zip writer: " + what_ + ": record of " + std::to_string(n) +
                 " bytes at offset " + std::to_string(pos_) + " overflows the file size");
  pos_ += n;
}

}  // namespace mcaconv
