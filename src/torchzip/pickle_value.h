// An inert value tree for the data of a pickle stream: what data.pkl of a torch.save file decodes
// to, and what the torch zip writer encodes. Nothing a pickle names is ever imported or executed:
// known callables (torch rebuild functions, OrderedDict, ...) are interpreted by the reader, and
// anything else allowed becomes an opaque kObject carrying its class name.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace mcaconv::pickle {

struct Value;
using ValuePtr = std::shared_ptr<const Value>;

enum class Kind {
  kNone,
  kBool,
  kInt,
  kFloat,
  kString,
  kBytes,
  kTuple,
  kList,
  kDict,
  kTensor,
  kObject
};

struct Value {
  Kind kind = Kind::kNone;
  bool boolean = false;
  int64_t integer = 0;
  double number = 0;
  std::string text;                                    // kString (UTF-8), kBytes (raw)
  std::vector<ValuePtr> items;                         // kTuple, kList; kObject: its arguments
  std::vector<std::pair<ValuePtr, ValuePtr>> entries;  // kDict, in insertion order
  int tensor = -1;         // kTensor: index into the reader's tensor list or writer's tensor list
  std::string class_name;  // kObject: "module.name", e.g. "_io.BytesIO", "argparse.Namespace"
  ValuePtr state;          // kObject: the argument of BUILD (e.g. a Namespace's dict), or null

  // Dict lookup by string key; nullptr if absent or not a dict.
  const Value* Find(const std::string& key) const;
};

// The Python type name of a kind: "None", "bool", "int", "float", "str", "bytes", "tuple",
// "list", "dict", "tensor", "object".
const char* KindName(Kind kind);

ValuePtr MakeNone();
ValuePtr MakeBool(bool v);
ValuePtr MakeInt(int64_t v);
ValuePtr MakeFloat(double v);
ValuePtr MakeString(std::string v);
ValuePtr MakeTensor(int index);
ValuePtr MakeDict(std::vector<std::pair<ValuePtr, ValuePtr>> entries);
ValuePtr MakeList(std::vector<ValuePtr> items);
ValuePtr MakeTuple(std::vector<ValuePtr> items);

}  // namespace mcaconv::pickle
