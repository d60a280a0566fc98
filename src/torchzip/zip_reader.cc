#include "torchzip/zip_reader.h"

#include <algorithm>

#include "core/error.h"

namespace mcaconv {
namespace {

constexpr uint32_t kLocalHeaderSig = 0x04034b50;
constexpr uint32_t kCentralSig = 0x02014b50;
constexpr uint32_t kEndSig = 0x06054b50;
constexpr uint32_t kZip64EndSig = 0x06064b50;
constexpr uint32_t kZip64LocatorSig = 0x07064b50;
constexpr uint64_t kLocalHeaderSize = 30;
constexpr uint64_t kCentralHeaderSize = 46;
constexpr uint64_t kEndSize = 22;
constexpr uint64_t kZip64EndSize = 56;
constexpr uint64_t kZip64LocatorSize = 20;
constexpr uint64_t kMaxComment = 0xFFFF;
constexpr uint16_t kZip64ExtraId = 0x0001;

uint16_t U16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
uint32_t U32(const uint8_t* p) { return U16(p) | (static_cast<uint32_t>(U16(p + 2)) << 16); }
uint64_t U64(const uint8_t* p) { return U32(p) | (static_cast<uint64_t>(U32(p + 4)) << 32); }

std::string Hex32(uint32_t v) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out = "0x";
  for (int shift = 28; shift >= 0; shift -= 4) out += kDigits[(v >> shift) & 0xF];
  return out;
}

// Bounds-checked access to the archive bytes plus error reporting with the file path.
class Archive {
 public:
  Archive(const uint8_t* data, uint64_t size, const std::string& path)
      : data_(data), size_(size), path_(path) {}

  uint64_t size() const { return size_; }

  [[noreturn]] void Fail(uint64_t offset, const std::string& what) const {
    ThrowInvalid(path_ + ": offset " + std::to_string(offset) + ": " + what);
  }
  [[noreturn]] void FailUnsupported(uint64_t offset, const std::string& what) const {
    ThrowUnsupported(path_ + ": offset " + std::to_string(offset) + ": " + what);
  }

  // Pointer to [offset, offset + length) after checking it lies inside [0, limit).
  const uint8_t* At(uint64_t offset, uint64_t length, uint64_t limit, const char* what) const {
    if (offset > limit || length > limit - offset)
      Fail(offset, std::string(what) + " of " + std::to_string(length) + " bytes runs past byte " +
                       std::to_string(limit));
    return data_ + offset;
  }

  void ExpectSignature(uint64_t offset, uint32_t expected, const char* what) const {
    uint32_t found = U32(data_ + offset);
    if (found != expected)
      Fail(offset, std::string("bad ") + what + " signature: expected " + Hex32(expected) +
                       ", found " + Hex32(found));
  }

 private:
  const uint8_t* data_;
  uint64_t size_;
  const std::string& path_;
};

struct DirectoryLocation {
  uint64_t entry_count = 0;
  uint64_t offset = 0;
  uint64_t size = 0;
  uint64_t limit = 0;  // first byte after the space the directory may occupy
};

// Scans back for the classic end record; its comment must fit inside the file.
uint64_t FindEndRecord(const Archive& archive) {
  if (archive.size() < kEndSize)
    archive.Fail(0, "file of " + std::to_string(archive.size()) +
                        " bytes is too small to hold a zip end-of-central-directory record");
  uint64_t last = archive.size() - kEndSize;
  uint64_t first = last > kMaxComment ? last - kMaxComment : 0;
  for (uint64_t pos = last + 1; pos-- > first;) {
    const uint8_t* p = archive.At(pos, kEndSize, archive.size(), "end record");
    if (U32(p) != kEndSig) continue;
    if (U16(p + 20) <= archive.size() - kEndSize - pos) return pos;
  }
  archive.Fail(first, "no zip end-of-central-directory record between offsets " +
                          std::to_string(first) + " and " + std::to_string(last) +
                          " (truncated or not a zip file)");
}

DirectoryLocation ReadZip64End(const Archive& archive, uint64_t locator) {
  const uint8_t* loc = archive.At(locator, kZip64LocatorSize, archive.size(), "zip64 locator");
  if (U32(loc + 4) != 0 || U32(loc + 16) != 1)
    archive.FailUnsupported(locator, "multi-disk zip archives are not supported");
  uint64_t record = U64(loc + 8);
  const uint8_t* p = archive.At(record, kZip64EndSize, locator, "zip64 end record");
  archive.ExpectSignature(record, kZip64EndSig, "zip64 end record");
  if (U32(p + 16) != 0 || U32(p + 20) != 0)
    archive.FailUnsupported(record, "multi-disk zip archives are not supported");
  if (U64(p + 24) != U64(p + 32))
    archive.Fail(record, "zip64 end record counts " + std::to_string(U64(p + 24)) +
                             " entries on this disk but " + std::to_string(U64(p + 32)) +
                             " in total");
  return {U64(p + 32), U64(p + 48), U64(p + 40), record};
}

DirectoryLocation LocateDirectory(const Archive& archive) {
  uint64_t end = FindEndRecord(archive);
  DirectoryLocation dir;
  bool zip64 = false;
  if (end >= kZip64LocatorSize) {
    uint64_t locator = end - kZip64LocatorSize;
    const uint8_t* loc = archive.At(locator, 4, archive.size(), "zip64 locator");
    zip64 = U32(loc) == kZip64LocatorSig;
    if (zip64) dir = ReadZip64End(archive, locator);
  }
  if (!zip64) {
    const uint8_t* p = archive.At(end, kEndSize, archive.size(), "end record");
    if (U16(p + 4) != 0 || U16(p + 6) != 0)
      archive.FailUnsupported(end, "multi-disk zip archives are not supported");
    if (U16(p + 8) != U16(p + 10))
      archive.Fail(end, "end record counts " + std::to_string(U16(p + 8)) +
                            " entries on this disk but " + std::to_string(U16(p + 10)) +
                            " in total");
    dir = {U16(p + 10), U32(p + 16), U32(p + 12), end};
  }
  archive.At(dir.offset, dir.size, dir.limit, "central directory");
  if (dir.entry_count > dir.size / kCentralHeaderSize)
    archive.Fail(dir.offset, "central directory of " + std::to_string(dir.size) +
                                 " bytes cannot hold the " + std::to_string(dir.entry_count) +
                                 " entries the end record declares");
  return dir;
}

// Replaces saturated 32-bit fields of a central entry with the values of its zip64 extra field.
void ApplyZip64Extra(const Archive& archive, uint64_t extra, uint64_t extra_end, ZipEntry& entry,
                     bool need_size, bool need_csize, bool need_offset) {
  uint64_t pos = extra;
  while (extra_end - pos >= 4) {
    const uint8_t* p = archive.At(pos, 4, extra_end, "extra field header");
    uint16_t id = U16(p);
    uint64_t length = U16(p + 2);
    const uint8_t* body = archive.At(pos + 4, length, extra_end, "extra field");
    if (id == kZip64ExtraId) {
      uint64_t needed = 8 * (need_size + need_csize + need_offset);
      if (length < needed)
        archive.Fail(pos, "zip64 extra field of " + std::to_string(length) + " bytes, expected " +
                              std::to_string(needed) + " for record '" + entry.name + "'");
      if (need_size) {
        entry.size = U64(body);
        body += 8;
      }
      if (need_csize) {
        entry.compressed_size = U64(body);
        body += 8;
      }
      if (need_offset) entry.header_offset = U64(body);
      return;
    }
    pos += 4 + length;
  }
  if (need_size || need_csize || need_offset)
    archive.Fail(extra, "record '" + entry.name + "' has saturated sizes but no zip64 extra field");
}

// Reads the central entry at `pos`; returns the offset just past it.
uint64_t ReadCentralEntry(const Archive& archive, uint64_t pos, uint64_t end, ZipEntry& entry) {
  const uint8_t* p = archive.At(pos, kCentralHeaderSize, end, "central directory entry");
  archive.ExpectSignature(pos, kCentralSig, "central directory entry");
  uint64_t name_len = U16(p + 28), extra_len = U16(p + 30), comment_len = U16(p + 32);
  const uint8_t* name = archive.At(pos + kCentralHeaderSize, name_len, end, "entry name");
  entry.name.assign(reinterpret_cast<const char*>(name), name_len);
  entry.directory_offset = pos;
  entry.method = U16(p + 10);
  entry.compressed_size = U32(p + 20);
  entry.size = U32(p + 24);
  entry.header_offset = U32(p + 42);
  uint64_t extra = pos + kCentralHeaderSize + name_len;
  archive.At(extra, extra_len + comment_len, end, "entry extra field and comment");
  ApplyZip64Extra(archive, extra, extra + extra_len, entry, entry.size == 0xFFFFFFFF,
                  entry.compressed_size == 0xFFFFFFFF, entry.header_offset == 0xFFFFFFFF);
  if (U16(p + 8) & 1) archive.FailUnsupported(pos, "record '" + entry.name + "' is encrypted");
  if (entry.method == 0 && entry.compressed_size != entry.size)
    archive.Fail(pos, "stored record '" + entry.name + "' has compressed size " +
                          std::to_string(entry.compressed_size) + " but size " +
                          std::to_string(entry.size));
  return extra + extra_len + comment_len;
}

// Validates the local header of `entry` and sets its data offset; data must end before `limit`.
void LocateData(const Archive& archive, uint64_t limit, ZipEntry& entry) {
  uint64_t pos = entry.header_offset;
  const uint8_t* p = archive.At(pos, kLocalHeaderSize, limit, "local header");
  archive.ExpectSignature(pos, kLocalHeaderSig, "local header");
  uint64_t name_len = U16(p + 26), extra_len = U16(p + 28);
  entry.data_offset = pos + kLocalHeaderSize + name_len + extra_len;
  archive.At(entry.data_offset, entry.compressed_size, limit,
             ("data of record '" + entry.name + "'").c_str());
}

}  // namespace

ZipDirectory ZipDirectory::Parse(const uint8_t* data, uint64_t size, const std::string& path) {
  Archive archive(data, size, path);
  DirectoryLocation location = LocateDirectory(archive);

  ZipDirectory dir;
  dir.path_ = path;
  dir.directory_offset_ = location.offset;
  dir.entries_.resize(location.entry_count);
  uint64_t pos = location.offset;
  uint64_t end = location.offset + location.size;
  for (ZipEntry& entry : dir.entries_) {
    pos = ReadCentralEntry(archive, pos, end, entry);
    LocateData(archive, location.offset, entry);
  }
  if (dir.entries_.empty()) archive.Fail(location.offset, "zip archive has no records");

  const std::string& first = dir.entries_[0].name;
  size_t slash = first.find('/');
  if (slash == std::string::npos || slash == 0)
    archive.Fail(dir.entries_[0].directory_offset,
                 "first record '" + first + "' is not inside a top-level folder");
  dir.prefix_ = first.substr(0, slash);
  for (size_t i = 0; i < dir.entries_.size(); ++i) {
    const ZipEntry& entry = dir.entries_[i];
    if (entry.name.compare(0, slash + 1, first, 0, slash + 1) != 0)
      archive.Fail(entry.directory_offset, "record '" + entry.name + "' is outside the folder '" +
                                               dir.prefix_ + "/' of the first record");
    if (!dir.by_name_.emplace(entry.name, i).second)
      archive.Fail(entry.directory_offset, "duplicate record '" + entry.name + "'");
  }
  return dir;
}

const ZipEntry* ZipDirectory::Find(std::string_view relative_name) const {
  auto it = by_name_.find(prefix_ + "/" + std::string(relative_name));
  return it == by_name_.end() ? nullptr : &entries_[it->second];
}

const ZipEntry* ZipDirectory::FindStored(std::string_view relative_name) const {
  const ZipEntry* entry = Find(relative_name);
  if (entry != nullptr && entry->method != 0)
    ThrowUnsupported(path_ + ": offset " + std::to_string(entry->directory_offset) + ": record '" +
                     entry->name + "' uses compression method " + std::to_string(entry->method) +
                     "; only STORED records can be memory-mapped");
  return entry;
}

}  // namespace mcaconv
