#include "safetensors/header_json.h"

#include <utility>

#include "safetensors/header_text.h"

namespace mcaconv::safetensors_internal {
namespace {

using Json = nlohmann::json;

// SAX handler that builds the DOM the way nlohmann's own does, plus duplicate and depth checks.
// Returning false from an event stops the parse.
class DomBuilder {
 public:
  explicit DomBuilder(HeaderJson* out) : out_(out) {}

  bool null() { return Add(Json(nullptr)); }
  bool boolean(bool value) { return Add(Json(value)); }
  bool number_integer(Json::number_integer_t value) { return Add(Json(value)); }
  bool number_unsigned(Json::number_unsigned_t value) { return Add(Json(value)); }
  bool number_float(Json::number_float_t value, const std::string&) { return Add(Json(value)); }
  bool string(Json::string_t& value) { return Add(Json(std::move(value))); }
  bool binary(Json::binary_t& value) { return Add(Json::binary(std::move(value))); }
  bool start_object(size_t) { return Open(Json::object()); }
  bool start_array(size_t) { return Open(Json::array()); }
  bool end_object() { return Close(); }
  bool end_array() { return Close(); }

  bool key(Json::string_t& key) {
    if (stack_.back()->contains(key)) {
      const bool top = stack_.size() == 1;
      const std::string where = !top && entry_ == "__metadata__" ? " in __metadata__" : "";
      problem_ = HeaderJsonProblem{0, top ? key : entry_,
                                   "duplicate key " + Quote(key) + where +
                                       " (each key must appear once)"};
      if (stack_.size() == 1) ++entry_count_;  // report the second occurrence
      return false;
    }
    if (stack_.size() == 1) {
      entry_ = key;
      ++entry_count_;
      out_->keys.push_back(key);
    } else if (stack_.size() == 2 && entry_ == "__metadata__" && stack_.back()->is_object()) {
      out_->metadata_keys.push_back(key);
    }
    pending_key_ = std::move(key);
    return true;
  }

  bool parse_error(size_t position, const std::string&, const nlohmann::detail::exception& e) {
    // nlohmann quotes the token it stopped in, which a hostile header can make huge.
    constexpr size_t kMaxDetail = 200;
    std::string detail = e.what();
    if (detail.size() > kMaxDetail) detail = detail.substr(0, kMaxDetail) + "...";
    problem_ = HeaderJsonProblem{position == 0 ? 0 : position - 1, "",
                                 "header is not valid JSON: " + Quote(detail)};
    return false;
  }

  const std::optional<HeaderJsonProblem>& problem() const { return problem_; }
  // Index among the outermost keys of the entry a problem belongs to.
  size_t problem_entry_index() const { return entry_count_ == 0 ? 0 : entry_count_ - 1; }

 private:
  // Places a finished scalar, or a new empty container, in its parent; returns where it went.
  Json* Place(Json value) {
    if (stack_.empty()) {
      out_->doc = std::move(value);
      return &out_->doc;
    }
    Json& parent = *stack_.back();
    if (parent.is_array()) {
      parent.push_back(std::move(value));
      return &parent.back();
    }
    Json& slot = parent[pending_key_];
    slot = std::move(value);
    return &slot;
  }

  bool Add(Json value) {
    Place(std::move(value));
    return true;
  }

  bool Open(Json container) {
    if (stack_.size() >= static_cast<size_t>(kMaxJsonDepth)) {
      problem_ = HeaderJsonProblem{0, entry_, "header JSON nests deeper than " +
                                                  std::to_string(kMaxJsonDepth) + " levels"};
      return false;
    }
    stack_.push_back(Place(std::move(container)));
    return true;
  }

  bool Close() {
    stack_.pop_back();
    return true;
  }

  HeaderJson* out_;
  std::vector<Json*> stack_;  // open containers, innermost last; parents never move meanwhile
  std::string pending_key_;
  std::string entry_;  // the outermost key whose value is being parsed
  size_t entry_count_ = 0;
  std::optional<HeaderJsonProblem> problem_;
};

}  // namespace

std::optional<HeaderJsonProblem> ParseHeaderJson(std::string_view text, HeaderJson* out) {
  *out = HeaderJson{};
  DomBuilder builder(out);
  if (Json::sax_parse(text.begin(), text.end(), &builder)) return std::nullopt;
  HeaderJsonProblem problem = builder.problem().value_or(
      HeaderJsonProblem{0, "", "header is not valid JSON"});
  if (problem.offset == 0 && !problem.entry.empty()) {
    // Events carry no position: point at the outermost key the problem belongs to.
    const std::vector<size_t> keys = TopLevelKeyOffsets(text);
    const size_t index = builder.problem_entry_index();
    if (index < keys.size()) problem.offset = keys[index];
  }
  return problem;
}

}  // namespace mcaconv::safetensors_internal
