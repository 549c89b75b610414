#include "dtype.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>

#include "error.h"

namespace wp {

namespace {
struct DtypeRow { Dtype d; const char* name; size_t size; };
// One table: the name and size of every safetensors dtype.
constexpr DtypeRow kDtypes[] = {
    {Dtype::F64, "F64", 8},   {Dtype::F32, "F32", 4},   {Dtype::F16, "F16", 2},
    {Dtype::BF16, "BF16", 2}, {Dtype::I64, "I64", 8},   {Dtype::I32, "I32", 4},
    {Dtype::I16, "I16", 2},   {Dtype::I8, "I8", 1},     {Dtype::U64, "U64", 8},
    {Dtype::U32, "U32", 4},   {Dtype::U16, "U16", 2},   {Dtype::U8, "U8", 1},
    {Dtype::BOOL, "BOOL", 1}, {Dtype::F8_E4M3, "F8_E4M3", 1}, {Dtype::F8_E5M2, "F8_E5M2", 1},
};
}  // namespace

size_t dtype_size(Dtype d) {
  for (const auto& r : kDtypes) if (r.d == d) return r.size;
  return 0;
}
const char* dtype_name(Dtype d) {
  for (const auto& r : kDtypes) if (r.d == d) return r.name;
  return "UNKNOWN";
}
Dtype dtype_from_name(const std::string& s) {
  for (const auto& r : kDtypes) if (s == r.name) return r.d;
  return Dtype::Unknown;
}

namespace {

[[noreturn]] void throw_overflow(double v, Dtype d) {
  char b[48];
  std::snprintf(b, sizeof b, "%.6g", v);
  throw Error(Code::Range, std::string("value ") + b + " does not fit " + dtype_name(d) + " (largest " +
                               (d == Dtype::F16 ? "65504" : d == Dtype::BF16 ? "3.39e38" : "3.40e38") +
                               "): decode to a wider dtype, or allow overflow to saturate");
}

// 16-bit store with the overflow policy: `conv` rounds, `maxbits` is the largest finite value's code.
template <typename Conv>
size_t store16(const float* src, size_t n, Dtype d, uint16_t* o, Overflow ov, Conv conv, uint16_t maxbits) {
  size_t sat = 0;
  for (size_t i = 0; i < n; ++i) {
    uint16_t h = conv(src[i]);
    if ((h & 0x7fffu) == (maxbits & 0x7fffu) + 1 && std::isfinite(src[i])) {  // rounded to +-inf
      if (ov == Overflow::Error) throw_overflow(src[i], d);
      h = (uint16_t)((h & 0x8000u) | maxbits);
      ++sat;
    }
    o[i] = h;
  }
  return sat;
}

}  // namespace

size_t store_from_float(const float* src, size_t n, Dtype d, void* dst, Overflow ov) {
  switch (d) {
    case Dtype::F32: std::memcpy(dst, src, n * 4); return 0;
    case Dtype::F64: { double* o = (double*)dst; for (size_t i = 0; i < n; ++i) o[i] = src[i]; return 0; }
    case Dtype::F16: return store16(src, n, d, (uint16_t*)dst, ov, f32_to_f16, 0x7bffu);
    case Dtype::BF16: return store16(src, n, d, (uint16_t*)dst, ov, f32_to_bf16, 0x7f7fu);
    default: throw Error(Code::Dtype, std::string("cannot write dense values as ") + dtype_name(d));
  }
}

size_t convert_float(const void* src, Dtype from, size_t n, Dtype to, void* dst, Overflow ov) {
  if (from == to) { std::memcpy(dst, src, n * dtype_size(from)); return 0; }
  if (to == Dtype::F64) {
    double* o = (double*)dst;
    for (size_t i = 0; i < n; ++i) o[i] = load_as_double(src, from, i);
    return 0;
  }
  size_t sat = 0;
  float buf[4096];
  for (size_t b = 0; b < n; b += 4096) {
    size_t m = std::min<size_t>(4096, n - b);
    for (size_t i = 0; i < m; ++i) {
      double v = load_as_double(src, from, b + i);
      float f = (float)v;
      if (std::isinf(f) && std::isfinite(v)) {  // F64 beyond F32's range
        if (ov == Overflow::Error) throw_overflow(v, Dtype::F32);
        f = std::copysign(std::numeric_limits<float>::max(), (float)v);
        ++sat;
      }
      buf[i] = f;
    }
    sat += store_from_float(buf, m, to, (char*)dst + b * dtype_size(to), ov);
  }
  return sat;
}

void load_f32(const void* data, Dtype d, size_t begin, size_t n, float* out) {
  switch (d) {
    case Dtype::F32: std::memcpy(out, (const float*)data + begin, n * 4); return;
    case Dtype::F16: { const uint16_t* s = (const uint16_t*)data + begin; for (size_t i = 0; i < n; ++i) out[i] = f16_to_f32(s[i]); return; }
    case Dtype::BF16: { const uint16_t* s = (const uint16_t*)data + begin; for (size_t i = 0; i < n; ++i) out[i] = bf16_to_f32(s[i]); return; }
    case Dtype::F64: { const double* s = (const double*)data + begin; for (size_t i = 0; i < n; ++i) out[i] = (float)s[i]; return; }
    default: throw Error(Code::Dtype, std::string("cannot quantize dtype ") + dtype_name(d));
  }
}

}  // namespace wp
