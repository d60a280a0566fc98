// ExecutePlan and CheckCoverage over synthetic plans on temporary input files. Expected outputs are
// computed independently, element by element, from the input values.
#include "engine/executor.h"

#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "cast/cast.h"
#include "core/error.h"
#include "engine/plan.h"

namespace mcaconv {
namespace {

namespace fs = std::filesystem;

template <typename T>
std::vector<uint8_t> Bytes(const std::vector<T>& values) {
  std::vector<uint8_t> out(values.size() * sizeof(T));
  std::memcpy(out.data(), values.data(), out.size());
  return out;
}

std::vector<float> Ramp(size_t count, float start) {
  std::vector<float> v(count);
  for (size_t i = 0; i < count; ++i) v[i] = start + static_cast<float>(i) * 0.25f;
  return v;
}

// Exact in bf16 (8 significant bits) so the expected bf16 value is the high half of the f32.
std::vector<float> SmallIntegers(size_t count) {
  std::vector<float> v(count);
  for (size_t i = 0; i < count; ++i) v[i] = static_cast<float>(static_cast<int>(i % 251) - 125);
  return v;
}

CopyOp Op(int src_file, uint64_t src_offset, Shape src_strides, DType src_dtype,
          uint64_t dst_offset, Shape dst_strides, DType dst_dtype, Shape shape) {
  CopyOp op;
  op.src_file = src_file;
  op.src_offset = src_offset;
  op.src_strides = std::move(src_strides);
  op.src_dtype = src_dtype;
  op.dst_offset = dst_offset;
  op.dst_strides = std::move(dst_strides);
  op.dst_dtype = dst_dtype;
  op.shape = std::move(shape);
  return op;
}

// One output file holding `tensors` back to back after a `header`-byte blob.
OutputFilePlan PackedFile(const std::string& path, std::vector<OutputTensor> tensors,
                          const std::string& header) {
  OutputFilePlan file;
  file.relative_path = path;
  file.tensors = std::move(tensors);
  uint64_t offset = header.size();
  for (const OutputTensor& t : file.tensors) {
    file.layout.tensor_offsets.push_back(offset);
    offset += t.nbytes();
  }
  file.layout.size = offset;
  if (!header.empty()) file.layout.blobs.push_back({0, header});
  return file;
}

class ExecutorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::path(::testing::TempDir()) /
           ("mcaconv_executor_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "out");
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string WriteInput(const std::string& name, const std::vector<uint8_t>& bytes) {
    const std::string path = (dir_ / name).string();
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
    return path;
  }

  std::vector<uint8_t> ReadOutput(const std::string& relative, const std::string& out = "out") {
    std::ifstream in(dir_ / out / relative, std::ios::binary);
    return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), {});
  }

  void Execute(const Plan& plan, int threads = 2, const std::string& out = "out") {
    fs::create_directories(dir_ / out);
    ExecuteOptions options;
    options.threads = threads;
    ExecutePlan(plan, (dir_ / out).string(), options);
  }

  fs::path dir_;
};

std::vector<uint8_t> Concat(const std::string& header, const std::vector<uint8_t>& data) {
  std::vector<uint8_t> out(header.begin(), header.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

TEST_F(ExecutorTest, ContiguousCopyWithHeaderBlob) {
  // 5 Mi floats: several work items, all through pwrite.
  const std::vector<float> values = Ramp(5 << 20, -3.0f);
  std::vector<uint8_t> input(16, 0xEE);  // bytes before the tensor, as in a real container
  const std::vector<uint8_t> data = Bytes(values);
  input.insert(input.end(), data.begin(), data.end());
  Plan plan;
  plan.inputs = {WriteInput("in.bin", input)};
  const Shape shape = {5, 1 << 20};
  plan.files.push_back(PackedFile("sub/dir/model.bin", {{"w", DType::F32, shape}}, "HEADER!!"));
  plan.files[0].ops.push_back(Op(0, 16, ContiguousStrides(shape), DType::F32, 8,
                                 ContiguousStrides(shape), DType::F32, shape));
  plan.text_files.push_back({"config/config.json", "{}\n"});
  Execute(plan);
  EXPECT_EQ(ReadOutput("sub/dir/model.bin"), Concat("HEADER!!", data));
  EXPECT_EQ(ReadOutput("config/config.json"), std::vector<uint8_t>({'{', '}', '\n'}));
  EXPECT_EQ(plan.OutputBytes(), 8 + data.size() + 3);
}

TEST_F(ExecutorTest, RowSliceOfColumnParallelWeight) {
  // Rank 1 of a 2-way split along dim 0 of an [8, 6] weight: rows 4..7.
  const std::vector<float> values = Ramp(48, 1.0f);
  Plan plan;
  plan.inputs = {WriteInput("in.bin", Bytes(values))};
  plan.files.push_back(PackedFile("rank1.bin", {{"w", DType::F32, {4, 6}}}, ""));
  plan.files[0].ops.push_back(
      Op(0, 4 * 6 * 4, {6, 1}, DType::F32, 0, {6, 1}, DType::F32, {4, 6}));
  Execute(plan);
  EXPECT_EQ(ReadOutput("rank1.bin"),
            Bytes(std::vector<float>(values.begin() + 24, values.end())));
}

TEST_F(ExecutorTest, ColumnBandsMergeIntoStridedDestination) {
  // Two row-parallel shards [rows, 3] merged along dim 1 into [rows, 6].
  const int64_t rows = 70000;  // several work items per op
  const std::vector<float> a = Ramp(rows * 3, 0.0f);
  const std::vector<float> b = Ramp(rows * 3, 1e6f);
  Plan plan;
  plan.inputs = {WriteInput("a.bin", Bytes(a)), WriteInput("b.bin", Bytes(b))};
  plan.files.push_back(PackedFile("merged.bin", {{"w", DType::F32, {rows, 6}}}, "HD"));
  for (int k = 0; k < 2; ++k) {
    plan.files[0].ops.push_back(
        Op(k, 0, {3, 1}, DType::F32, 2 + 3 * k * 4, {6, 1}, DType::F32, {rows, 3}));
  }
  Execute(plan, 3);
  std::vector<float> expected(rows * 6);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < 3; ++c) {
      expected[r * 6 + c] = a[r * 3 + c];
      expected[r * 6 + 3 + c] = b[r * 3 + c];
    }
  }
  EXPECT_EQ(ReadOutput("merged.bin"), Concat("HD", Bytes(expected)));
}

TEST_F(ExecutorTest, TransposeAndCastDuringCopy) {
  // [300, 500] f32 read transposed into [500, 300] bf16, plus a contiguous f32 -> f16 cast.
  const int64_t r = 300, c = 500;
  const std::vector<float> values = SmallIntegers(r * c);
  Plan plan;
  plan.inputs = {WriteInput("in.bin", Bytes(values))};
  plan.files.push_back(PackedFile(
      "t.bin", {{"wt", DType::BF16, {c, r}}, {"h", DType::F16, {r, c}}}, ""));
  plan.files[0].ops.push_back(Op(0, 0, {1, c}, DType::F32, 0, {r, 1}, DType::BF16, {c, r}));
  plan.files[0].ops.push_back(
      Op(0, 0, {c, 1}, DType::F32, r * c * 2, {c, 1}, DType::F16, {r, c}));
  Execute(plan);

  std::vector<uint16_t> expected(2 * r * c);
  for (int64_t i = 0; i < c; ++i) {
    for (int64_t j = 0; j < r; ++j) {
      uint32_t bits;
      std::memcpy(&bits, &values[j * c + i], 4);
      expected[i * r + j] = static_cast<uint16_t>(bits >> 16);  // exact: small integers
    }
  }
  CastElements(values.data(), DType::F32, expected.data() + r * c, DType::F16, r * c);
  EXPECT_EQ(ReadOutput("t.bin"), Bytes(expected));
}

TEST_F(ExecutorTest, ScatterIntoTransposedDestination) {
  // Contiguous [r, c] source written through destination strides [1, r], with and without a cast.
  const int64_t r = 40, c = 9000;
  const std::vector<float> values = SmallIntegers(r * c);
  Plan plan;
  plan.inputs = {WriteInput("in.bin", Bytes(values))};
  plan.files.push_back(PackedFile(
      "s.bin", {{"f", DType::F32, {c, r}}, {"b", DType::BF16, {c, r}}}, ""));
  plan.files[0].ops.push_back(Op(0, 0, {c, 1}, DType::F32, 0, {1, r}, DType::F32, {r, c}));
  plan.files[0].ops.push_back(
      Op(0, 0, {c, 1}, DType::F32, r * c * 4, {1, r}, DType::BF16, {r, c}));
  Execute(plan, 3);

  std::vector<float> transposed(r * c);
  std::vector<uint16_t> transposed_bf16(r * c);
  for (int64_t i = 0; i < r; ++i) {
    for (int64_t j = 0; j < c; ++j) {
      transposed[j * r + i] = values[i * c + j];
      uint32_t bits;
      std::memcpy(&bits, &values[i * c + j], 4);
      transposed_bf16[j * r + i] = static_cast<uint16_t>(bits >> 16);
    }
  }
  std::vector<uint8_t> expected = Bytes(transposed);
  const std::vector<uint8_t> tail = Bytes(transposed_bf16);
  expected.insert(expected.end(), tail.begin(), tail.end());
  EXPECT_EQ(ReadOutput("s.bin"), expected);
}

TEST_F(ExecutorTest, CrcPatchMatchesZlib) {
  // 40 MiB of data: the CRC is computed in chunks and combined.
  const std::vector<float> values = Ramp(10 << 20, 7.0f);
  Plan plan;
  plan.inputs = {WriteInput("in.bin", Bytes(values))};
  OutputFilePlan file = PackedFile("z.bin", {{"w", DType::F32, {10 << 20}}}, "CRC:....");
  file.layout.size += 4;
  file.layout.crc_patches.push_back({8, values.size() * 4, {4, file.layout.size - 4}});
  file.ops.push_back(Op(0, 0, {1}, DType::F32, 8, {1}, DType::F32, {10 << 20}));
  plan.files.push_back(file);
  Execute(plan, 4);

  const std::vector<uint8_t> out = ReadOutput("z.bin");
  ASSERT_EQ(out.size(), file.layout.size);
  const uLong crc = crc32(0, out.data() + 8, static_cast<uInt>(values.size() * 4));
  for (uint64_t at : {uint64_t{4}, file.layout.size - 4}) {
    uint32_t stored = out[at] | out[at + 1] << 8 | out[at + 2] << 16 | uint32_t{out[at + 3]} << 24;
    EXPECT_EQ(stored, static_cast<uint32_t>(crc)) << "patch at " << at;
  }
  EXPECT_EQ(std::memcmp(out.data() + 8, values.data(), values.size() * 4), 0);
}

TEST_F(ExecutorTest, CompareMismatchStopsBeforeOutput) {
  std::vector<float> a = Ramp(10, 0.0f);
  std::vector<float> b = a;
  b[3] += 0.5f;
  b[7] -= 2.0f;
  Plan plan;
  plan.inputs = {WriteInput("a.bin", Bytes(a)), WriteInput("b.bin", Bytes(b))};
  plan.files.push_back(PackedFile("o.bin", {{"w", DType::F32, {10}}}, ""));
  plan.files[0].ops.push_back(Op(0, 0, {1}, DType::F32, 0, {1}, DType::F32, {10}));
  CompareOp check;
  check.a_file = 0;
  check.b_file = 1;
  check.a_strides = check.b_strides = {1};
  check.shape = {10};
  check.what = "norm.weight: TP rank 1 vs 0";
  plan.checks.push_back(check);
  try {
    Execute(plan);
    FAIL() << "mismatch not detected";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInvalidInput);
    const std::string message = e.what();
    EXPECT_NE(message.find("norm.weight: TP rank 1 vs 0"), std::string::npos) << message;
    EXPECT_NE(message.find("element 3"), std::string::npos) << message;
    EXPECT_NE(message.find("largest absolute difference 2"), std::string::npos) << message;
  }
  EXPECT_FALSE(fs::exists(dir_ / "out" / "o.bin"));

  plan.checks[0].tolerance = 1.0;  // only element 7 is off by more
  try {
    Execute(plan);
    FAIL() << "mismatch beyond tolerance not detected";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("element 7, largest absolute difference 2 (tolerance 1)"),
              std::string::npos) << message;
  }
  plan.checks[0].tolerance = 2.5;
  Execute(plan);
  EXPECT_EQ(ReadOutput("o.bin"), Bytes(a));

  plan.checks[0].tolerance = 0;
  plan.checks[0].b_file = 0;  // identical replicas pass
  Execute(plan);
  EXPECT_EQ(ReadOutput("o.bin"), Bytes(a));
}

TEST_F(ExecutorTest, CoverageRejectsGapsAndSlotOverflow) {
  Plan plan;
  plan.inputs = {WriteInput("in.bin", Bytes(Ramp(64, 0.0f)))};
  plan.files.push_back(
      PackedFile("c.bin", {{"first", DType::F32, {4, 4}}, {"second", DType::F32, {4}}}, ""));
  OutputFilePlan& file = plan.files[0];
  file.ops.push_back(Op(0, 0, {4, 1}, DType::F32, 0, {4, 1}, DType::F32, {3, 4}));
  file.ops.push_back(Op(0, 0, {1}, DType::F32, 64, {1}, DType::F32, {4}));
  auto expect_invalid = [&](const std::string& needle) {
    try {
      CheckCoverage(plan);
      FAIL() << "expected an error containing " << needle;
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kInvalidInput);
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("c.bin"), std::string::npos) << e.what();
    }
  };
  expect_invalid("tensor first: copy ops write 12 elements, expected 16");  // a gap

  file.ops[0].shape = {5, 4};  // row 4 spills into "second"
  expect_invalid("copy op 0 writes bytes [0, 80) outside any single tensor slot");

  file.ops[0].shape = {4, 4};
  EXPECT_NO_THROW(CheckCoverage(plan));
  file.ops[1].dst_dtype = DType::BF16;
  expect_invalid("copy op 1 writes bfloat16 into tensor second of dtype float32");

  file.ops[1].dst_dtype = DType::F32;
  file.ops[1].src_offset = 64 * 4 - 8;  // reads 8 bytes past the input's end
  try {
    Execute(plan);
    FAIL() << "source overflow not detected";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInvalidInput);
    EXPECT_NE(std::string(e.what()).find("copy op 1 reads bytes [248, 264)"), std::string::npos)
        << e.what();
  }
}

TEST_F(ExecutorTest, RejectsPathsOutsideOutputDir) {
  Plan plan;
  plan.text_files.push_back({"../escape.json", "{}"});
  EXPECT_THROW(Execute(plan), Error);
  EXPECT_FALSE(fs::exists(dir_ / "escape.json"));
}

Plan MixedPlan(const std::vector<std::string>& inputs, int64_t rows, int64_t cols) {
  Plan plan;
  plan.inputs = inputs;
  plan.files.push_back(PackedFile("mixed.bin",
                                  {{"merged", DType::BF16, {rows, 2 * cols}},
                                   {"transposed", DType::F32, {cols, rows}},
                                   {"copy", DType::F32, {rows, cols}}},
                                  "0123456789"));
  OutputFilePlan& file = plan.files[0];
  const uint64_t merged = file.layout.tensor_offsets[0];
  for (int k = 0; k < 2; ++k) {
    file.ops.push_back(Op(k, 0, {cols, 1}, DType::F32, merged + k * cols * 2, {2 * cols, 1},
                          DType::BF16, {rows, cols}));
  }
  file.ops.push_back(Op(0, 0, {1, cols}, DType::F32, file.layout.tensor_offsets[1], {rows, 1},
                        DType::F32, {cols, rows}));
  file.ops.push_back(Op(1, 0, {cols, 1}, DType::F32, file.layout.tensor_offsets[2], {cols, 1},
                        DType::F32, {rows, cols}));
  file.layout.crc_patches.push_back({10, file.layout.size - 10, {0}});
  return plan;
}

TEST_F(ExecutorTest, ThreadedRunMatchesSingleThreadedAndReportsProgress) {
  const int64_t rows = 3000, cols = 1000;  // 12 MB per input
  const std::vector<std::string> inputs = {
      WriteInput("a.bin", Bytes(Ramp(rows * cols, -1000.0f))),
      WriteInput("b.bin", Bytes(Ramp(rows * cols, 3.0f)))};
  const Plan plan = MixedPlan(inputs, rows, cols);
  Execute(plan, 1, "one");

  uint64_t last_done = 0, last_total = 0, calls = 0;
  bool monotonic = true;
  ExecuteOptions options;
  options.threads = 5;
  options.progress = [&](uint64_t done, uint64_t total) {
    monotonic = monotonic && done >= last_done;
    last_done = done;
    last_total = total;
    ++calls;
    return true;
  };
  fs::create_directories(dir_ / "many");
  ExecutePlan(plan, (dir_ / "many").string(), options);

  const std::vector<uint8_t> one = ReadOutput("mixed.bin", "one");
  ASSERT_EQ(one.size(), plan.files[0].layout.size);
  EXPECT_TRUE(one == ReadOutput("mixed.bin", "many"));
  const uint64_t tensor_bytes = rows * 2 * cols * 2 + 2 * rows * cols * 4;
  EXPECT_EQ(last_total, tensor_bytes);
  EXPECT_EQ(last_done, tensor_bytes);
  EXPECT_GT(calls, 3u);
  EXPECT_TRUE(monotonic);

  // Spot-check the transposed tensor against the input values.
  const std::vector<float> a = Ramp(rows * cols, -1000.0f);
  float got;
  std::memcpy(&got, one.data() + plan.files[0].layout.tensor_offsets[1] + (7 * rows + 11) * 4, 4);
  EXPECT_EQ(got, a[11 * cols + 7]);
}

TEST_F(ExecutorTest, CancelledProgressIsAnIoError) {
  const std::vector<std::string> inputs = {WriteInput("a.bin", Bytes(Ramp(2000 * 1000, 0.0f))),
                                           WriteInput("b.bin", Bytes(Ramp(2000 * 1000, 1.0f)))};
  ExecuteOptions options;
  options.threads = 2;
  options.progress = [](uint64_t done, uint64_t total) { return done < total / 4; };
  try {
    ExecutePlan(MixedPlan(inputs, 2000, 1000), (dir_ / "out").string(), options);
    FAIL() << "cancellation ignored";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kIo);
    EXPECT_NE(std::string(e.what()).find("mixed.bin"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace mcaconv
