#include "engine/executor.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <isa-l/crc.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "cast/cast.h"
#include "core/error.h"
#include "core/mapped_file.h"
#include "engine/box.h"

namespace mcaconv {
namespace {

namespace fs = std::filesystem;

constexpr uint64_t kWorkItemBytes = 8ull << 20;  // destination bytes per work item
constexpr uint64_t kCrcChunkBytes = 16ull << 20;
constexpr int64_t kStageElements = 8192;          // staging buffer for strided rows
constexpr uint64_t kPwriteMinRowBytes = 64 << 10;  // contiguous rows this long skip the mapping

// Runs fn(i) for every i in [0, count) on up to `threads` threads. The first exception stops the
// remaining items and is rethrown on the calling thread.
template <typename Fn>
void ParallelFor(size_t count, int threads, Fn&& fn) {
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::exception_ptr error;
  std::mutex error_mutex;
  auto worker = [&] {
    for (size_t i = next++; i < count && !failed; i = next++) {
      try {
        fn(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!failed.exchange(true)) error = std::current_exception();
      }
    }
  };
  const size_t extra = std::min<size_t>(count, static_cast<size_t>(std::max(threads, 1))) - 1;
  std::vector<std::thread> pool;
  for (size_t t = 0; t < extra && count > 0; ++t) pool.emplace_back(worker);
  worker();
  for (std::thread& t : pool) t.join();
  if (error) std::rethrow_exception(error);
}

// A box with size-1 dimensions dropped and dimensions merged where both operands are laid out
// contiguously across them, so contiguous copies become one long row.
struct Box {
  Shape shape;
  Shape a_strides;
  Shape b_strides;
};

Box Simplify(const Shape& shape, const Shape& a_strides, const Shape& b_strides) {
  Box box;
  for (size_t k = 0; k < shape.size(); ++k) {
    if (shape[k] == 1) continue;
    const size_t n = box.shape.size();
    if (n > 0 && box.a_strides[n - 1] == a_strides[k] * shape[k] &&
        box.b_strides[n - 1] == b_strides[k] * shape[k]) {
      box.shape[n - 1] *= shape[k];
      box.a_strides[n - 1] = a_strides[k];
      box.b_strides[n - 1] = b_strides[k];
      continue;
    }
    box.shape.push_back(shape[k]);
    box.a_strides.push_back(a_strides[k]);
    box.b_strides.push_back(b_strides[k]);
  }
  if (box.shape.empty()) box = {{1}, {1}, {1}};
  return box;
}

// Calls fn(a_elem_offset, b_elem_offset, run_length) for each run of consecutive elements of the
// last dimension in flat (row-major) element range [begin, end) of `box`.
template <typename Fn>
void ForEachRow(const Box& box, int64_t begin, int64_t end, Fn&& fn) {
  const size_t n = box.shape.size();
  std::vector<int64_t> index(n);
  int64_t rest = begin;
  for (size_t k = n; k-- > 0;) {
    index[k] = rest % box.shape[k];
    rest /= box.shape[k];
  }
  for (int64_t flat = begin; flat < end;) {
    int64_t a = 0;
    int64_t b = 0;
    for (size_t k = 0; k < n; ++k) {
      a += index[k] * box.a_strides[k];
      b += index[k] * box.b_strides[k];
    }
    const int64_t run = std::min(end - flat, box.shape[n - 1] - index[n - 1]);
    fn(a, b, run);
    flat += run;
    index[n - 1] += run;
    for (size_t k = n - 1; k > 0 && index[k] == box.shape[k]; --k) {
      index[k] = 0;
      ++index[k - 1];
    }
  }
}

void CopyStrided(const uint8_t* src, int64_t src_step, uint8_t* dst, int64_t dst_step,
                 int64_t count, int size) {
  for (int64_t i = 0; i < count; ++i) std::memcpy(dst + i * dst_step, src + i * src_step, size);
}

// Copies (converting) `count` elements read every src_stride elements to every dst_stride
// elements. Strided operands go through `stage`, a small per-thread buffer.
void CopyRow(const uint8_t* src, int64_t src_stride, DType src_dtype, uint8_t* dst,
             int64_t dst_stride, DType dst_dtype, int64_t count, std::vector<uint8_t>& stage) {
  const int src_size = ElementSize(src_dtype);
  const int dst_size = ElementSize(dst_dtype);
  auto convert = [&](const uint8_t* from, uint8_t* to, int64_t n) {
    if (src_dtype == dst_dtype) {
      std::memcpy(to, from, static_cast<size_t>(n) * src_size);
    } else {
      CastElements(from, src_dtype, to, dst_dtype, static_cast<size_t>(n));
    }
  };
  if (src_stride == 1 && dst_stride == 1) {
    convert(src, dst, count);
    return;
  }
  stage.resize(static_cast<size_t>(kStageElements) * (src_size + dst_size));
  uint8_t* gathered = stage.data();
  uint8_t* converted = stage.data() + kStageElements * src_size;
  for (int64_t done = 0; done < count; done += kStageElements) {
    const int64_t n = std::min(kStageElements, count - done);
    const uint8_t* from = src + done * src_stride * src_size;
    uint8_t* to = dst + done * dst_stride * dst_size;
    if (src_stride != 1) {
      CopyStrided(from, src_stride * src_size, gathered, src_size, n, src_size);
      from = gathered;
    }
    if (dst_stride == 1) {
      convert(from, to, n);
      continue;
    }
    const uint8_t* ready = from;
    if (src_dtype != dst_dtype) {
      convert(from, converted, n);
      ready = converted;
    }
    CopyStrided(ready, dst_size, to, dst_stride * dst_size, n, dst_size);
  }
}

void PwriteAll(int fd, const uint8_t* data, uint64_t size, uint64_t offset,
               const std::string& path) {
  while (size > 0) {
    const size_t chunk = static_cast<size_t>(std::min<uint64_t>(size, 1ull << 30));
    const ssize_t written = ::pwrite(fd, data, chunk, static_cast<off_t>(offset));
    if (written < 0 && errno == EINTR) continue;
    if (written <= 0) {
      ThrowIo(path + ": write of " + std::to_string(size) + " bytes at offset " +
                  std::to_string(offset) + " failed",
              written < 0 ? errno : EIO);
    }
    data += written;
    size -= static_cast<uint64_t>(written);
    offset += static_cast<uint64_t>(written);
  }
}

// One output file being written: descriptor plus a shared read-write mapping of all of it.
class OutputFile {
 public:
  OutputFile(const std::string& path, uint64_t size) : path_(path), size_(size) {}
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;
  ~OutputFile() {
    if (map_ != nullptr) ::munmap(map_, size_);
    if (fd_ >= 0) ::close(fd_);
  }

  // Creates (truncating) the file at its final size and maps it. Separate from the constructor
  // so the destructor releases whatever was acquired when a step fails.
  void Create() {
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) ThrowIo("cannot create " + path_, errno);
    if (::ftruncate(fd_, static_cast<off_t>(size_)) != 0) {
      ThrowIo(path_ + ": cannot set size to " + std::to_string(size_) + " bytes", errno);
    }
    Reserve();
    if (size_ == 0) return;
    void* p = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
    if (p == MAP_FAILED) ThrowIo(path_ + ": cannot map for writing", errno);
    map_ = static_cast<uint8_t*>(p);
  }

  int fd() const { return fd_; }
  uint8_t* map() const { return map_; }
  const std::string& path() const { return path_; }

  // Unmaps, starts writing the file back to disk and closes, reporting failures (the destructor
  // cannot). The fsync comes later (SyncAll), so that writeback overlaps copying the next file.
  void Finish() {
    if (map_ != nullptr && ::munmap(map_, size_) != 0) ThrowIo(path_ + ": munmap failed", errno);
    map_ = nullptr;
    ::sync_file_range(fd_, 0, 0, SYNC_FILE_RANGE_WRITE);
    const int fd = std::exchange(fd_, -1);
    if (::close(fd) != 0) ThrowIo(path_ + ": close failed", errno);
  }

 private:
  // Allocates every block now: a full disk then fails here with a clear message instead of
  // raising SIGBUS on a mapped write later. File systems without fallocate keep a sparse file.
  void Reserve() {
    if (size_ == 0) return;
    const int rc = ::posix_fallocate(fd_, 0, static_cast<off_t>(size_));
    if (rc == 0 || rc == EINVAL || rc == EOPNOTSUPP) return;
    if (rc == ENOSPC) {
      ThrowIo(path_ + ": not enough disk space for " + std::to_string(size_) + " bytes", rc);
    }
    ThrowIo(path_ + ": cannot allocate " + std::to_string(size_) + " bytes", rc);
  }

  std::string path_;
  uint64_t size_ = 0;
  int fd_ = -1;
  uint8_t* map_ = nullptr;
};

// A slice [begin, end) of the flat elements of one CopyOp.
struct WorkItem {
  size_t op = 0;
  int64_t begin = 0;
  int64_t end = 0;
};

// Shared state of one run: mapped inputs, progress accounting and cancellation.
class Runner {
 public:
  Runner(const Plan& plan, const std::string& output_dir, const ExecuteOptions& options)
      : plan_(plan), output_dir_(output_dir), options_(options) {
    const unsigned cpus = std::max(1u, std::thread::hardware_concurrency());
    threads_ = options.threads > 0 ? options.threads : static_cast<int>(cpus);
  }

  void Run();

 private:
  void MapInputs();
  void CheckSourceRanges(const OutputFilePlan& file) const;
  void RunChecks() const;
  void RunCheck(const CompareOp& check) const;
  std::string OutputPath(const std::string& relative_path) const;
  void WriteSmallFiles() const;
  void WriteFile(const OutputFilePlan& file);
  void RunItem(const OutputFilePlan& file, OutputFile& out, const std::vector<Box>& boxes,
               const WorkItem& item);
  void PatchCrcs(const FileLayout& layout, OutputFile& out) const;
  void ReportProgress(uint64_t bytes, const std::string& path);
  void SyncAll() const;
  void CopyRange(int in_fd, uint64_t from, const uint8_t* data, uint64_t bytes, uint64_t to,
                 const OutputFile& out);

  const Plan& plan_;
  std::string output_dir_;
  const ExecuteOptions& options_;
  int threads_ = 1;
  std::vector<MappedFile> inputs_;
  uint64_t total_bytes_ = 0;
  uint64_t done_bytes_ = 0;
  std::mutex progress_mutex_;
  std::atomic<bool> cancelled_{false};
  std::atomic<bool> copy_file_range_works_{true};
};

uint64_t OpBytes(const CopyOp& op) {
  return static_cast<uint64_t>(NumElements(op.shape)) * ElementSize(op.dst_dtype);
}

void Runner::Run() {
  CheckCoverage(plan_);
  MapInputs();
  for (const OutputFilePlan& file : plan_.files) {
    CheckSourceRanges(file);
    for (const CopyOp& op : file.ops) total_bytes_ += OpBytes(op);
  }
  RunChecks();
  WriteSmallFiles();
  for (const OutputFilePlan& file : plan_.files) WriteFile(file);
  SyncAll();
}

// Flushes every written file to disk, in parallel; writeback started as each file finished.
void Runner::SyncAll() const {
  ParallelFor(plan_.files.size(), threads_, [&](size_t i) {
    const std::string path = OutputPath(plan_.files[i].relative_path);
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) ThrowIo("cannot reopen " + path + " to sync it", errno);
    const int rc = ::fsync(fd);
    const int error = errno;
    ::close(fd);
    if (rc != 0) ThrowIo(path + ": fsync failed", error);
  });
}

void Runner::MapInputs() {
  inputs_.reserve(plan_.inputs.size());
  for (const std::string& path : plan_.inputs) inputs_.push_back(MappedFile::Open(path));
}

void Runner::CheckSourceRanges(const OutputFilePlan& file) const {
  for (size_t j = 0; j < file.ops.size(); ++j) {
    const CopyOp& op = file.ops[j];
    if (NumElements(op.shape) == 0) continue;
    const MappedFile& input = inputs_[op.src_file];
    ByteRange range;
    if (!BoxByteRange(op.src_offset, op.shape, op.src_strides, ElementSize(op.src_dtype), &range) ||
        range.end > input.size()) {
      ThrowInvalid(OutputPath(file.relative_path) + ": copy op " + std::to_string(j) +
                   " reads bytes " + RangeToString(range) + " of " + input.path() +
                   ", which has " + std::to_string(input.size()) + " bytes");
    }
  }
}

void Runner::RunChecks() const {
  for (const CompareOp& check : plan_.checks) {
    const bool shapes_ok = check.a_strides.size() == check.shape.size() &&
                           check.b_strides.size() == check.shape.size();
    const int inputs = static_cast<int>(inputs_.size());
    if (!shapes_ok || check.a_file < 0 || check.a_file >= inputs || check.b_file < 0 ||
        check.b_file >= inputs) {
      ThrowInvalid(check.what + ": malformed compare op (strides or input index)");
    }
    if (NumElements(check.shape) == 0) continue;
    const int size = ElementSize(check.dtype);
    for (const auto& [file, offset, strides] :
         {std::tuple{check.a_file, check.a_offset, &check.a_strides},
          std::tuple{check.b_file, check.b_offset, &check.b_strides}}) {
      ByteRange range;
      if (!BoxByteRange(offset, check.shape, *strides, size, &range) ||
          range.end > inputs_[file].size()) {
        ThrowInvalid(check.what + ": compare reads bytes " + RangeToString(range) + " of " +
                     inputs_[file].path() + ", which has " +
                     std::to_string(inputs_[file].size()) + " bytes");
      }
    }
  }
  ParallelFor(plan_.checks.size(), threads_, [&](size_t i) { RunCheck(plan_.checks[i]); });
}

bool IsFloat(DType dtype) {
  return IsCastable(dtype) || dtype == DType::F64;
}

double ElementAsDouble(const uint8_t* p, DType dtype) {
  if (dtype == DType::F64) {
    double d;
    std::memcpy(&d, p, 8);
    return d;
  }
  float f;
  CastElements(p, dtype, &f, DType::F32, 1);
  return f;
}

void Runner::RunCheck(const CompareOp& check) const {
  const int64_t count = NumElements(check.shape);
  if (count == 0) return;
  const int size = ElementSize(check.dtype);
  const uint8_t* a = inputs_[check.a_file].data() + check.a_offset;
  const uint8_t* b = inputs_[check.b_file].data() + check.b_offset;
  const Box box = Simplify(check.shape, check.a_strides, check.b_strides);
  const int64_t a_step = box.a_strides.back() * size;
  const int64_t b_step = box.b_strides.back() * size;
  const bool is_float = IsFloat(check.dtype);
  int64_t first_mismatch = -1;
  double largest = 0;  // over elements outside the tolerance
  int64_t flat = 0;
  ForEachRow(box, 0, count, [&](int64_t ao, int64_t bo, int64_t run) {
    const bool rows_dense = a_step == size && b_step == size;
    if (rows_dense && std::memcmp(a + ao * size, b + bo * size, run * size) == 0) {
      flat += run;
      return;
    }
    for (int64_t i = 0; i < run; ++i) {
      const uint8_t* x = a + (ao * size + i * a_step);
      const uint8_t* y = b + (bo * size + i * b_step);
      if (std::memcmp(x, y, size) == 0) continue;
      if (!is_float) {
        if (first_mismatch < 0) first_mismatch = flat + i;
        continue;
      }
      // NaN against anything (or inf - inf) gives a NaN difference: never within tolerance.
      const double diff =
          std::fabs(ElementAsDouble(x, check.dtype) - ElementAsDouble(y, check.dtype));
      if (check.tolerance > 0 && diff <= check.tolerance) continue;
      if (first_mismatch < 0) first_mismatch = flat + i;
      if (!std::isnan(largest)) largest = std::isnan(diff) ? diff : std::max(largest, diff);
    }
    flat += run;
  });
  if (first_mismatch < 0) return;
  std::string message = check.what + ": replicas differ (" + inputs_[check.a_file].path() +
                        " vs " + inputs_[check.b_file].path() + "), first at element " +
                        std::to_string(first_mismatch);
  if (is_float) {
    char text[64];
    std::snprintf(text, sizeof(text), "%.9g (tolerance %.9g)", largest, check.tolerance);
    message += std::string(", largest absolute difference ") + text;
  }
  ThrowInvalid(message);
}

std::string Runner::OutputPath(const std::string& relative_path) const {
  const fs::path relative(relative_path);
  bool escapes = relative.empty() || relative.is_absolute();
  for (const fs::path& part : relative) escapes = escapes || part == "..";
  if (escapes) ThrowInvalid("output path '" + relative_path + "' leaves the output directory");
  return (fs::path(output_dir_) / relative).string();
}

void CreateParent(const std::string& path) {
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  if (ec) ThrowIo("cannot create the folder of " + path, ec.value());
}

void Runner::WriteSmallFiles() const {
  for (const TextFile& text : plan_.text_files) {
    const std::string path = OutputPath(text.relative_path);
    CreateParent(path);
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(text.content.data(), static_cast<std::streamsize>(text.content.size()));
    out.close();
    if (!out) ThrowIo("cannot write " + path, errno != 0 ? errno : EIO);
  }
  for (const CopiedFile& copied : plan_.copied_files) {
    const std::string path = OutputPath(copied.relative_path);
    CreateParent(path);
    std::error_code ec;
    fs::copy_file(copied.source_path, path, fs::copy_options::overwrite_existing, ec);
    if (ec) ThrowIo("cannot copy " + copied.source_path + " to " + path, ec.value());
  }
}

void Runner::WriteFile(const OutputFilePlan& file) {
  const std::string path = OutputPath(file.relative_path);
  CreateParent(path);
  OutputFile out(path, file.layout.size);
  out.Create();
  for (const Blob& blob : file.layout.blobs) {
    PwriteAll(out.fd(), reinterpret_cast<const uint8_t*>(blob.bytes.data()), blob.bytes.size(),
              blob.offset, path);
  }

  std::vector<Box> boxes;
  std::vector<WorkItem> items;
  for (size_t j = 0; j < file.ops.size(); ++j) {
    const CopyOp& op = file.ops[j];
    boxes.push_back(Simplify(op.shape, op.src_strides, op.dst_strides));
    const int64_t count = NumElements(op.shape);
    const int64_t per_item =
        std::max<int64_t>(1, static_cast<int64_t>(kWorkItemBytes) / ElementSize(op.dst_dtype));
    for (int64_t begin = 0; begin < count; begin += per_item) {
      items.push_back({j, begin, std::min(count, begin + per_item)});
    }
  }
  ParallelFor(items.size(), threads_, [&](size_t i) { RunItem(file, out, boxes, items[i]); });
  if (cancelled_) ThrowIo(path + ": conversion cancelled", ECANCELED);

  PatchCrcs(file.layout, out);
  out.Finish();
}

void Runner::RunItem(const OutputFilePlan& file, OutputFile& out, const std::vector<Box>& boxes,
                     const WorkItem& item) {
  if (cancelled_) return;
  thread_local std::vector<uint8_t> stage;
  const CopyOp& op = file.ops[item.op];
  const Box& box = boxes[item.op];
  const int src_size = ElementSize(op.src_dtype);
  const int dst_size = ElementSize(op.dst_dtype);
  const uint8_t* src = inputs_[op.src_file].data() + op.src_offset;
  const int64_t src_stride = box.a_strides.back();
  const int64_t dst_stride = box.b_strides.back();
  const bool contiguous_rows = src_stride == 1 && dst_stride == 1 && op.src_dtype == op.dst_dtype;
  const bool one_row = box.shape.size() == 1;
  ForEachRow(box, item.begin, item.end, [&](int64_t so, int64_t dof, int64_t run) {
    const uint8_t* from = src + so * src_size;
    const uint64_t to = op.dst_offset + static_cast<uint64_t>(dof * dst_size);
    const uint64_t bytes = static_cast<uint64_t>(run) * dst_size;
    // Straight from the input file into the output file, inside the kernel.
    if (contiguous_rows && (one_row || bytes >= kPwriteMinRowBytes)) {
      CopyRange(inputs_[op.src_file].fd(), op.src_offset + static_cast<uint64_t>(so * src_size),
                from, bytes, to, out);
      return;
    }
    CopyRow(from, src_stride, op.src_dtype, out.map() + to, dst_stride, op.dst_dtype, run, stage);
  });
  ReportProgress(static_cast<uint64_t>(item.end - item.begin) * dst_size, out.path());
}

// copy_file_range moves the bytes between page caches without mapping the input; where the
// file systems cannot (EXDEV, EINVAL, ...), a pwrite from the input mapping does the same work.
void Runner::CopyRange(int in_fd, uint64_t from, const uint8_t* data, uint64_t bytes, uint64_t to,
                       const OutputFile& out) {
  loff_t in_offset = static_cast<loff_t>(from), out_offset = static_cast<loff_t>(to);
  uint64_t done = 0;
  while (done < bytes && copy_file_range_works_) {
    const ssize_t n = ::copy_file_range(in_fd, &in_offset, out.fd(), &out_offset, bytes - done, 0);
    if (n > 0) {
      done += static_cast<uint64_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == ENOSPC) ThrowIo(out.path() + ": no space left while writing", errno);
    if (n < 0 && errno != EXDEV && errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP)
      ThrowIo(out.path() + ": copy_file_range failed at offset " + std::to_string(to + done),
              errno);
    copy_file_range_works_ = false;
  }
  if (done < bytes) PwriteAll(out.fd(), data + done, bytes - done, to + done, out.path());
}

void Runner::ReportProgress(uint64_t bytes, const std::string& path) {
  std::lock_guard<std::mutex> lock(progress_mutex_);
  done_bytes_ += bytes;
  if (options_.progress && !cancelled_ && !options_.progress(done_bytes_, total_bytes_)) {
    cancelled_ = true;
  }
}

void Runner::PatchCrcs(const FileLayout& layout, OutputFile& out) const {
  struct Chunk {
    size_t patch;
    uint64_t offset;
    uint64_t size;
    uLong crc;
  };
  std::vector<Chunk> chunks;
  for (size_t p = 0; p < layout.crc_patches.size(); ++p) {
    const CrcPatch& patch = layout.crc_patches[p];
    for (uint64_t done = 0; done < patch.data_size; done += kCrcChunkBytes) {
      const uint64_t size = std::min(kCrcChunkBytes, patch.data_size - done);
      chunks.push_back({p, patch.data_offset + done, size, 0});
    }
  }
  ParallelFor(chunks.size(), threads_, [&](size_t i) {
    chunks[i].crc = crc32_gzip_refl(0, out.map() + chunks[i].offset, chunks[i].size);
  });
  std::vector<uLong> crcs(layout.crc_patches.size(), crc32(0, Z_NULL, 0));
  for (const Chunk& chunk : chunks) {
    crcs[chunk.patch] =
        crc32_combine(crcs[chunk.patch], chunk.crc, static_cast<z_off_t>(chunk.size));
  }
  for (size_t p = 0; p < layout.crc_patches.size(); ++p) {
    const uint32_t crc = static_cast<uint32_t>(crcs[p]);
    const uint8_t le[4] = {static_cast<uint8_t>(crc), static_cast<uint8_t>(crc >> 8),
                           static_cast<uint8_t>(crc >> 16), static_cast<uint8_t>(crc >> 24)};
    for (uint64_t at : layout.crc_patches[p].patch_offsets) {
      PwriteAll(out.fd(), le, 4, at, out.path());
    }
  }
}

}  // namespace

void ExecutePlan(const Plan& plan, const std::string& output_dir, const ExecuteOptions& options) {
  Runner runner(plan, output_dir, options);
  runner.Run();
}

}  // namespace mcaconv
