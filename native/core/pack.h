// Bit packing of codes: code i of a stream occupies bits [i*b, (i+1)*b), bit t being bit (t % 8) of byte t / 8
// (LSB first). Streams that start on an element index that is a multiple of 8 start on a byte boundary.
#pragma once
#include <cstddef>
#include <cstdint>

namespace wp {

// Bytes needed for n codes of `bits` bits, rounded up to a multiple of 8 so that every tensor weightpress
// writes keeps the next one 8-byte aligned.
inline size_t packed_bytes(size_t n, int bits) {
  size_t b = (n * (size_t)bits + 7) / 8;
  return (b + 7) & ~(size_t)7;
}

void pack_bits(const uint8_t* codes, size_t n, int bits, uint8_t* out);
void unpack_bits(const uint8_t* in, size_t n, int bits, uint8_t* codes);

// The same layout for wider codes (the vector codec's indices): bits 1 ... 16, ceil(n * bits / 8) bytes.
void pack_indices(const uint32_t* codes, size_t n, int bits, uint8_t* out);
void unpack_indices(const uint8_t* in, size_t n, int bits, uint32_t* codes);

}  // namespace wp
