// Dtypes of safetensors and the conversions between the float formats and float/double.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>

namespace wp {

enum class Dtype : int {
  F64, F32, F16, BF16, I64, I32, I16, I8, U64, U32, U16, U8, BOOL, F8_E4M3, F8_E5M2, Unknown
};

// Size in bytes of one element; 0 for Unknown.
size_t dtype_size(Dtype d);
const char* dtype_name(Dtype d);
Dtype dtype_from_name(const std::string& s);  // Unknown when not a safetensors dtype
// The float dtypes weightpress quantizes (the others are passed through unchanged).
inline bool dtype_is_quantizable(Dtype d) {
  return d == Dtype::F64 || d == Dtype::F32 || d == Dtype::F16 || d == Dtype::BF16;
}

inline float f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: renormalize
      int e = -1;
      do { ++e; mant <<= 1; } while ((mant & 0x400u) == 0);
      mant &= 0x3ffu;
      bits = sign | ((uint32_t)(127 - 15 - e) << 23) | (mant << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Round to nearest even, with overflow to Inf and NaN kept NaN.
inline uint16_t f32_to_f16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t ax = x & 0x7fffffffu;
  if (ax >= 0x7f800000u) return (uint16_t)(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u : 0));
  if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);  // rounds to >= 65520: Inf
  if (ax < 0x38800000u) {                                      // below the smallest normal f16
    if (ax < 0x33000000u) return (uint16_t)sign;               // rounds to zero
    uint32_t e = ax >> 23;
    uint32_t m = (ax & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126 - e;  // 14 + (113 - e) - ... : m >> (shift - 0) gives the subnormal mantissa
    uint32_t r = m >> shift;
    uint32_t rem = m & ((1u << shift) - 1);
    uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (r & 1u))) ++r;
    return (uint16_t)(sign | r);
  }
  uint32_t r = ax + 0xfffu + ((ax >> 13) & 1u);  // round to nearest even at bit 13
  r -= 0x38000000u;                              // rebias exponent 127 -> 15
  return (uint16_t)(sign | (r >> 13));
}

inline float bf16_to_f32(uint16_t h) {
  uint32_t bits = (uint32_t)h << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

inline uint16_t f32_to_bf16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u);  // quiet NaN
  x += 0x7fffu + ((x >> 16) & 1u);
  return (uint16_t)(x >> 16);
}

// Read element i of a float tensor as double.
inline double load_as_double(const void* data, Dtype d, size_t i) {
  switch (d) {
    case Dtype::F64: { double v; std::memcpy(&v, (const char*)data + i * 8, 8); return v; }
    case Dtype::F32: { float v; std::memcpy(&v, (const char*)data + i * 4, 4); return v; }
    case Dtype::F16: { uint16_t v; std::memcpy(&v, (const char*)data + i * 2, 2); return f16_to_f32(v); }
    case Dtype::BF16: { uint16_t v; std::memcpy(&v, (const char*)data + i * 2, 2); return bf16_to_f32(v); }
    default: return NAN;
  }
}

// What a narrowing store does with a finite value beyond the target dtype's largest finite value (F16: 65504,
// BF16: about 3.39e38): Error(Range) (the default), or store the largest finite value of that sign and count it.
enum class Overflow { Error, Saturate };

// Stores n floats as dtype d (F32, F64, F16 or BF16; round to nearest even). Returns how many finite values were
// saturated (Overflow::Saturate); with Overflow::Error the first such value throws Error(Range). NaN and +-inf
// are stored as they are.
size_t store_from_float(const float* src, size_t n, Dtype d, void* dst, Overflow ov = Overflow::Error);
// Converts n values between float dtypes, as store_from_float; returns the count of saturated values.
// Elements [begin, begin + n) of a float tensor of dtype d (F32, F16, BF16, F64) as F32 into out; E_DTYPE for any
// other dtype.
void load_f32(const void* data, Dtype d, size_t begin, size_t n, float* out);

size_t convert_float(const void* src, Dtype from, size_t n, Dtype to, void* dst, Overflow ov = Overflow::Error);

}  // namespace wp
