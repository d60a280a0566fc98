#include "torchzip/pickle_reader.h"

#include <cstring>
#include <memory>
#include <optional>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "core/error.h"

namespace mcaconv::pickle {
namespace {

using MutablePtr = std::shared_ptr<Value>;
using Items = std::vector<MutablePtr>;

constexpr size_t kMaxMemo = size_t{1} << 24;
constexpr int kMaxProtocol = 5;

// How the unpickler interprets an allowlisted global.
enum class Global {
  kRebuildTensorV2, kRebuildTensorV3, kRebuildParameter, kRebuildFromType, kOrderedDict,
  kStorageClass, kUntypedStorage, kDType, kSize, kCodecsEncode, kSet, kFrozenSet, kByteArray,
  kBytes, kGetattr,
  kOpaque,  // inert: calling or instantiating it yields a kObject
};

const std::unordered_map<std::string, Global>& ExactGlobals() {
  static const auto* table = new std::unordered_map<std::string, Global>{
      {"torch._utils._rebuild_tensor_v2", Global::kRebuildTensorV2},
      {"torch._utils._rebuild_tensor_v3", Global::kRebuildTensorV3},
      {"torch._utils._rebuild_parameter", Global::kRebuildParameter},
      {"torch._utils._rebuild_parameter_with_state", Global::kRebuildParameter},
      {"torch._tensor._rebuild_from_type_v2", Global::kRebuildFromType},
      {"collections.OrderedDict", Global::kOrderedDict},
      {"torch.storage.UntypedStorage", Global::kUntypedStorage},
      {"torch.Size", Global::kSize},
      {"_codecs.encode", Global::kCodecsEncode},
      {"builtins.set", Global::kSet},
      {"builtins.frozenset", Global::kFrozenSet},
      {"builtins.bytearray", Global::kByteArray},
      {"builtins.bytes", Global::kBytes},
      {"builtins.getattr", Global::kGetattr},
  };
  return *table;
}

// Classes and functions kept as inert kObject values; nothing in them is ever run.
const std::unordered_set<std::string>& OpaqueGlobals() {
  static const auto* names = new std::unordered_set<std::string>{
      "torch.Tensor", "torch.nn.parameter.Parameter", "torch.device", "torch._C.Generator",
      "_io.BytesIO", "argparse.Namespace", "types.SimpleNamespace", "pathlib.Path",
      "pathlib.PosixPath", "pathlib.WindowsPath", "pathlib.PurePosixPath",
      "pathlib.PureWindowsPath", "numpy.core.multiarray._reconstruct",
      "numpy._core.multiarray._reconstruct", "numpy.core.multiarray.scalar",
      "numpy._core.multiarray.scalar", "numpy.ndarray", "numpy.dtype", "signal.Signals"};
  return *names;
}

// torch dtypes and storage classes that are valid in torch files but have no DType here.
bool IsUnsupportedTorchType(const std::string& name) {
  static const auto* names = new std::unordered_set<std::string>{
      "complex32", "qint8", "qint32", "quint8", "quint4x2", "quint2x4", "bits8", "bits16",
      "bits1x8", "bits2x4", "bits4x2", "QInt8Storage", "QInt32Storage", "QUInt8Storage",
      "QUInt4x2Storage", "QUInt2x4Storage"};
  bool small_int = name.size() == 5 && (name.rfind("uint", 0) == 0) && name[4] >= '1' &&
                   name[4] <= '7';
  small_int = small_int || (name.size() == 4 && name.rfind("int", 0) == 0 && name[3] >= '1' &&
                            name[3] <= '7');
  return small_int || names->count(name) > 0;
}

// Module prefixes whose classes (enums, dataclasses, recipes) are kept as inert objects.
constexpr const char* kOpaquePrefixes[] = {"megatron.", "transformer_engine.", "numpy.dtypes."};

std::optional<Global> ClassifyGlobal(std::string module, const std::string& name) {
  if (module == "__builtin__") module = "builtins";
  std::string full = module + "." + name;
  if (auto it = ExactGlobals().find(full); it != ExactGlobals().end()) return it->second;
  if (OpaqueGlobals().count(full)) return Global::kOpaque;
  if (module == "torch" && DTypeFromTorchName(name)) return Global::kDType;
  if (module == "torch" && DTypeFromStorageClass(name)) return Global::kStorageClass;
  for (const char* prefix : kOpaquePrefixes)
    if (full.rfind(prefix, 0) == 0) return Global::kOpaque;
  return std::nullopt;
}

// Per-node facts the machine needs that Value does not carry.
struct NodeInfo {
  int depth = 0;        // containers below this one
  bool nested = false;  // already placed inside another value; then it may not change
  std::optional<Global> global;  // set for GLOBAL results
  int storage = -1;              // set for persistent-id results
};

class Machine {
 public:
  Machine(std::string_view bytes, const std::string& name) : in_(bytes), name_(name) {}

  UnpickledTorch Run() {
    while (true) {
      op_offset_ = pos_;
      uint8_t op = ReadU8();
      if (op == '.') break;
      Step(op);
    }
    result_.root = Pop();
    return std::move(result_);
  }

 private:
  [[noreturn]] void Fail(const std::string& what) const {
    ThrowInvalid(name_ + " offset " + std::to_string(op_offset_) + ": " + what);
  }
  [[noreturn]] void FailUnsupported(const std::string& what) const {
    ThrowUnsupported(name_ + " offset " + std::to_string(op_offset_) + ": " + what);
  }

  // ---- reading the stream ----
  const char* Take(uint64_t n, const char* what) {
    if (n > in_.size() - pos_)
      Fail(std::string(what) + " declares " + std::to_string(n) + " bytes but only " +
           std::to_string(in_.size() - pos_) + " remain in the stream");
    const char* p = in_.data() + pos_;
    pos_ += n;
    return p;
  }
  uint64_t ReadLE(int n) {
    const auto* p = reinterpret_cast<const uint8_t*>(Take(n, "opcode argument"));
    uint64_t v = 0;
    for (int i = n; i-- > 0;) v = (v << 8) | p[i];
    return v;
  }
  uint8_t ReadU8() {
    if (pos_ >= in_.size()) Fail("stream ends without a STOP opcode");
    return static_cast<uint8_t>(in_[pos_++]);
  }
  std::string ReadLine() {
    size_t end = in_.find('\n', pos_);
    if (end == std::string_view::npos) Fail("GLOBAL name is not terminated by a newline");
    std::string line(in_.substr(pos_, end - pos_));
    pos_ = end + 1;
    return line;
  }

  // ---- the stack ----
  static MutablePtr New(Kind kind) {
    auto v = std::make_shared<Value>();
    v->kind = kind;
    return v;
  }
  void Push(MutablePtr v) { stack_.push_back(std::move(v)); }
  MutablePtr Pop() {
    size_t floor = marks_.empty() ? 0 : marks_.back();
    if (stack_.size() <= floor) Fail("stack underflow");
    MutablePtr v = std::move(stack_.back());
    stack_.pop_back();
    return v;
  }
  MutablePtr& Top() {
    size_t floor = marks_.empty() ? 0 : marks_.back();
    if (stack_.size() <= floor) Fail("stack underflow");
    return stack_.back();
  }
  std::vector<MutablePtr> PopMark() {
    if (marks_.empty()) Fail("no MARK on the stack");
    std::vector<MutablePtr> items(std::make_move_iterator(stack_.begin() + marks_.back()),
                                  std::make_move_iterator(stack_.end()));
    stack_.resize(marks_.back());
    marks_.pop_back();
    return items;
  }
  NodeInfo* Info(const Value* v) {
    auto it = info_.find(v);
    return it == info_.end() ? nullptr : &it->second;
  }

  // Records that `child` now lives inside `parent`. Values never change once nested, so no value
  // can reach itself, and the parent's depth stays exact.
  ValuePtr Nest(Value& parent, const MutablePtr& child) {
    if (child.get() == &parent) Fail("a value is placed inside itself (recursive structure)");
    NodeInfo& child_info = info_[child.get()];
    child_info.nested = true;
    NodeInfo& parent_info = info_[&parent];
    if (child_info.depth + 1 > parent_info.depth) parent_info.depth = child_info.depth + 1;
    if (parent_info.depth > kMaxDepth)
      Fail("values nested deeper than " + std::to_string(kMaxDepth) + " levels");
    return child;
  }
  void CheckMutable(const Value& v, const char* op) {
    const NodeInfo* info = Info(&v);
    if (info != nullptr && info->nested)
      Fail(std::string(op) + " modifies a value that is already nested (recursive structure)");
  }
  MutablePtr MakeSequence(Kind kind, const std::vector<MutablePtr>& items) {
    MutablePtr v = New(kind);
    for (const auto& item : items) v->items.push_back(Nest(*v, item));
    return v;
  }
  void Memoize(uint64_t index) {
    if (memo_.size() >= kMaxMemo && !memo_.count(index))
      Fail("memo grows beyond " + std::to_string(kMaxMemo) + " entries");
    memo_[index] = Top();
  }
  void Recall(uint64_t index) {
    auto it = memo_.find(index);
    if (it == memo_.end()) Fail("memo entry " + std::to_string(index) + " was never stored");
    Push(it->second);
  }

  // ---- scalars ----
  void PushInt(int64_t i) {
    MutablePtr v = New(Kind::kInt);
    v->integer = i;
    Push(v);
  }
  void PushText(Kind kind, uint64_t length, const char* what) {
    MutablePtr v = New(kind);
    v->text.assign(Take(length, what), length);
    Push(v);
  }
  // Little-endian two's complement of any length; values beyond int64 stay inert objects.
  void PushLong(uint64_t length) {
    const auto* p = reinterpret_cast<const uint8_t*>(Take(length, "LONG"));
    bool negative = length > 0 && (p[length - 1] & 0x80);
    uint8_t sign_byte = negative ? 0xFF : 0x00;
    bool fits = true;
    for (uint64_t i = 8; i < length; ++i) fits = fits && p[i] == sign_byte;
    if (length > 8 && fits) fits = ((p[7] & 0x80) != 0) == negative;
    if (!fits) {
      MutablePtr v = New(Kind::kObject);
      v->class_name = "builtins.int";
      v->text.assign(reinterpret_cast<const char*>(p), length);
      Push(v);
      return;
    }
    uint64_t bits = negative ? ~uint64_t{0} : 0;
    for (uint64_t i = 0; i < length && i < 8; ++i) {
      bits &= ~(uint64_t{0xFF} << (8 * i));
      bits |= uint64_t{p[i]} << (8 * i);
    }
    PushInt(static_cast<int64_t>(bits));
  }
  void PushFloat() {
    uint64_t bits = 0;
    const auto* p = reinterpret_cast<const uint8_t*>(Take(8, "BINFLOAT"));
    for (int i = 0; i < 8; ++i) bits = (bits << 8) | p[i];
    MutablePtr v = New(Kind::kFloat);
    std::memcpy(&v->number, &bits, sizeof bits);
    Push(v);
  }

  // ---- globals and calls ----
  void PushGlobal(const std::string& module, const std::string& name) {
    if (module == "torch" && IsUnsupportedTorchType(name))
      FailUnsupported("torch type 'torch." + name + "' is not supported");
    std::optional<Global> kind = ClassifyGlobal(module, name);
    if (!kind) Fail("global '" + module + "." + name + "' is not in the allowlist");
    MutablePtr v = New(Kind::kObject);
    v->class_name = (module == "__builtin__" ? "builtins" : module) + "." + name;
    info_[v.get()].global = kind;
    Push(v);
  }
  Global GlobalOf(const Value& v, const char* role) {
    const NodeInfo* info = Info(&v);
    if (info == nullptr || !info->global) Fail(std::string(role) + " is not a global");
    return *info->global;
  }
  const std::vector<ValuePtr>& TupleItems(const Value& v, const char* role) {
    if (v.kind != Kind::kTuple) Fail(std::string(role) + " is not a tuple");
    return v.items;
  }
  MutablePtr Opaque(const Value& cls, const std::vector<ValuePtr>& args) {
    MutablePtr v = New(Kind::kObject);
    v->class_name = cls.class_name;
    for (const auto& arg : args) v->items.push_back(Nest(*v, std::const_pointer_cast<Value>(arg)));
    return v;
  }
  MutablePtr Call(const Value& callable, const Value& args_value);
  MutablePtr Instantiate(const Value& cls, const Value& args_value);
  MutablePtr RebuildTensor(bool v3, const std::vector<ValuePtr>& args);
  MutablePtr Encode(const std::vector<ValuePtr>& args);
  MutablePtr PersistentLoad(const Value& pid);
  void Build(const MutablePtr& state);
  void Step(uint8_t op);

  int64_t IntArg(const ValuePtr& v, const char* role) {
    if (v->kind != Kind::kInt) Fail(std::string(role) + " is not an int");
    return v->integer;
  }
  Shape ShapeArg(const ValuePtr& v, const char* role) {
    Shape out;
    for (const auto& item : TupleItems(*v, role)) out.push_back(IntArg(item, role));
    return out;
  }

  std::string_view in_;
  const std::string& name_;
  size_t pos_ = 0;
  size_t op_offset_ = 0;
  std::vector<MutablePtr> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, MutablePtr> memo_;
  std::unordered_map<const Value*, NodeInfo> info_;
  std::unordered_map<std::string, int> storage_by_key_;
  UnpickledTorch result_;
};

MutablePtr Machine::Call(const Value& callable, const Value& args_value) {
  Global kind = GlobalOf(callable, "REDUCE callable");
  const auto& args = TupleItems(args_value, "REDUCE arguments");
  switch (kind) {
    case Global::kRebuildTensorV2:
    case Global::kRebuildTensorV3:
      return RebuildTensor(kind == Global::kRebuildTensorV3, args);
    case Global::kRebuildParameter:
      if (args.empty() || args[0]->kind != Kind::kTensor)
        Fail("_rebuild_parameter expects a tensor as its first argument");
      return std::const_pointer_cast<Value>(args[0]);
    case Global::kRebuildFromType: {
      if (args.size() != 4) Fail("_rebuild_from_type_v2 expects 4 arguments");
      Global inner = GlobalOf(*args[0], "_rebuild_from_type_v2 function");
      if (inner != Global::kRebuildTensorV2 && inner != Global::kRebuildTensorV3)
        Fail("_rebuild_from_type_v2 wraps '" + args[0]->class_name + "', not a tensor rebuild");
      return RebuildTensor(inner == Global::kRebuildTensorV3, TupleItems(*args[2], "arguments"));
    }
    case Global::kOrderedDict:
      if (!args.empty()) FailUnsupported("OrderedDict called with arguments");
      return New(Kind::kDict);
    case Global::kSize:
      if (args.size() != 1) Fail("torch.Size expects one tuple argument");
      ShapeArg(args[0], "torch.Size argument");
      return std::const_pointer_cast<Value>(args[0]);
    case Global::kCodecsEncode:
      return Encode(args);
    case Global::kByteArray:
    case Global::kBytes:
      if (args.empty()) return New(Kind::kBytes);
      if (args.size() == 1 && args[0]->kind == Kind::kBytes)
        return std::const_pointer_cast<Value>(args[0]);
      return Encode(args);
    case Global::kSet:
    case Global::kFrozenSet: {
      if (args.size() > 1) Fail("set expects at most one argument");
      MutablePtr set = Opaque(callable, {});
      if (args.empty()) return set;
      if (args[0]->kind != Kind::kList && args[0]->kind != Kind::kTuple)
        Fail("set argument is not a list or tuple");
      for (const auto& item : args[0]->items)
        set->items.push_back(Nest(*set, std::const_pointer_cast<Value>(item)));
      return set;
    }
    case Global::kGetattr:
      if (args.size() != 2 || args[1]->kind != Kind::kString ||
          GlobalOf(*args[0], "getattr target") != Global::kOpaque)
        Fail("getattr is only allowed as getattr(<allowlisted class>, '<name>')");
      return Opaque(*args[0], {args[1]});
    case Global::kOpaque:
      return Opaque(callable, args);
    default:
      Fail("global '" + callable.class_name + "' cannot be called");
  }
}

MutablePtr Machine::Instantiate(const Value& cls, const Value& args_value) {
  Global kind = GlobalOf(cls, "NEWOBJ class");
  const auto& args = TupleItems(args_value, "NEWOBJ arguments");
  if (kind == Global::kOrderedDict) return New(Kind::kDict);
  if (kind == Global::kSet || kind == Global::kFrozenSet || kind == Global::kOpaque)
    return Opaque(cls, args);
  Fail("global '" + cls.class_name + "' cannot be instantiated");
}

MutablePtr Machine::Encode(const std::vector<ValuePtr>& args) {
  if (args.size() != 2 || args[0]->kind != Kind::kString || args[1]->kind != Kind::kString)
    Fail("_codecs.encode expects (str, encoding)");
  const std::string& text = args[0]->text;
  const std::string& encoding = args[1]->text;
  MutablePtr v = New(Kind::kBytes);
  if (encoding == "utf-8" || encoding == "utf8") {
    v->text = text;
    return v;
  }
  if (encoding != "latin1" && encoding != "latin-1" && encoding != "iso-8859-1")
    FailUnsupported("_codecs.encode with encoding '" + encoding + "'");
  // Each code point below 256 is one UTF-8 byte (< 0x80) or a C2/C3 lead byte plus one more.
  for (size_t i = 0; i < text.size(); ++i) {
    auto c = static_cast<uint8_t>(text[i]);
    if (c < 0x80) {
      v->text += static_cast<char>(c);
      continue;
    }
    auto next = i + 1 < text.size() ? static_cast<uint8_t>(text[i + 1]) : 0;
    if ((c != 0xC2 && c != 0xC3) || (next & 0xC0) != 0x80)
      Fail("_codecs.encode text is not latin-1 encodable UTF-8");
    v->text += static_cast<char>(((c & 0x03) << 6) | (next & 0x3F));
    ++i;
  }
  return v;
}

MutablePtr Machine::PersistentLoad(const Value& pid) {
  const auto& items = TupleItems(pid, "persistent id");
  if (items.size() != 5 || items[0]->kind != Kind::kString || items[0]->text != "storage")
    Fail("persistent id is not ('storage', class, key, location, numel)");
  Global cls = GlobalOf(*items[1], "storage class");
  if (cls != Global::kStorageClass && cls != Global::kUntypedStorage)
    Fail("persistent id names '" + items[1]->class_name + "', not a storage class");
  if (items[2]->kind != Kind::kString || items[3]->kind != Kind::kString)
    Fail("storage key or location is not a string");
  PickleStorage storage;
  storage.key = items[2]->text;
  storage.location = items[3]->text;
  storage.typed = cls == Global::kStorageClass;
  storage.offset = op_offset_;
  if (storage.typed) storage.dtype = *DTypeFromStorageClass(items[1]->class_name.substr(6));
  int64_t numel = IntArg(items[4], "storage numel");
  uint64_t element_size = storage.typed ? ElementSize(storage.dtype) : 1;
  if (numel < 0 || __builtin_mul_overflow(static_cast<uint64_t>(numel), element_size,
                                          &storage.nbytes))
    Fail("storage '" + storage.key + "' has invalid numel " + std::to_string(numel));

  auto [it, inserted] = storage_by_key_.emplace(storage.key, result_.storages.size());
  if (inserted) {
    result_.storages.push_back(storage);
  } else {
    const PickleStorage& first = result_.storages[it->second];
    if (first.typed != storage.typed || first.dtype != storage.dtype ||
        first.nbytes != storage.nbytes)
      Fail("storage '" + storage.key + "' is named again with a different type or size");
  }
  MutablePtr v = New(Kind::kObject);
  v->class_name = items[1]->class_name;
  info_[v.get()].storage = it->second;
  return v;
}

MutablePtr Machine::RebuildTensor(bool v3, const std::vector<ValuePtr>& args) {
  size_t base = v3 ? 7 : 6;
  if (args.size() != base && args.size() != base + 1)
    Fail(std::string(v3 ? "_rebuild_tensor_v3" : "_rebuild_tensor_v2") + " expects " +
         std::to_string(base) + " or " + std::to_string(base + 1) + " arguments, found " +
         std::to_string(args.size()));
  const NodeInfo* storage_info = Info(args[0].get());
  if (storage_info == nullptr || storage_info->storage < 0)
    Fail("tensor rebuild argument 0 is not a storage");
  const PickleStorage& storage = result_.storages[storage_info->storage];

  PickleTensor tensor;
  tensor.storage = storage_info->storage;
  tensor.offset = op_offset_;
  tensor.storage_offset = IntArg(args[1], "storage offset");
  tensor.shape = ShapeArg(args[2], "tensor size");
  tensor.strides = ShapeArg(args[3], "tensor stride");
  if (tensor.shape.size() != tensor.strides.size())
    Fail("tensor size " + ShapeToString(tensor.shape) + " and stride " +
         ShapeToString(tensor.strides) + " differ in length");
  if (v3) {
    if (GlobalOf(*args[6], "tensor dtype") != Global::kDType)
      Fail("tensor dtype '" + args[6]->class_name + "' is not a torch dtype");
    tensor.dtype = *DTypeFromTorchName(args[6]->class_name.substr(6));
    if (storage.typed && storage.dtype != tensor.dtype)
      Fail("tensor dtype " + std::string(Name(tensor.dtype)) + " differs from its storage's " +
           std::string(Name(storage.dtype)));
  } else {
    if (!storage.typed) Fail("_rebuild_tensor_v2 over an UntypedStorage has no dtype");
    tensor.dtype = storage.dtype;
  }
  result_.tensors.push_back(std::move(tensor));
  MutablePtr v = New(Kind::kTensor);
  v->tensor = static_cast<int>(result_.tensors.size() - 1);
  return v;
}

void Machine::Build(const MutablePtr& state) {
  MutablePtr& target = Top();
  // OrderedDict._metadata and legacy tensor state carry nothing the converter needs.
  if (target->kind == Kind::kDict || target->kind == Kind::kTensor) return;
  const NodeInfo* info = Info(target.get());
  if (target->kind != Kind::kObject || (info != nullptr && (info->global || info->storage >= 0)))
    Fail("BUILD on a value that is not an object");
  CheckMutable(*target, "BUILD");
  target->state = Nest(*target, state);
}

void Machine::Step(uint8_t op) {
  switch (op) {
    case 0x80: {  // PROTO
      uint8_t protocol = static_cast<uint8_t>(ReadLE(1));
      if (protocol > kMaxProtocol) FailUnsupported("pickle protocol " + std::to_string(protocol));
      return;
    }
    case 0x95: {  // FRAME: frames only group opcodes, so the length is checked and skipped
      uint64_t length = ReadLE(8);
      if (length > in_.size() - pos_)
        Fail("FRAME of " + std::to_string(length) + " bytes runs past the end");
      return;
    }
    case '(': marks_.push_back(stack_.size()); return;
    case '0': Pop(); return;
    case '1': PopMark(); return;
    case '2': Push(Top()); return;
    case 'N': Push(New(Kind::kNone)); return;
    case 0x88:
    case 0x89: {
      MutablePtr v = New(Kind::kBool);
      v->boolean = op == 0x88;
      Push(v);
      return;
    }
    case 'J': PushInt(static_cast<int32_t>(ReadLE(4))); return;
    case 'K': PushInt(static_cast<int64_t>(ReadLE(1))); return;
    case 'M': PushInt(static_cast<int64_t>(ReadLE(2))); return;
    case 0x8a: PushLong(ReadLE(1)); return;
    case 0x8b: PushLong(ReadLE(4)); return;
    case 'G': PushFloat(); return;
    case 'X': PushText(Kind::kString, ReadLE(4), "BINUNICODE"); return;
    case 0x8c: PushText(Kind::kString, ReadLE(1), "SHORT_BINUNICODE"); return;
    case 0x8d: PushText(Kind::kString, ReadLE(8), "BINUNICODE8"); return;
    case 'U': PushText(Kind::kString, ReadLE(1), "SHORT_BINSTRING"); return;
    case 'T': PushText(Kind::kString, ReadLE(4), "BINSTRING"); return;
    case 'B': PushText(Kind::kBytes, ReadLE(4), "BINBYTES"); return;
    case 'C': PushText(Kind::kBytes, ReadLE(1), "SHORT_BINBYTES"); return;
    case 0x8e: PushText(Kind::kBytes, ReadLE(8), "BINBYTES8"); return;
    case 0x96: PushText(Kind::kBytes, ReadLE(8), "BYTEARRAY8"); return;
    case ')': Push(New(Kind::kTuple)); return;
    case 't': Push(MakeSequence(Kind::kTuple, PopMark())); return;
    case 0x85:
    case 0x86:
    case 0x87: {
      std::vector<MutablePtr> items(op - 0x84);
      for (size_t i = items.size(); i-- > 0;) items[i] = Pop();
      Push(MakeSequence(Kind::kTuple, items));
      return;
    }
    case ']': Push(New(Kind::kList)); return;
    case 'l': Push(MakeSequence(Kind::kList, PopMark())); return;
    case 'a':
    case 'e': {
      std::vector<MutablePtr> items;
      if (op == 'a') items.push_back(Pop()); else items = PopMark();
      MutablePtr& list = Top();
      if (list->kind != Kind::kList) Fail("APPEND to a value that is not a list");
      CheckMutable(*list, "APPEND");
      for (const auto& item : items) list->items.push_back(Nest(*list, item));
      return;
    }
    case '}': Push(New(Kind::kDict)); return;
    case 'd':
    case 's':
    case 'u': {
      std::vector<MutablePtr> items;
      if (op == 's') {
        MutablePtr value = Pop();
        items = {Pop(), value};
      } else {
        items = PopMark();
      }
      if (items.size() % 2 != 0) Fail("odd number of items for SETITEMS");
      if (op == 'd') Push(New(Kind::kDict));
      MutablePtr& dict = Top();
      if (dict->kind != Kind::kDict) Fail("SETITEM on a value that is not a dict");
      CheckMutable(*dict, "SETITEM");
      for (size_t i = 0; i < items.size(); i += 2)
        dict->entries.emplace_back(Nest(*dict, items[i]), Nest(*dict, items[i + 1]));
      return;
    }
    case 0x8f:
    case 0x91: {  // EMPTY_SET, FROZENSET
      MutablePtr set = MakeSequence(Kind::kObject, op == 0x91 ? PopMark() : Items{});
      set->class_name = op == 0x8f ? "builtins.set" : "builtins.frozenset";
      Push(set);
      return;
    }
    case 0x90: {  // ADDITEMS
      std::vector<MutablePtr> items = PopMark();
      MutablePtr& set = Top();
      if (set->kind != Kind::kObject || set->class_name != "builtins.set")
        Fail("ADDITEMS to a value that is not a set");
      CheckMutable(*set, "ADDITEMS");
      for (const auto& item : items) set->items.push_back(Nest(*set, item));
      return;
    }
    case 'q': Memoize(ReadLE(1)); return;
    case 'r': Memoize(ReadLE(4)); return;
    case 0x94: Memoize(memo_.size()); return;
    case 'h': Recall(ReadLE(1)); return;
    case 'j': Recall(ReadLE(4)); return;
    case 'c': {
      std::string module = ReadLine();
      PushGlobal(module, ReadLine());
      return;
    }
    case 0x93: {  // STACK_GLOBAL
      MutablePtr name = Pop();
      MutablePtr module = Pop();
      if (name->kind != Kind::kString || module->kind != Kind::kString)
        Fail("STACK_GLOBAL operands are not strings");
      PushGlobal(module->text, name->text);
      return;
    }
    case 'R': {
      MutablePtr args = Pop();
      MutablePtr callable = Pop();
      Push(Call(*callable, *args));
      return;
    }
    case 0x81:
    case 0x92: {  // NEWOBJ, NEWOBJ_EX (keyword arguments are dropped: nothing is constructed)
      if (op == 0x92) Pop();
      MutablePtr args = Pop();
      MutablePtr cls = Pop();
      Push(Instantiate(*cls, *args));
      return;
    }
    case 'b': Build(Pop()); return;
    case 'Q': {
      MutablePtr pid = Pop();
      Push(PersistentLoad(*pid));
      return;
    }
    default: {
      static const char kDigits[] = "0123456789abcdef";
      std::string hex = {'0', 'x', kDigits[op >> 4], kDigits[op & 0xF]};
      Fail("unknown or unsupported pickle opcode " + hex);
    }
  }
}

}  // namespace

UnpickledTorch Unpickle(std::string_view bytes, const std::string& stream_name) {
  return Machine(bytes, stream_name).Run();
}

}  // namespace mcaconv::pickle
