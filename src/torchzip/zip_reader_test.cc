#include "torchzip/zip_reader.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"

namespace mcaconv {
namespace {

const std::string kDir = std::string(MCACONV_TEST_DATA_DIR) + "/torchzip/";

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

ZipDirectory ParseBytes(const std::string& bytes, const std::string& path = "test.pt") {
  return ZipDirectory::Parse(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), path);
}

uint32_t Get32(const std::string& s, size_t pos) {
  uint32_t v;
  std::memcpy(&v, s.data() + pos, 4);
  return v;
}
void Put32(std::string& s, size_t pos, uint32_t v) { std::memcpy(s.data() + pos, &v, 4); }
void Put64(std::string& s, size_t pos, uint64_t v) { std::memcpy(s.data() + pos, &v, 8); }

// Expects `fn` to throw kind with a message naming the path and a byte offset.
template <typename Fn>
std::string ExpectError(Fn fn, ErrorKind kind, const std::string& path = "test.pt") {
  try {
    fn();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("offset"), std::string::npos) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no error thrown";
  return "";
}

class ZipFixture : public testing::TestWithParam<std::string> {};

// Every record's name, size and data offset match what Python's zipfile computes.
TEST_P(ZipFixture, RecordsMatchPython) {
  std::string bytes = ReadAll(kDir + GetParam() + ".pt");
  auto expected = nlohmann::json::parse(ReadAll(kDir + GetParam() + ".json"));
  ZipDirectory dir = ParseBytes(bytes);
  EXPECT_EQ(dir.prefix(), expected["prefix"]);
  ASSERT_EQ(dir.entries().size(), expected["records"].size());
  for (size_t i = 0; i < dir.entries().size(); ++i) {
    const ZipEntry& entry = dir.entries()[i];
    const auto& record = expected["records"][i];
    EXPECT_EQ(entry.name, record["name"]);
    EXPECT_EQ(entry.size, record["size"].get<uint64_t>()) << entry.name;
    EXPECT_EQ(entry.data_offset, record["data_offset"].get<uint64_t>()) << entry.name;
    EXPECT_EQ(entry.method, 0);
    std::string rel = entry.name.substr(dir.prefix().size() + 1);
    EXPECT_EQ(dir.Find(rel), &entry);
  }
  EXPECT_EQ(dir.Find("no/such/record"), nullptr);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ZipFixture,
                         testing::Values("dtypes", "views", "module", "multi_model", "megatron",
                                         "fileobj", "proto4", "rezipped", "parameters"));

TEST(ZipReader, DeflatedRecordIsListedButNotStored) {
  std::string bytes = ReadAll(kDir + "deflated.pt");
  ZipDirectory dir = ParseBytes(bytes);
  const ZipEntry* entry = dir.Find("data.pkl");
  ASSERT_NE(entry, nullptr);
  EXPECT_EQ(entry->method, 8);
  std::string message =
      ExpectError([&] { dir.FindStored("data.pkl"); }, ErrorKind::kUnsupported);
  EXPECT_NE(message.find("bar/data.pkl"), std::string::npos) << message;
}

// Truncation at each structural boundary loses the end records.
TEST(ZipReader, TruncationsAreRejected) {
  std::string bytes = ReadAll(kDir + "views.pt");
  ZipDirectory good = ParseBytes(bytes);
  uint64_t cd = good.directory_offset();
  std::vector<uint64_t> cuts = {0, 10, good.entries()[0].data_offset + 1,
                                good.Find("data/0")->data_offset + 3, cd + 10,
                                bytes.size() - 60, bytes.size() - 5};
  for (uint64_t cut : cuts) {
    SCOPED_TRACE("cut at " + std::to_string(cut));
    ExpectError([&] { ParseBytes(bytes.substr(0, cut)); }, ErrorKind::kInvalidInput);
  }
}

TEST(ZipReader, BrokenCentralDirectorySignature) {
  std::string bytes = ReadAll(kDir + "views.pt");
  uint64_t cd = ParseBytes(bytes).directory_offset();
  bytes[cd + 1] = 'X';
  std::string message = ExpectError([&] { ParseBytes(bytes); }, ErrorKind::kInvalidInput);
  EXPECT_NE(message.find("offset " + std::to_string(cd)), std::string::npos) << message;
}

// torch writes a zip64 end record (56 bytes), its locator (20) and the classic end record (22).
TEST(ZipReader, EntryCountMismatch) {
  std::string bytes = ReadAll(kDir + "views.pt");
  size_t zip64_end = bytes.size() - 22 - 20 - 56;
  ASSERT_EQ(Get32(bytes, zip64_end), 0x06064b50u);
  uint64_t count = ParseBytes(bytes).entries().size();
  Put64(bytes, zip64_end + 24, count + 1);
  Put64(bytes, zip64_end + 32, count + 1);
  ExpectError([&] { ParseBytes(bytes); }, ErrorKind::kInvalidInput);
  Put64(bytes, zip64_end + 32, count);
  ExpectError([&] { ParseBytes(bytes); }, ErrorKind::kInvalidInput);
}

TEST(ZipReader, AbsurdCountAndOffsetsAreRejected) {
  std::string bytes = ReadAll(kDir + "views.pt");
  size_t zip64_end = bytes.size() - 22 - 20 - 56;
  std::string huge = bytes;
  Put64(huge, zip64_end + 24, uint64_t{1} << 60);
  Put64(huge, zip64_end + 32, uint64_t{1} << 60);
  ExpectError([&] { ParseBytes(huge); }, ErrorKind::kInvalidInput);
  std::string past = bytes;
  Put64(past, zip64_end + 48, ~uint64_t{0} - 4);  // central directory offset
  ExpectError([&] { ParseBytes(past); }, ErrorKind::kInvalidInput);
  std::string locator = bytes;
  Put64(locator, bytes.size() - 22 - 20 + 8, bytes.size());  // zip64 end record offset
  ExpectError([&] { ParseBytes(locator); }, ErrorKind::kInvalidInput);
}

TEST(ZipReader, BadLocalHeaderIsRejected) {
  std::string bytes = ReadAll(kDir + "views.pt");
  ZipDirectory good = ParseBytes(bytes);
  const ZipEntry* entry = good.Find("data/1");
  ASSERT_NE(entry, nullptr);
  std::string broken = bytes;
  broken[entry->header_offset] = 'Q';
  ExpectError([&] { ParseBytes(broken); }, ErrorKind::kInvalidInput);

  // A central-directory entry whose local header offset points into the directory itself.
  std::string moved = bytes;
  Put32(moved, entry->directory_offset + 42, static_cast<uint32_t>(good.directory_offset()));
  ExpectError([&] { ParseBytes(moved); }, ErrorKind::kInvalidInput);
}

TEST(ZipReader, EntryOutsideThePrefixIsRejected) {
  std::string bytes = ReadAll(kDir + "views.pt");
  ZipDirectory good = ParseBytes(bytes);
  const ZipEntry& second = good.entries()[1];
  bytes[second.directory_offset + 46] = 'W';  // first character of its name
  std::string message = ExpectError([&] { ParseBytes(bytes); }, ErrorKind::kInvalidInput);
  EXPECT_NE(message.find("outside"), std::string::npos) << message;
}

TEST(ZipReader, TinyAndEmptyInputs) {
  ExpectError([&] { ParseBytes(""); }, ErrorKind::kInvalidInput);
  ExpectError([&] { ParseBytes(std::string(100, 'x')); }, ErrorKind::kInvalidInput);
  std::string empty_zip = "PK\x05\x06" + std::string(18, '\0');
  ExpectError([&] { ParseBytes(empty_zip); }, ErrorKind::kInvalidInput);
}

void Le(std::string& out, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) out += static_cast<char>((v >> (8 * i)) & 0xFF);
}

// One record whose central entry saturates size, compressed size and header offset and carries
// the real values in a zip64 extra field (after an unrelated extra field), as miniz does for
// records beyond 4 GiB.
std::string Zip64ExtraArchive(int zip64_field_length) {
  std::string name = "z/data/0", data = "abcdef";
  std::string out;
  Le(out, 0x04034b50, 4);
  Le(out, 45, 2), Le(out, 0, 2), Le(out, 0, 2), Le(out, 0, 4), Le(out, 0, 4);
  Le(out, 0, 4), Le(out, 0, 4), Le(out, name.size(), 2), Le(out, 0, 2);
  out += name + data;
  uint64_t cd_offset = out.size();
  std::string extra;
  Le(extra, 0x4246, 2), Le(extra, 2, 2), Le(extra, 0x5A5A, 2);  // an 'FB' padding field
  Le(extra, 0x0001, 2), Le(extra, zip64_field_length, 2);
  Le(extra, data.size(), 8), Le(extra, data.size(), 8), Le(extra, 0, 8);
  extra.resize(extra.size() - (24 - zip64_field_length));
  Le(out, 0x02014b50, 4);
  Le(out, 45, 2), Le(out, 45, 2), Le(out, 0, 2), Le(out, 0, 2), Le(out, 0, 4), Le(out, 0, 4);
  Le(out, 0xFFFFFFFF, 4), Le(out, 0xFFFFFFFF, 4), Le(out, name.size(), 2);
  Le(out, extra.size(), 2), Le(out, 0, 2), Le(out, 0, 2), Le(out, 0, 2), Le(out, 0, 4);
  Le(out, 0xFFFFFFFF, 4);
  out += name + extra;
  uint64_t cd_size = out.size() - cd_offset;
  Le(out, 0x06054b50, 4);
  Le(out, 0, 2), Le(out, 0, 2), Le(out, 1, 2), Le(out, 1, 2), Le(out, cd_size, 4);
  Le(out, cd_offset, 4), Le(out, 0, 2);
  return out;
}

TEST(ZipReader, Zip64ExtraFieldInCentralDirectory) {
  ZipDirectory dir = ParseBytes(Zip64ExtraArchive(24));
  ASSERT_EQ(dir.entries().size(), 1u);
  EXPECT_EQ(dir.entries()[0].size, 6u);
  EXPECT_EQ(dir.entries()[0].compressed_size, 6u);
  EXPECT_EQ(dir.entries()[0].header_offset, 0u);
  EXPECT_EQ(dir.entries()[0].data_offset, 30u + 8u);
  EXPECT_EQ(dir.prefix(), "z");
  ExpectError([&] { ParseBytes(Zip64ExtraArchive(16)); }, ErrorKind::kInvalidInput);
}

}  // namespace
}  // namespace mcaconv
