// wp::Error: the one error type of the native core. Core code throws it through WP_THROW_IF_NOT;
// the addon maps it onto WeightpressError (lib/errors.ts) in one place: to_js_error (native/addon/common.cpp),
// with code_name (native/core/context.cpp) giving the E_* name of each code.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>

namespace wp {

enum class Code : int {
  Argument = 0,  // E_ARGUMENT: an impossible option or a bad call
  Format,        // E_FORMAT: a malformed or truncated file
  Dtype,         // E_DTYPE: a dtype that cannot be handled here
  Io,            // E_IO: open, map, write or rename failed
  NonFinite,     // E_NONFINITE: NaN or Inf where finite values are required
  Cancelled,     // E_CANCELLED: the caller aborted
  Internal,      // E_INTERNAL: a bug
  Cuda,          // E_CUDA: the CUDA backend failed
  Range,         // E_RANGE: a value outside the range of the dtype it must be stored in (F16 codebooks, scales, decode)
};

const char* code_name(Code c);

class Error : public std::runtime_error {
 public:
  Error(Code code, std::string msg, std::string tensor = {}, std::string file = {})
      : std::runtime_error(std::move(msg)), code_(code), tensor_(std::move(tensor)), file_(std::move(file)) {}
  Code code() const { return code_; }
  const std::string& tensor() const { return tensor_; }
  const std::string& file() const { return file_; }
  // Fill in context the thrower did not know (the file and tensor are often known one level up).
  Error& with_tensor(const std::string& t) { if (tensor_.empty()) tensor_ = t; return *this; }
  Error& with_file(const std::string& f) { if (file_.empty()) file_ = f; return *this; }

 private:
  Code code_;
  std::string tensor_, file_;
};

// Multiplication of sizes that refuses to overflow.
inline uint64_t mul_no_overflow(uint64_t a, uint64_t b, const char* what) {
  if (a != 0 && b > UINT64_MAX / a) throw Error(Code::Format, std::string("size overflow in ") + what);
  return a * b;
}

}  // namespace wp

#define WP_THROW_IF_NOT(cond, code, msg)                                      \
  do {                                                                        \
    if (!(cond)) throw ::wp::Error(::wp::Code::code, (msg));                  \
  } while (0)
