#include "torchzip/pickle_writer.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <string_view>
#include <utility>

#include "core/dtype.h"
#include "core/error.h"

namespace mcaconv::pickle {
namespace {

// Python's pickler gives up near its recursion limit of 1000 frames, so no torch-written
// checkpoint nests deeper; the guard also keeps this recursive encoder's stack bounded.
constexpr int kMaxDepth = 1000;
// Python's pickler batches APPENDS and SETITEMS by this many items.
constexpr size_t kBatchSize = 1000;

// Opcodes, all accepted by torch's weights_only unpickler (formats.md 2.6).
constexpr char kProto = '\x80';
constexpr char kStop = '.';
constexpr char kMark = '(';
constexpr char kNone = 'N';
constexpr char kTrue = '\x88';
constexpr char kFalse = '\x89';
constexpr char kBinInt = 'J';
constexpr char kBinInt1 = 'K';
constexpr char kBinInt2 = 'M';
constexpr char kLong1 = '\x8a';
constexpr char kBinFloat = 'G';
constexpr char kBinUnicode = 'X';
constexpr char kEmptyTuple = ')';
constexpr char kTuple = 't';
constexpr char kTuple1 = '\x85';
constexpr char kEmptyList = ']';
constexpr char kAppend = 'a';
constexpr char kAppends = 'e';
constexpr char kEmptyDict = '}';
constexpr char kSetItem = 's';
constexpr char kSetItems = 'u';
constexpr char kGlobal = 'c';
constexpr char kReduce = 'R';
constexpr char kBinPersId = 'Q';
constexpr char kBinPut = 'q';
constexpr char kLongBinPut = 'r';
constexpr char kBinGet = 'h';
constexpr char kLongBinGet = 'j';

bool IsValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t extra = 0;
    uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      extra = 1, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      extra = 2, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      extra = 3, cp = c & 0x07;
    } else {
      return false;
    }
    if (s.size() - i <= extra) return false;
    for (size_t k = 1; k <= extra; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    const uint32_t min_cp[] = {0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[extra] || cp > 0x10FFFF) return false;
    i += extra + 1;
  }
  return true;
}

class Encoder {
 public:
  Encoder(const std::vector<OutputTensor>& tensors, const std::string& what)
      : tensors_(tensors), what_(what), tensor_memo_(tensors.size(), -1) {
    out_ += kProto;
    out_ += '\x02';
  }

  void Encode(const Value& value, const std::string& path, int depth);

  TorchPickle Finish() && {
    out_ += kStop;
    for (size_t i = 0; i < tensors_.size(); ++i)
      if (tensor_memo_[i] < 0)
        ThrowInvalid(what_ + ": tensor '" + tensors_[i].name + "' (index " + std::to_string(i) +
                     ") is not referenced by the object to pickle");
    return {std::move(out_), std::move(storage_tensors_)};
  }

 private:
  void EncodeDict(const Value& value, const std::string& path, int depth);
  void EncodeList(const Value& value, const std::string& path, int depth);
  void EncodeTuple(const Value& value, const std::string& path, int depth);
  void EncodeTensor(int index, const std::string& path);

  void Int(int64_t v);
  void Float(double v);
  void String(std::string_view s);
  // Globals and the fixed strings of storage ids are memoised once and then fetched, as Python's
  // pickler does for module globals and interned strings.
  void Global(const std::string& module, const std::string& name);
  void InternedString(const std::string& s);
  void IntTuple(const Shape& values);
  // Closes a tuple of `n` items pushed after a MARK (or, for n <= 3, without one) and memoises it.
  void EndTuple(size_t n);
  uint32_t Put();
  void Get(uint32_t index);
  void PutU32(uint32_t v);

  const std::vector<OutputTensor>& tensors_;
  const std::string& what_;
  std::string out_;
  uint32_t next_memo_ = 0;
  std::map<std::string, uint32_t> fixed_memo_;
  std::vector<int64_t> tensor_memo_;  // memo slot of each pickled tensor, -1 before
  std::vector<int> storage_tensors_;
};


std::string Child(const std::string& path, const std::string& key) {
  return path.empty() ? key : path + "/" + key;
}

std::string Where(const std::string& path) { return path.empty() ? "the root" : "'" + path + "'"; }

void Encoder::Encode(const Value& value, const std::string& path, int depth) {
  if (depth > kMaxDepth)
    ThrowInvalid(what_ + ": value at " + Where(path) + " nests deeper than " +
                 std::to_string(kMaxDepth) + " levels");
  switch (value.kind) {
    case Kind::kNone:
      out_ += kNone;
      return;
    case Kind::kBool:
      out_ += value.boolean ? kTrue : kFalse;
      return;
    case Kind::kInt:
      Int(value.integer);
      return;
    case Kind::kFloat:
      Float(value.number);
      return;
    case Kind::kString:
      if (!IsValidUtf8(value.text))
        ThrowInvalid(what_ + ": string at " + Where(path) + " is not valid UTF-8");
      String(value.text);
      Put();
      return;
    case Kind::kDict:
      EncodeDict(value, path, depth);
      return;
    case Kind::kList:
      EncodeList(value, path, depth);
      return;
    case Kind::kTuple:
      EncodeTuple(value, path, depth);
      return;
    case Kind::kTensor:
      EncodeTensor(value.tensor, path);
      return;
    case Kind::kBytes:
      ThrowUnsupported(what_ + ": value at " + Where(path) +
                       " is bytes, which a weights_only torch.save file cannot hold");
    case Kind::kObject:
      ThrowUnsupported(what_ + ": value at " + Where(path) + " is an object of class '" +
                       value.class_name + "', which the torch writer cannot pickle");
  }
  ThrowInvalid(what_ + ": value at " + Where(path) + " has an unknown kind");
}

void Encoder::EncodeDict(const Value& value, const std::string& path, int depth) {
  out_ += kEmptyDict;
  Put();
  const auto& entries = value.entries;
  for (size_t begin = 0; begin < entries.size(); begin += kBatchSize) {
    const size_t end = std::min(entries.size(), begin + kBatchSize);
    if (end - begin > 1) out_ += kMark;
    for (size_t i = begin; i < end; ++i) {
      const Value& key = *entries[i].first;
      std::string key_text;
      if (key.kind == Kind::kString) {
        key_text = key.text;
      } else if (key.kind == Kind::kInt) {
        key_text = std::to_string(key.integer);
      } else {
        ThrowUnsupported(what_ + ": dict at " + Where(path) + " has a key of kind " +
                         KindName(key.kind) + "; only string and int keys are written");
      }
      const std::string child = Child(path, key_text);
      Encode(key, child, depth + 1);
      Encode(*entries[i].second, child, depth + 1);
    }
    out_ += end - begin > 1 ? kSetItems : kSetItem;
  }
}

void Encoder::EncodeList(const Value& value, const std::string& path, int depth) {
  out_ += kEmptyList;
  Put();
  const auto& items = value.items;
  for (size_t begin = 0; begin < items.size(); begin += kBatchSize) {
    const size_t end = std::min(items.size(), begin + kBatchSize);
    if (end - begin > 1) out_ += kMark;
    for (size_t i = begin; i < end; ++i)
      Encode(*items[i], Child(path, std::to_string(i)), depth + 1);
    out_ += end - begin > 1 ? kAppends : kAppend;
  }
}

void Encoder::EncodeTuple(const Value& value, const std::string& path, int depth) {
  const auto& items = value.items;
  if (items.empty()) {
    out_ += kEmptyTuple;
    return;
  }
  if (items.size() > 3) out_ += kMark;
  for (size_t i = 0; i < items.size(); ++i)
    Encode(*items[i], Child(path, std::to_string(i)), depth + 1);
  EndTuple(items.size());
}

// _rebuild_tensor_v2(pid_storage, 0, size, stride, False, OrderedDict()) for dtypes with a legacy
// storage class; _rebuild_tensor_v3(..., dtype) over an UntypedStorage, counted in bytes, else.
void Encoder::EncodeTensor(int index, const std::string& path) {
  if (index < 0 || static_cast<size_t>(index) >= tensors_.size())
    ThrowInvalid(what_ + ": tensor at " + Where(path) + " has index " + std::to_string(index) +
                 ", expected 0.." + std::to_string(static_cast<int64_t>(tensors_.size()) - 1));
  if (tensor_memo_[index] >= 0) {
    Get(static_cast<uint32_t>(tensor_memo_[index]));
    return;
  }
  const OutputTensor& tensor = tensors_[index];
  const DTypeInfo& info = Info(tensor.dtype);
  const bool legacy = !info.storage_class.empty();
  const int64_t numel = NumElements(tensor.shape);
  const std::string key = std::to_string(storage_tensors_.size());
  storage_tensors_.push_back(index);

  Global("torch._utils", legacy ? "_rebuild_tensor_v2" : "_rebuild_tensor_v3");
  out_ += kMark;
  out_ += kMark;
  InternedString("storage");
  if (legacy) {
    Global("torch", std::string(info.storage_class));
  } else {
    Global("torch.storage", "UntypedStorage");
  }
  String(key);
  Put();
  InternedString("cpu");
  // The caller checked that the byte count fits; the pid counts bytes for UntypedStorage.
  Int(legacy ? numel : numel * ElementSize(tensor.dtype));
  EndTuple(5);
  out_ += kBinPersId;
  Int(0);  // storage offset
  IntTuple(tensor.shape);
  IntTuple(ContiguousStrides(tensor.shape));
  out_ += kFalse;  // requires_grad
  Global("collections", "OrderedDict");
  out_ += kEmptyTuple;
  out_ += kReduce;
  Put();
  if (!legacy) Global("torch", std::string(info.torch_name));
  EndTuple(legacy ? 6 : 7);
  out_ += kReduce;
  tensor_memo_[index] = Put();
}

void Encoder::Int(int64_t v) {
  if (v >= 0 && v <= 0xFF) {
    out_ += kBinInt1;
    out_ += static_cast<char>(v);
  } else if (v >= 0 && v <= 0xFFFF) {
    out_ += kBinInt2;
    out_ += static_cast<char>(v & 0xFF);
    out_ += static_cast<char>(v >> 8);
  } else if (v >= INT32_MIN && v <= INT32_MAX) {
    out_ += kBinInt;
    PutU32(static_cast<uint32_t>(static_cast<int32_t>(v)));
  } else {
    // LONG1: the shortest little-endian two's complement that keeps the sign.
    const auto bits = static_cast<uint64_t>(v);
    int n = 1;
    while (n < 8) {
      const int64_t lo = -(int64_t{1} << (8 * n - 1));
      const int64_t hi = (int64_t{1} << (8 * n - 1)) - 1;
      if (v >= lo && v <= hi) break;
      ++n;
    }
    out_ += kLong1;
    out_ += static_cast<char>(n);
    for (int i = 0; i < n; ++i) out_ += static_cast<char>(bits >> (8 * i));
  }
}

void Encoder::Float(double v) {
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(bits));
  out_ += kBinFloat;
  for (int i = 7; i >= 0; --i) out_ += static_cast<char>(bits >> (8 * i));  // big-endian
}

void Encoder::String(std::string_view s) {
  if (s.size() > UINT32_MAX)
    ThrowUnsupported(what_ + ": string of " + std::to_string(s.size()) + " bytes exceeds 4 GiB");
  out_ += kBinUnicode;
  PutU32(static_cast<uint32_t>(s.size()));
  out_ += s;
}

void Encoder::Global(const std::string& module, const std::string& name) {
  const std::string memo_key = "g:" + module + "\n" + name;
  if (auto it = fixed_memo_.find(memo_key); it != fixed_memo_.end()) {
    Get(it->second);
    return;
  }
  out_ += kGlobal;
  out_ += module + "\n" + name + "\n";
  fixed_memo_[memo_key] = Put();
}

void Encoder::InternedString(const std::string& s) {
  const std::string memo_key = "s:" + s;
  if (auto it = fixed_memo_.find(memo_key); it != fixed_memo_.end()) {
    Get(it->second);
    return;
  }
  String(s);
  fixed_memo_[memo_key] = Put();
}

void Encoder::IntTuple(const Shape& values) {
  if (values.empty()) {
    out_ += kEmptyTuple;
    return;
  }
  if (values.size() > 3) out_ += kMark;
  for (int64_t v : values) Int(v);
  EndTuple(values.size());
}

void Encoder::EndTuple(size_t n) {
  out_ += n > 3 ? kTuple : static_cast<char>(kTuple1 + (n - 1));
  Put();
}

uint32_t Encoder::Put() {
  const uint32_t index = next_memo_++;
  if (index < 256) {
    out_ += kBinPut;
    out_ += static_cast<char>(index);
  } else {
    out_ += kLongBinPut;
    PutU32(index);
  }
  return index;
}

void Encoder::Get(uint32_t index) {
  if (index < 256) {
    out_ += kBinGet;
    out_ += static_cast<char>(index);
  } else {
    out_ += kLongBinGet;
    PutU32(index);
  }
}

void Encoder::PutU32(uint32_t v) {
  for (int i = 0; i < 4; ++i) out_ += static_cast<char>(v >> (8 * i));
}

}  // namespace

TorchPickle PickleTorchObject(const Value& root, const std::vector<OutputTensor>& tensors,
                              const std::string& what) {
  Encoder encoder(tensors, what);
  encoder.Encode(root, "", 0);
  return std::move(encoder).Finish();
}

}  // namespace mcaconv::pickle
