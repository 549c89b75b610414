// The bandwidth-bound passes of the 16-bit scalar pipeline, as a table of functions a backend provides. The CPU
// backend is in quantize.cpp; the CUDA one (native/cuda/pipeline16.cu) mirrors it. The solve between the two
// passes (one small problem per slice) always runs on the CPU: see docs/CUDA.md for what runs where.
#pragma once
#include <cstdint>

#include "context.h"

namespace wp {

struct Backend16 {
  const char* name;
  // hist[s*65536 + raw] += count of raw among elements [s*S, min(n, (s+1)*S)), for every slice s (hist zeroed
  // by the caller).
  void (*histogram)(const uint16_t* raw, uint64_t n, uint64_t S, uint64_t* hist, const Context& ctx);
  // out (packed, pack_bits per code, LSB first) = luts[slice(i)*65536 + raw[i]] for every element; S % 8 == 0.
  void (*assign)(const uint16_t* raw, uint64_t n, uint64_t S, const uint8_t* luts, int pack_bits, uint8_t* out,
                 const Context& ctx);
};

// The CPU implementation (multi-threaded, deterministic).
const Backend16& cpu_backend16();

}  // namespace wp
