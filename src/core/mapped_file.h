// Read-only memory mapping of a whole input file.
//
// Inputs are never modified: the mapping is PROT_READ and MAP_PRIVATE. A MappedFile owns its
// descriptor and mapping and releases both on destruction. It is movable, not copyable, and safe
// to read from many threads at once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace mcaconv {

class MappedFile {
 public:
  // Maps `path` read-only. Throws Error(kIo) if it cannot be opened or mapped. An empty file maps
  // to size() == 0 and data() == nullptr.
  static MappedFile Open(const std::string& path);

  MappedFile() = default;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  const uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }
  const std::string& path() const { return path_; }
  int fd() const { return fd_; }

  // Hint that [offset, offset + length) will be read soon / sequentially. Best effort.
  void AdviseSequential() const;

 private:
  std::string path_;
  int fd_ = -1;
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
};

}  // namespace mcaconv
