#include "dtype.h"

#include <algorithm>

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

void store_from_float(const float* src, size_t n, Dtype d, void* dst) {
  switch (d) {
    case Dtype::F32: std::memcpy(dst, src, n * 4); return;
    case Dtype::F64: { double* o = (double*)dst; for (size_t i = 0; i < n; ++i) o[i] = src[i]; return; }
    case Dtype::F16: { uint16_t* o = (uint16_t*)dst; for (size_t i = 0; i < n; ++i) o[i] = f32_to_f16(src[i]); return; }
    case Dtype::BF16: { uint16_t* o = (uint16_t*)dst; for (size_t i = 0; i < n; ++i) o[i] = f32_to_bf16(src[i]); return; }
    default: throw Error(Code::Dtype, std::string("cannot write dense values as ") + dtype_name(d));
  }
}

void convert_float(const void* src, Dtype from, size_t n, Dtype to, void* dst) {
  if (from == to) { std::memcpy(dst, src, n * dtype_size(from)); return; }
  if (to == Dtype::F64) {
    double* o = (double*)dst;
    for (size_t i = 0; i < n; ++i) o[i] = load_as_double(src, from, i);
    return;
  }
  float buf[4096];
  for (size_t b = 0; b < n; b += 4096) {
    size_t m = std::min<size_t>(4096, n - b);
    for (size_t i = 0; i < m; ++i) buf[i] = (float)load_as_double(src, from, b + i);
    store_from_float(buf, m, to, (char*)dst + b * dtype_size(to));
  }
}

}  // namespace wp
