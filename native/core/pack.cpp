#include "pack.h"

namespace wp {

void pack_bits(const uint8_t* codes, size_t n, int bits, uint8_t* out) {
  if (bits == 8) {
    for (size_t i = 0; i < n; ++i) out[i] = codes[i];
    return;
  }
  if (bits == 4) {
    size_t i = 0;
    for (; i + 1 < n; i += 2) *out++ = (uint8_t)(codes[i] | (codes[i + 1] << 4));
    if (i < n) *out = codes[i];
    return;
  }
  uint64_t acc = 0;
  int nb = 0;
  for (size_t i = 0; i < n; ++i) {
    acc |= (uint64_t)codes[i] << nb;
    nb += bits;
    while (nb >= 8) { *out++ = (uint8_t)acc; acc >>= 8; nb -= 8; }
  }
  if (nb > 0) *out = (uint8_t)acc;
}

void unpack_bits(const uint8_t* in, size_t n, int bits, uint8_t* codes) {
  if (bits == 8) {
    for (size_t i = 0; i < n; ++i) codes[i] = in[i];
    return;
  }
  if (bits == 4) {
    size_t i = 0;
    for (; i + 1 < n; i += 2) { uint8_t b = *in++; codes[i] = b & 15; codes[i + 1] = b >> 4; }
    if (i < n) codes[i] = *in & 15;
    return;
  }
  const uint32_t mask = (1u << bits) - 1;
  uint64_t acc = 0;
  int nb = 0;
  for (size_t i = 0; i < n; ++i) {
    while (nb < bits) { acc |= (uint64_t)(*in++) << nb; nb += 8; }
    codes[i] = (uint8_t)(acc & mask);
    acc >>= bits;
    nb -= bits;
  }
}

void pack_indices(const uint32_t* codes, size_t n, int bits, uint8_t* out) {
  uint64_t acc = 0;
  int nb = 0;
  const uint32_t mask = bits >= 32 ? ~0u : (1u << bits) - 1;
  for (size_t i = 0; i < n; ++i) {
    acc |= (uint64_t)(codes[i] & mask) << nb;
    nb += bits;
    while (nb >= 8) { *out++ = (uint8_t)acc; acc >>= 8; nb -= 8; }
  }
  if (nb > 0) *out = (uint8_t)acc;
}

void unpack_indices(const uint8_t* in, size_t n, int bits, uint32_t* codes) {
  const uint32_t mask = bits >= 32 ? ~0u : (1u << bits) - 1;
  uint64_t acc = 0;
  int nb = 0;
  for (size_t i = 0; i < n; ++i) {
    while (nb < bits) { acc |= (uint64_t)(*in++) << nb; nb += 8; }
    codes[i] = (uint32_t)(acc & mask);
    acc >>= bits;
    nb -= bits;
  }
}

}  // namespace wp
