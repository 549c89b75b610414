// rANS coder for one chunk: 32-bit states in [2^15, 2^31), 16-bit renormalization (at most one word per
// symbol), probability precision P = 8..15 bits, 4 interleaved states (symbol i of a chunk uses state i mod 4)
// sharing one word stream. Encoding uses Alverson's reciprocals (exact for states below 2^31, as in Giesen's
// rans_byte.h), decoding one table lookup per symbol and a branch-free renormalization.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "entropy.h"
#include "le.h"

namespace wp {
namespace entropy_detail {

namespace {


double cost_of(const uint64_t* hist, const std::vector<uint32_t>& f, int alphabet, int prob_bits) {
  double c = 0;
  for (int s = 0; s < alphabet; ++s)
    if (hist[s]) c += (double)hist[s] * ((double)prob_bits - std::log2((double)f[s]));
  return c;
}

}  // namespace

std::vector<uint32_t> rans_normalize(const uint64_t* hist, int alphabet, int prob_bits) {
  std::vector<uint32_t> f(alphabet, 0);
  double total = 0;
  int used = 0;
  for (int s = 0; s < alphabet; ++s) {
    total += (double)hist[s];
    used += hist[s] != 0;
  }
  if (used == 0) return f;
  const uint32_t M = 1u << prob_bits;
  if ((uint32_t)used > M) throw Error(Code::Argument, "rANS: " + std::to_string(used) + " symbols used, more than 2^" + std::to_string(prob_bits));
  // Start from rounding, each used symbol at least 1.
  int64_t sum = 0;
  for (int s = 0; s < alphabet; ++s) {
    if (!hist[s]) continue;
    const double v = std::floor((double)hist[s] * M / total + 0.5);  // IEEE: the same on every platform
    f[s] = std::max<uint32_t>(1, (uint32_t)std::min(v, (double)M));
    sum += f[s];
  }
  // Cost of taking one from / giving one to s, in bits (hist_s * log2 ratio).
  auto loss = [&](int s) { return f[s] > 1 ? (double)hist[s] * (std::log2((double)f[s]) - std::log2((double)f[s] - 1)) : INFINITY; };
  auto gain = [&](int s) { return hist[s] ? (double)hist[s] * (std::log2((double)f[s] + 1) - std::log2((double)f[s])) : -INFINITY; };
  while (sum > (int64_t)M) {
    int best = -1;
    double b = INFINITY;
    for (int s = 0; s < alphabet; ++s) {
      double l = loss(s);
      if (l < b) b = l, best = s;
    }
    --f[best];
    --sum;
  }
  while (sum < (int64_t)M) {
    int best = -1;
    double b = -INFINITY;
    for (int s = 0; s < alphabet; ++s) {
      double g = gain(s);
      if (g > b) b = g, best = s;
    }
    ++f[best];
    ++sum;
  }
  // Exchange until no single move from one symbol to another lowers the cost (optimal for this separable
  // convex problem); bounded, and every move strictly lowers the cost.
  for (int it = 0; it < 4 * alphabet + 64; ++it) {
    int bi = -1, bj = -1;
    double bl = INFINITY, bg = -INFINITY;
    for (int s = 0; s < alphabet; ++s) {
      double l = loss(s), g = gain(s);
      if (l < bl) bl = l, bi = s;
      if (g > bg) bg = g, bj = s;
    }
    if (bi < 0 || bj < 0 || bi == bj || !(bg > bl * (1 + 1e-12) + 1e-9)) break;
    --f[bi];
    ++f[bj];
  }
  return f;
}

int rans_choose_bits(const uint64_t* hist, int alphabet) {
  uint64_t total = 0;
  int used = 0;
  for (int s = 0; s < alphabet; ++s) total += hist[s], used += hist[s] != 0;
  if (used <= 1) return 12;
  const double c15 = cost_of(hist, rans_normalize(hist, alphabet, 15), alphabet, 15);
  for (int p = 12; p < 15; ++p) {
    if ((1 << p) < used) continue;
    double c = cost_of(hist, rans_normalize(hist, alphabet, p), alphabet, p);
    if (c - c15 <= 0.0005 * (double)total) return p;
  }
  return 15;
}

RansEncoder::RansEncoder(const uint32_t* freq, int alphabet, int pb) : prob_bits(pb) {
  std::memset(sym, 0, sizeof(sym));
  const uint32_t M = 1u << pb;
  uint32_t cum = 0;
  for (int s = 0; s < alphabet; ++s) {
    const uint32_t f = freq[s];
    Sym& e = sym[s];
    if (f == 0) continue;  // x_max = 0: never used (the caller checked that every symbol present has f > 0)
    e.x_max = ((kRansL >> pb) << 16) * f;  // f << (31 - P) <= 2^31
    e.cmpl_freq = M - f;
    if (f < 2) {
      e.rcp_freq = ~0u;
      e.rcp_shift = 0;
      e.bias = cum + M - 1;
    } else {
      uint32_t shift = 0;
      while (f > (1u << shift)) shift++;
      e.rcp_freq = (uint32_t)(((1ull << (shift + 31)) + f - 1) / f);
      e.rcp_shift = shift - 1;
      e.bias = cum;
    }
    cum += f;
  }
}

size_t RansEncoder::encode_chunk(const uint8_t* s, size_t m, uint8_t* out, uint8_t* scratch) const {
  uint32_t x0 = kRansL, x1 = kRansL, x2 = kRansL, x3 = kRansL;
  uint8_t* const wend = scratch + bound(m);
  uint8_t* wp = wend;
  const Sym* tab = sym;
  // Renormalize (emit the low 16 bits when the state would overflow), then encode: branch-free.
#define WP_RANS_PUT(x, c)                                                       \
  do {                                                                          \
    const Sym& e_ = tab[c];                                                     \
    uint32_t r_ = (x) >= e_.x_max;                                              \
    store16(wp - 2, (x));                                                       \
    wp -= 2 * r_;                                                               \
    (x) >>= (r_ << 4);                                                          \
    uint32_t q_ = (uint32_t)(((uint64_t)(x) * e_.rcp_freq) >> 32) >> e_.rcp_shift; \
    (x) = (x) + e_.bias + q_ * e_.cmpl_freq;                                    \
  } while (0)
  size_t i = m;
  const size_t m4 = m & ~(size_t)3;
  while (i > m4) {
    --i;
    switch (i & 3) {
      case 0: WP_RANS_PUT(x0, s[i]); break;
      case 1: WP_RANS_PUT(x1, s[i]); break;
      case 2: WP_RANS_PUT(x2, s[i]); break;
      default: WP_RANS_PUT(x3, s[i]); break;
    }
  }
  while (i > 0) {
    i -= 4;
    WP_RANS_PUT(x3, s[i + 3]);
    WP_RANS_PUT(x2, s[i + 2]);
    WP_RANS_PUT(x1, s[i + 1]);
    WP_RANS_PUT(x0, s[i]);
  }
#undef WP_RANS_PUT
  store32(out, x0);
  store32(out + 4, x1);
  store32(out + 8, x2);
  store32(out + 12, x3);
  const size_t words = (size_t)(wend - wp);
  std::memcpy(out + 16, wp, words);
  return 16 + words;
}

RansDecoder::RansDecoder(const uint32_t* freq, int alphabet, int pb) : prob_bits(pb) {
  const uint32_t M = 1u << pb;
  slot.assign(M, 0);
  sym.assign(M, 0);
  uint32_t cum = 0;
  for (int s = 0; s < alphabet; ++s) {
    const uint32_t f = freq[s];
    if (f > M - cum) throw Error(Code::Format, "rANS frequencies sum to more than 2^P");
    for (uint32_t k = 0; k < f; ++k) {
      slot[cum + k] = (f << 16) | k;
      sym[cum + k] = (uint8_t)s;
    }
    cum += f;
  }
  if (cum != M) throw Error(Code::Format, "rANS frequencies do not sum to 2^P");
}

void RansDecoder::decode_chunk(const uint8_t* p, size_t size, uint8_t* out, size_t m) const {
  if (size < 16) throw Error(Code::Format, "rANS chunk is shorter than its 16-byte state header");
  uint32_t x[4];
  for (int j = 0; j < 4; ++j) {
    x[j] = load32(p + 4 * j);
    if (x[j] < kRansL || x[j] >= (1u << 31)) throw Error(Code::Format, "rANS chunk has a state out of range");
  }
  uint32_t x0 = x[0], x1 = x[1], x2 = x[2], x3 = x[3];
  const uint8_t* q = p + 16;
  const uint8_t* const end = p + size;
  const uint32_t mask = (1u << prob_bits) - 1;
  const int P = prob_bits;
  const uint32_t* tab = slot.data();
  const uint8_t* sy = sym.data();
  size_t i = 0;
#define WP_RANS_STEP(x, o)                       \
  do {                                           \
    uint32_t sl_ = (x) & mask;                   \
    (o) = sy[sl_];                               \
    uint32_t v_ = tab[sl_];                      \
    (x) = (v_ >> 16) * ((x) >> P) + (v_ & 0xffff); \
  } while (0)
  // Arithmetic rather than a conditional: compilers turn the conditional into an unpredictable branch.
#define WP_RANS_RENORM(x)                          \
  do {                                             \
    const uint32_t w_ = load16(q);                 \
    const uint32_t r_ = (x) < kRansL;              \
    (x) = ((x) << (r_ << 4)) | (w_ & (0u - r_));   \
    q += 2 * r_;                                   \
  } while (0)
  // Fast loop: 4 symbols read at most 4 words (8 bytes).
  while (i + 4 <= m && (size_t)(end - q) >= 8) {
    size_t it = std::min((m - i) / 4, (size_t)(end - q) / 8);
    for (; it > 0; --it, i += 4) {
      WP_RANS_STEP(x0, out[i]);
      WP_RANS_STEP(x1, out[i + 1]);
      WP_RANS_STEP(x2, out[i + 2]);
      WP_RANS_STEP(x3, out[i + 3]);
      WP_RANS_RENORM(x0);
      WP_RANS_RENORM(x1);
      WP_RANS_RENORM(x2);
      WP_RANS_RENORM(x3);
    }
  }
#undef WP_RANS_RENORM
  x[0] = x0, x[1] = x1, x[2] = x2, x[3] = x3;
  for (; i < m; ++i) {
    uint32_t& xs = x[i & 3];
    WP_RANS_STEP(xs, out[i]);
    if (xs < kRansL) {
      if (end - q < 2) throw Error(Code::Format, "rANS chunk ends before its symbols do");
      xs = (xs << 16) | load16(q);
      q += 2;
    }
  }
#undef WP_RANS_STEP
  if (q != end) throw Error(Code::Format, "rANS chunk has " + std::to_string(end - q) + " bytes left after its last symbol");
  if (x[0] != kRansL || x[1] != kRansL || x[2] != kRansL || x[3] != kRansL)
    throw Error(Code::Format, "rANS chunk does not end in the initial state (corrupt data)");
}

}  // namespace entropy_detail
}  // namespace wp
