#include "torchzip/pickle_value.h"

namespace mcaconv::pickle {

const Value* Value::Find(const std::string& key) const {
  if (kind != Kind::kDict) return nullptr;
  for (const auto& [k, v] : entries)
    if (k->kind == Kind::kString && k->text == key) return v.get();
  return nullptr;
}

const char* KindName(Kind kind) {
  switch (kind) {
    case Kind::kNone: return "None";
    case Kind::kBool: return "bool";
    case Kind::kInt: return "int";
    case Kind::kFloat: return "float";
    case Kind::kString: return "str";
    case Kind::kBytes: return "bytes";
    case Kind::kTuple: return "tuple";
    case Kind::kList: return "list";
    case Kind::kDict: return "dict";
    case Kind::kTensor: return "tensor";
    case Kind::kObject: return "object";
  }
  return "unknown";
}

namespace {
std::shared_ptr<Value> New(Kind kind) {
  auto v = std::make_shared<Value>();
  v->kind = kind;
  return v;
}
}  // namespace

ValuePtr MakeNone() { return New(Kind::kNone); }
ValuePtr MakeBool(bool b) {
  auto v = New(Kind::kBool);
  v->boolean = b;
  return v;
}
ValuePtr MakeInt(int64_t i) {
  auto v = New(Kind::kInt);
  v->integer = i;
  return v;
}
ValuePtr MakeFloat(double f) {
  auto v = New(Kind::kFloat);
  v->number = f;
  return v;
}
ValuePtr MakeString(std::string s) {
  auto v = New(Kind::kString);
  v->text = std::move(s);
  return v;
}
ValuePtr MakeTensor(int index) {
  auto v = New(Kind::kTensor);
  v->tensor = index;
  return v;
}
ValuePtr MakeDict(std::vector<std::pair<ValuePtr, ValuePtr>> entries) {
  auto v = New(Kind::kDict);
  v->entries = std::move(entries);
  return v;
}
ValuePtr MakeList(std::vector<ValuePtr> items) {
  auto v = New(Kind::kList);
  v->items = std::move(items);
  return v;
}
ValuePtr MakeTuple(std::vector<ValuePtr> items) {
  auto v = New(Kind::kTuple);
  v->items = std::move(items);
  return v;
}

}  // namespace mcaconv::pickle
