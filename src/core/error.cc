#include "core/error.h"

#include <cstring>

namespace mcaconv {

void ThrowIo(const std::string& what, int errno_value) {
  throw Error(ErrorKind::kIo, what + ": " + std::strerror(errno_value));
}

}  // namespace mcaconv
