// mcaconv error model.
//
// Every failure the library detects is reported by throwing mcaconv::Error. Bad or hostile input is
// an expected failure, so its message carries the context a user needs to find it: the file, the
// byte offset, and the tensor or record involved, plus what was expected and what was found. Layers
// add context once, at their boundary (the format layer knows the offset and the tensor, the
// driver knows the input path and the operation), using WithContext().
//
// Programmer errors (violated preconditions) are asserts, not Errors.
#pragma once

#include <stdexcept>
#include <string>

namespace mcaconv {

enum class ErrorKind {
  kInvalidInput,  // corrupt, truncated, inconsistent or hostile input data
  kUnsupported,   // valid input using a feature we do not handle
  kUsage,         // bad command-line arguments or option combinations
  kIo,            // operating-system failure (open, read, write, rename, disk full)
};

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  ErrorKind kind() const { return kind_; }

 private:
  ErrorKind kind_;
};

[[noreturn]] inline void ThrowInvalid(const std::string& message) {
  throw Error(ErrorKind::kInvalidInput, message);
}
[[noreturn]] inline void ThrowUnsupported(const std::string& message) {
  throw Error(ErrorKind::kUnsupported, message);
}
[[noreturn]] inline void ThrowUsage(const std::string& message) {
  throw Error(ErrorKind::kUsage, message);
}
// Throws kIo with "<what>: <strerror(errno_value)>".
[[noreturn]] void ThrowIo(const std::string& what, int errno_value);

// Runs fn(); an Error escaping it is rethrown with "<context>: " prepended, keeping its kind.
template <typename Fn>
auto WithContext(const std::string& context, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const Error& e) {
    throw Error(e.kind(), context + ": " + e.what());
  }
}

}  // namespace mcaconv
