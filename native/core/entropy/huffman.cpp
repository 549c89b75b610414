// The entropy-coded blob (layout, checksums, histogram, entry points) and the canonical Huffman coder.
//
// Huffman: code lengths by package-merge (optimal under the length cap), canonical codes as in DEFLATE, bits
// packed LSB first (each code bit-reversed), 4 streams per chunk (quarters of the chunk). Encoding: a first
// pass counts every stream's symbols (SIMD for small alphabets), which gives the code and every stream's
// exact size, so chunks are coded straight into the blob in parallel; a 64-bit bit buffer, two symbols per
// lookup for alphabets up to 32, one unaligned 8-byte store per flush. Decoding: a 2^12-entry table that
// yields up to 3 symbols per lookup, 4 streams interleaved, a branch-free 64-bit bit reader (Giesen's
// "variant 4" refill), bounds checked once per batch of lookups; codes longer than 12 bits fall back to a full
// table. docs/ENTROPY.md describes the bytes.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

#include "entropy.h"
#include "le.h"

#if defined(__linux__)
#include <sys/mman.h>
#endif

#if defined(__GNUC__)
#define WP_LIKELY(x) __builtin_expect(!!(x), 1)
#else
#define WP_LIKELY(x) (x)
#endif

namespace wp {

using namespace entropy_detail;

namespace {


inline uint64_t rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

// ---------------------------------------------------------------------------------------------------------
// Layout constants (docs/ENTROPY.md).

constexpr uint8_t kMagic[4] = {'W', 'P', 'E', 'C'};
constexpr uint8_t kVersion = 1;
constexpr size_t kHeaderBytes = 48;
constexpr uint32_t kMaxChunk = 1u << 28;
constexpr int kTB = 12;  // Huffman decode table bits (multi-symbol table: up to 3 symbols per lookup)
constexpr size_t kHistBlock = size_t(1) << 20;

inline uint64_t round8(uint64_t x) { return (x + 7) & ~uint64_t(7); }

struct Parsed {
  Coder coder = Coder::Huffman;
  int param = 0;
  int alphabet = 0;
  uint64_t n = 0;
  uint32_t chunk = 0;
  uint64_t nchunks = 0;
  uint64_t code_bits = 0;
  double entropy = 0;
  std::vector<uint32_t> table;
  const uint8_t* offsets = nullptr;    // nchunks u64 end offsets
  const uint8_t* checksums = nullptr;  // nchunks u32
  uint64_t payload_base = 0;
  uint64_t payload_size = 0;
};

std::string num(uint64_t v) { return std::to_string(v); }

// Validates everything but the payloads. Throws Code::Format.
Parsed parse_blob(const uint8_t* b, size_t size) {
  auto fail = [](const std::string& m) -> Error { return Error(Code::Format, "entropy blob: " + m); };
  if (b == nullptr && size != 0) throw fail("null data");
  if (size < kHeaderBytes) throw fail(num(size) + " bytes, shorter than the " + num(kHeaderBytes) + "-byte header");
  if (std::memcmp(b, kMagic, 4) != 0) throw fail("bad magic (not a weightpress entropy blob)");
  Parsed p;
  if (b[8] != kVersion) throw fail("unsupported version " + num(b[8]));
  if (b[9] > 1) throw fail("unknown coder " + num(b[9]));
  p.coder = (Coder)b[9];
  if (b[10] != kStreams) throw fail(num(b[10]) + " streams per chunk, expected " + num(kStreams));
  p.param = b[11];
  const uint32_t A = load32(b + 12);
  if (A < 1 || A > 256) throw fail("alphabet size " + num(A) + " is not in 1..256");
  p.alphabet = (int)A;
  p.n = load64(b + 16);
  p.chunk = load32(b + 24);
  if (p.chunk < 1 || p.chunk > kMaxChunk) throw fail("chunk size " + num(p.chunk) + " is not in 1..2^28");
  if (load32(b + 28) != 0) throw fail("reserved field is not zero");
  p.code_bits = load64(b + 32);
  std::memcpy(&p.entropy, b + 40, 8);
  if (p.coder == Coder::Huffman) {
    if (p.param < 1 || p.param > 16) throw fail("Huffman length cap " + num(p.param) + " is not in 1..16");
  } else {
    if (p.param < 8 || p.param > 15) throw fail("rANS precision " + num(p.param) + " is not in 8..15 bits");
  }
  p.nchunks = p.n == 0 ? 0 : (p.n - 1) / p.chunk + 1;
  const uint64_t tbytes = (uint64_t)A * (p.coder == Coder::Huffman ? 1 : 2);
  const uint64_t meta = kHeaderBytes + round8(tbytes);
  if (p.nchunks > (uint64_t)size / 12) throw fail("truncated: " + num(p.nchunks) + " chunks cannot fit in " + num(size) + " bytes");
  p.payload_base = round8(meta + 12 * p.nchunks);
  if (p.payload_base > size) throw fail("truncated: " + num(size) + " bytes, the tables alone need " + num(p.payload_base));
  p.payload_size = size - p.payload_base;
  const uint32_t sum = (uint32_t)(xxh64(b + 8, p.payload_base - 8, 0) & 0xffffffffu);
  if (sum != load32(b + 4)) throw fail("header checksum mismatch (corrupt header, table or chunk table)");
  for (uint64_t i = kHeaderBytes + tbytes; i < meta; ++i)
    if (b[i]) throw fail("nonzero padding after the code table");
  for (uint64_t i = meta + 12 * p.nchunks; i < p.payload_base; ++i)
    if (b[i]) throw fail("nonzero padding after the chunk table");
  if (!std::isfinite(p.entropy) || p.entropy < 0 || p.entropy > 8.000001) throw fail("entropy field out of range");
  // The code table.
  p.table.resize(A);
  const uint8_t* t = b + kHeaderBytes;
  int used = 0;
  if (p.coder == Coder::Huffman) {
    uint64_t kraft = 0;  // in units of 2^-16
    for (uint32_t s = 0; s < A; ++s) {
      uint32_t l = t[s];
      p.table[s] = l;
      if (!l) continue;
      if ((int)l > p.param) throw fail("code length " + num(l) + " of symbol " + num(s) + " exceeds the cap " + num(p.param));
      ++used;
      kraft += uint64_t(1) << (16 - l);
    }
    if (p.n == 0) {
      if (used) throw fail("code table of an empty blob is not empty");
    } else if (used == 0) {
      throw fail("empty code table");
    } else if (used == 1) {
      if (kraft != (1u << 15)) throw fail("a single-symbol code must have length 1");
    } else if (kraft != (1u << 16)) {
      throw fail(kraft > (1u << 16) ? "code lengths violate the Kraft inequality (not a prefix code)" : "code lengths do not form a complete prefix code");
    }
  } else {
    uint64_t fsum = 0;
    for (uint32_t s = 0; s < A; ++s) {
      uint32_t f = (uint32_t)t[2 * s] | ((uint32_t)t[2 * s + 1] << 8);
      p.table[s] = f;
      fsum += f;
      used += f != 0;
    }
    if (p.n == 0) {
      if (used) throw fail("frequency table of an empty blob is not empty");
    } else if (fsum != (uint64_t(1) << p.param)) {
      throw fail("rANS frequencies sum to " + num(fsum) + ", not 2^" + num(p.param));
    }
  }
  // The chunk table.
  p.offsets = b + meta;
  p.checksums = b + meta + 8 * p.nchunks;
  const uint64_t min_chunk = p.coder == Coder::Huffman ? 12 : 16;
  uint64_t prev = 0;
  for (uint64_t i = 0; i < p.nchunks; ++i) {
    uint64_t e = load64(p.offsets + 8 * i);
    if (e > p.payload_size) throw fail("chunk " + num(i) + " ends at " + num(e) + ", past the payload (" + num(p.payload_size) + " bytes)");
    if (e < prev || e - prev < min_chunk) throw fail("chunk offsets are not increasing (chunk " + num(i) + ")");
    prev = e;
  }
  if (prev != p.payload_size) throw fail("the payload has " + num(p.payload_size - prev) + " bytes after the last chunk");
  // The informational code-bit count must agree with the payload size.
  if (p.coder == Coder::Rans) {
    if (p.code_bits != 8 * p.payload_size) throw fail("code bit count does not match the payload size");
  } else {
    const uint64_t stream_bits = 8 * (p.payload_size - 12 * p.nchunks);
    if (p.code_bits > stream_bits || p.code_bits + 7 * kStreams * p.nchunks < stream_bits || p.code_bits > 16 * p.n)
      throw fail("code bit count does not match the payload size");
  }
  return p;
}

// ---------------------------------------------------------------------------------------------------------
// Histogram.

void count_block(const uint8_t* p, size_t n, uint64_t* h) {
  uint32_t c[4][256];
  std::memset(c, 0, sizeof(c));
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const uint64_t w = load64(p + i);
    ++c[0][w & 255];
    ++c[1][(w >> 8) & 255];
    ++c[2][(w >> 16) & 255];
    ++c[3][(w >> 24) & 255];
    ++c[0][(w >> 32) & 255];
    ++c[1][(w >> 40) & 255];
    ++c[2][(w >> 48) & 255];
    ++c[3][w >> 56];
  }
  for (; i < n; ++i) ++c[0][p[i]];
  for (int s = 0; s < 256; ++s) h[s] = (uint64_t)c[0][s] + c[1][s] + c[2][s] + c[3][s];
}

#if defined(__SSE2__)
// Histogram of bytes below 16 with SSE2: byte counters by compare-and-subtract over 4 KiB sub-blocks (two
// passes from L1, 8 counters each, so that nothing spills), summed with psadbw. About 2-3 times the scalar
// speed. Returns false, leaving h unspecified, when a byte is 16 or more.
bool count_block_small(const uint8_t* p, size_t n, uint64_t* h) {
  uint64_t tot[16] = {0};
  const __m128i zero = _mm_setzero_si128();
  __m128i mx = zero;
  size_t i = 0;
  auto add = [&](int j, __m128i a) {
    const __m128i sad = _mm_sad_epu8(a, zero);
    tot[j] += (uint64_t)_mm_cvtsi128_si32(sad) + (uint64_t)_mm_cvtsi128_si32(_mm_srli_si128(sad, 8));
  };
  while (n - i >= 16) {
    const size_t iters = std::min<size_t>((n - i) / 16, 255);
    const uint8_t* q = p + i;
    {
      __m128i a0 = zero, a1 = zero, a2 = zero, a3 = zero, a4 = zero, a5 = zero, a6 = zero, a7 = zero;
      for (size_t k = 0; k < iters; ++k) {
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q + 16 * k));
#define WP_CNT(j) a##j = _mm_sub_epi8(a##j, _mm_cmpeq_epi8(v, _mm_set1_epi8(j)))
        WP_CNT(0); WP_CNT(1); WP_CNT(2); WP_CNT(3); WP_CNT(4); WP_CNT(5); WP_CNT(6); WP_CNT(7);
#undef WP_CNT
      }
      add(0, a0), add(1, a1), add(2, a2), add(3, a3), add(4, a4), add(5, a5), add(6, a6), add(7, a7);
    }
    {
      __m128i a0 = zero, a1 = zero, a2 = zero, a3 = zero, a4 = zero, a5 = zero, a6 = zero;
      for (size_t k = 0; k < iters; ++k) {
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q + 16 * k));
        mx = _mm_max_epu8(mx, v);
#define WP_CNT(j) a##j = _mm_sub_epi8(a##j, _mm_cmpeq_epi8(v, _mm_set1_epi8(8 + j)))
        WP_CNT(0); WP_CNT(1); WP_CNT(2); WP_CNT(3); WP_CNT(4); WP_CNT(5); WP_CNT(6);
#undef WP_CNT
      }
      add(8, a0), add(9, a1), add(10, a2), add(11, a3), add(12, a4), add(13, a5), add(14, a6);
    }
    i += 16 * iters;
  }
  uint8_t m[16];
  _mm_storeu_si128(reinterpret_cast<__m128i*>(m), mx);
  uint8_t big = 0;
  for (int j = 0; j < 16; ++j) big = std::max(big, m[j]);
  uint64_t vec = i, rest[16] = {0};
  for (; i < n; ++i) {
    big = std::max(big, p[i]);
    if (p[i] < 16) ++rest[p[i]];
  }
  if (big >= 16) return false;
  uint64_t sum = 0;
  for (int j = 0; j < 15; ++j) sum += tot[j];
  tot[15] = vec - sum;
  for (int j = 0; j < 256; ++j) h[j] = j < 16 ? tot[j] + rest[j] : 0;
  return true;
}
#endif

#if defined(__x86_64__) && defined(__GNUC__)
#define WP_HAVE_AVX2_HIST 1
// The same with AVX2 (32 bytes per compare), chosen at run time when the CPU has it.
__attribute__((target("avx2"))) bool count_block_small_avx2(const uint8_t* p, size_t n, uint64_t* h) {
  uint64_t tot[16] = {0};
  const __m256i zero = _mm256_setzero_si256();
  __m256i mx = zero;
  size_t i = 0;
  auto add = [&](int j, __m256i a) __attribute__((target("avx2"))) {
    const __m256i sad = _mm256_sad_epu8(a, zero);
    tot[j] += (uint64_t)_mm256_extract_epi64(sad, 0) + (uint64_t)_mm256_extract_epi64(sad, 1) +
              (uint64_t)_mm256_extract_epi64(sad, 2) + (uint64_t)_mm256_extract_epi64(sad, 3);
  };
  while (n - i >= 32) {
    const size_t iters = std::min<size_t>((n - i) / 32, 255);
    const uint8_t* q = p + i;
    {
      __m256i a0 = zero, a1 = zero, a2 = zero, a3 = zero, a4 = zero, a5 = zero, a6 = zero, a7 = zero;
      for (size_t k = 0; k < iters; ++k) {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 32 * k));
#define WP_CNT(j) a##j = _mm256_sub_epi8(a##j, _mm256_cmpeq_epi8(v, _mm256_set1_epi8(j)))
        WP_CNT(0); WP_CNT(1); WP_CNT(2); WP_CNT(3); WP_CNT(4); WP_CNT(5); WP_CNT(6); WP_CNT(7);
#undef WP_CNT
      }
      add(0, a0), add(1, a1), add(2, a2), add(3, a3), add(4, a4), add(5, a5), add(6, a6), add(7, a7);
    }
    {
      __m256i a0 = zero, a1 = zero, a2 = zero, a3 = zero, a4 = zero, a5 = zero, a6 = zero;
      for (size_t k = 0; k < iters; ++k) {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 32 * k));
        mx = _mm256_max_epu8(mx, v);
#define WP_CNT(j) a##j = _mm256_sub_epi8(a##j, _mm256_cmpeq_epi8(v, _mm256_set1_epi8(8 + j)))
        WP_CNT(0); WP_CNT(1); WP_CNT(2); WP_CNT(3); WP_CNT(4); WP_CNT(5); WP_CNT(6);
#undef WP_CNT
      }
      add(8, a0), add(9, a1), add(10, a2), add(11, a3), add(12, a4), add(13, a5), add(14, a6);
    }
    i += 32 * iters;
  }
  uint8_t m[32];
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(m), mx);
  uint8_t big = 0;
  for (int j = 0; j < 32; ++j) big = std::max(big, m[j]);
  uint64_t vec = i, rest[16] = {0};
  for (; i < n; ++i) {
    big = std::max(big, p[i]);
    if (p[i] < 16) ++rest[p[i]];
  }
  if (big >= 16) return false;
  uint64_t sum = 0;
  for (int j = 0; j < 15; ++j) sum += tot[j];
  tot[15] = vec - sum;
  for (int j = 0; j < 256; ++j) h[j] = j < 16 ? tot[j] + rest[j] : 0;
  return true;
}
bool cpu_has_avx2() {
  static const bool yes = __builtin_cpu_supports("avx2");
  return yes;
}
#endif

// Counts all 256 byte values of p[0, n) into h (a small alphabet may take a SIMD path).
void count_any(const uint8_t* p, size_t n, int alphabet, uint64_t* h) {
#if defined(WP_HAVE_AVX2_HIST)
  if (alphabet <= 16 && cpu_has_avx2()) {
    if (count_block_small_avx2(p, n, h)) return;
  } else
#endif
#if defined(__SSE2__)
  if (alphabet <= 16 && count_block_small(p, n, h)) return;
#endif
  count_block(p, n, h);
}

// Histogram of sym[0, n): all 256 byte values counted.
void histogram(const uint8_t* sym, size_t n, int alphabet, const Context& ctx, uint64_t* hist) {
  std::fill(hist, hist + 256, 0);
  const size_t nb = (n + kHistBlock - 1) / kHistBlock;
  std::vector<uint64_t> part(nb * 256);
  parallel_for(ctx, nb, [&](size_t b) {
    const size_t lo = b * kHistBlock, hi = std::min(n, lo + kHistBlock);
    count_any(sym + lo, hi - lo, alphabet, &part[b * 256]);
  });
  for (size_t b = 0; b < nb; ++b)
    for (int s = 0; s < 256; ++s) hist[s] += part[b * 256 + s];
}

// ---------------------------------------------------------------------------------------------------------
// Huffman encoder.

struct HuffEnc {
  uint64_t code[256];  // bit-reversed canonical code (LSB = first bit)
  uint8_t len[256];
  int lmax = 0;
  int single = -1;     // the degenerate code's symbol
  // Alphabets of up to 32 symbols: codes of symbol pairs, indexed by the two bytes read as a little-endian
  // u16 (s0 | s1 << 8, below 32 * 256).
  std::vector<uint32_t> pair_code;
  std::vector<uint8_t> pair_len;
};

HuffEnc make_encoder(const uint32_t* lengths, int A) {
  HuffEnc e;
  std::memset(e.code, 0, sizeof(e.code));
  std::memset(e.len, 0, sizeof(e.len));
  uint32_t bl_count[17] = {0}, next[17] = {0};
  int used = 0, last = -1;
  for (int s = 0; s < A; ++s) {
    if (!lengths[s]) continue;
    ++bl_count[lengths[s]];
    ++used;
    last = s;
    e.lmax = std::max(e.lmax, (int)lengths[s]);
  }
  if (used == 1) {
    e.single = last;
    return e;
  }
  uint32_t c = 0;
  for (int l = 1; l <= 16; ++l) {
    c = (c + bl_count[l - 1]) << 1;
    next[l] = c;
  }
  for (int s = 0; s < A; ++s) {
    const uint32_t l = lengths[s];
    if (!l) continue;
    uint32_t v = next[l]++, r = 0;
    for (uint32_t k = 0; k < l; ++k) r |= ((v >> k) & 1u) << (l - 1 - k);
    e.code[s] = r;
    e.len[s] = (uint8_t)l;
  }
  if (A <= 32) {
    e.pair_code.assign((size_t)A << 8, 0);
    e.pair_len.assign((size_t)A << 8, 0);
    for (int a = 0; a < A; ++a)
      for (int b = 0; b < A; ++b) {
        const size_t w = (size_t)a | ((size_t)b << 8);
        e.pair_code[w] = (uint32_t)(e.code[a] | (e.code[b] << e.len[a]));
        e.pair_len[w] = (uint8_t)(e.len[a] + e.len[b]);
      }
  }
  return e;
}

// A bit writer: codes go in LSB first; flushed with one unaligned 8-byte store (so it writes up to 8 bytes
// past its end).
struct BitW {
  uint64_t buf;
  unsigned cnt;
  uint8_t* p;
};

inline void put1(const HuffEnc& e, BitW& w, uint8_t c) {
  w.buf |= e.code[c] << w.cnt;
  w.cnt += e.len[c];
  store64(w.p, w.buf);
  w.p += w.cnt >> 3;
  w.buf >>= (w.cnt & 56);
  w.cnt &= 7;
}

// Writes the codes of s[0, m) into w: `groups` groups of K symbols (PAIR: K pairs, each looked up as one)
// with one flush per group (K * bits per lookup <= 56), then the rest one by one.
template <bool PAIR, int K>
void put_stream(const HuffEnc& e, const uint8_t* s, size_t m, BitW& w) {
  const uint32_t* pc = e.pair_code.data();
  const uint8_t* pl = e.pair_len.data();
  const uint64_t* code = e.code;
  const uint8_t* len = e.len;
  uint64_t buf = w.buf;
  unsigned cnt = w.cnt;
  uint8_t* p = w.p;
  constexpr size_t STEP = PAIR ? 2 * K : K;
  size_t i = 0;
  for (; i + STEP <= m; i += STEP) {
    for (int j = 0; j < K; ++j) {
      if (PAIR) {
        const uint32_t x = (uint32_t)s[i + 2 * j] | ((uint32_t)s[i + 2 * j + 1] << 8);
        buf |= (uint64_t)pc[x] << cnt;
        cnt += pl[x];
      } else {
        buf |= code[s[i + j]] << cnt;
        cnt += len[s[i + j]];
      }
    }
    store64(p, buf);
    p += cnt >> 3;
    buf >>= (cnt & 56);
    cnt &= 7;
  }
  w.buf = buf, w.cnt = cnt, w.p = p;
  for (; i < m; ++i) put1(e, w, s[i]);
}

size_t huff_bound(size_t m, int lmax) { return 12 + (m * (size_t)lmax + 7) / 8 + kStreams + 16; }

// Encodes the 4 streams of one chunk of m symbols one after another from dst; bytes[k] = stream k's size.
// Writes up to 8 bytes past the last stream (zeros, see put_stream). The degenerate code writes nothing.
void encode_huff_streams(const HuffEnc& e, const uint8_t* s, size_t m, uint8_t* dst, size_t* bytes) {
  if (e.single >= 0) {
    for (int k = 0; k < kStreams; ++k) bytes[k] = 0;
    return;
  }
  const int lmax = std::max(1, e.lmax);
  const bool pair = !e.pair_code.empty();
  const int K = pair ? std::max(1, std::min(4, 28 / lmax)) : std::max(1, std::min(8, 56 / lmax));
  uint8_t* p = dst;
  for (int k = 0; k < kStreams; ++k) {
    const size_t b = m * k / kStreams, en = m * (k + 1) / kStreams;
    BitW w{0, 0, p};
    if (pair) {
      switch (K) {
        case 1: put_stream<true, 1>(e, s + b, en - b, w); break;
        case 2: put_stream<true, 2>(e, s + b, en - b, w); break;
        case 3: put_stream<true, 3>(e, s + b, en - b, w); break;
        default: put_stream<true, 4>(e, s + b, en - b, w); break;
      }
    } else {
      switch (K) {
        case 1: put_stream<false, 1>(e, s + b, en - b, w); break;
        case 2: put_stream<false, 2>(e, s + b, en - b, w); break;
        case 3: put_stream<false, 3>(e, s + b, en - b, w); break;
        case 4: put_stream<false, 4>(e, s + b, en - b, w); break;
        case 5: put_stream<false, 5>(e, s + b, en - b, w); break;
        case 6: put_stream<false, 6>(e, s + b, en - b, w); break;
        case 7: put_stream<false, 7>(e, s + b, en - b, w); break;
        default: put_stream<false, 8>(e, s + b, en - b, w); break;
      }
    }
    store64(w.p, w.buf);
    bytes[k] = (size_t)(w.p - p) + ((w.cnt + 7) >> 3);
    p += bytes[k];
  }
}

// The 12-byte chunk header: the sizes of streams 0..2.
void huff_header(uint8_t* out, const size_t* bytes) {
  for (int k = 0; k < kStreams - 1; ++k) store32(out + 4 * k, (uint32_t)bytes[k]);
}

// ---------------------------------------------------------------------------------------------------------
// Huffman decoder.

struct HuffDec {
  int lmax = 0;
  int single_sym = -1;
  std::vector<uint16_t> single;  // 2^lmax entries: symbol | length << 8
  std::vector<uint32_t> multi;   // 2^kTB entries: sym0 | sym1 << 8 | sym2 << 16 | bits << 24 | count << 28
};

HuffDec make_decoder(const std::vector<uint32_t>& lengths) {
  HuffDec d;
  const int A = (int)lengths.size();
  HuffEnc e = make_encoder(lengths.data(), A);
  d.lmax = e.lmax;
  if (e.single >= 0) {
    d.single_sym = e.single;
    return d;
  }
  const uint32_t size = 1u << d.lmax;
  d.single.assign(size, 0);
  for (int s = 0; s < A; ++s) {
    const uint32_t l = e.len[s];
    if (!l) continue;
    for (uint32_t idx = (uint32_t)e.code[s]; idx < size; idx += 1u << l) d.single[idx] = (uint16_t)(s | (l << 8));
  }
  const uint32_t lmask = size - 1;
  d.multi.assign(1u << kTB, 0);
  for (uint32_t idx = 0; idx < (1u << kTB); ++idx) {
    uint32_t used = 0, count = 0, syms = 0;
    while (count < 3) {
      const uint32_t v = d.single[(idx >> used) & lmask];
      const uint32_t l = v >> 8;
      if (used + l > (uint32_t)kTB) break;
      syms |= (v & 255u) << (8 * count);
      ++count;
      used += l;
    }
    d.multi[idx] = count ? (syms | (used << 24) | (count << 28)) : 0;
  }
  return d;
}

struct Reader {
  const uint8_t* base;
  size_t pos;    // byte offset (from base) of the next load
  size_t limit;  // readable bytes from base
  uint64_t buf;
  unsigned cnt;  // valid bits in buf
};

inline void refill_safe(Reader& r) {
  uint64_t v;
  if (r.limit >= 8 && r.pos <= r.limit - 8) {
    v = load64(r.base + r.pos);
  } else {
    uint8_t tmp[8] = {0};
    if (r.pos < r.limit) std::memcpy(tmp, r.base + r.pos, r.limit - r.pos);
    v = load64(tmp);
  }
  r.buf |= v << r.cnt;
  r.pos += (63 - r.cnt) >> 3;
  r.cnt |= 56;
}

// Decodes 4 streams; returns the code bits consumed. Throws Code::Format if a stream does not end exactly at
// its end (with zero padding). The fast loop runs batches of refills and table lookups with the 4 streams
// interleaved, each batch's bounds checked once up front (reads stay inside the chunk, 4-byte stores inside
// each stream's output); the ends are finished one symbol at a time with checked reads.
template <bool LONG>
uint64_t decode4(const HuffDec& d, Reader* rd, const size_t* len, uint8_t* const* ob, uint8_t* const* oe) {
  const uint32_t* T = d.multi.data();
  const uint16_t* S = d.single.data();
  const uint64_t MASK = (1u << kTB) - 1;
  const uint64_t LMASK = (uint64_t(1) << d.lmax) - 1;
  constexpr size_t LOOKUPS = LONG ? 3 : 56 / kTB;  // per refill (>= 56 bits): codes up to 16 bits if LONG, else <= kTB
  constexpr size_t PER = LOOKUPS * 3;                // symbols per batch at most
  constexpr size_t MARGIN = PER + 4;                 // output room a batch needs (4-byte stores)

  const uint8_t *B0 = rd[0].base, *B1 = rd[1].base, *B2 = rd[2].base, *B3 = rd[3].base;
  size_t P0 = 0, P1 = 0, P2 = 0, P3 = 0;
  uint64_t R0 = 0, R1 = 0, R2 = 0, R3 = 0;
  unsigned C0 = 0, C1 = 0, C2 = 0, C3 = 0;
  uint8_t *O0 = ob[0], *O1 = ob[1], *O2 = ob[2], *O3 = ob[3];
  uint8_t *const E0 = oe[0], *const E1 = oe[1], *const E2 = oe[2], *const E3 = oe[3];
  const size_t L0 = rd[0].limit, L1 = rd[1].limit, L2 = rd[2].limit, L3 = rd[3].limit;

  auto iters = [&](size_t P, size_t L, const uint8_t* O, const uint8_t* E) -> size_t {
    if (L < 8 || P > L - 8) return 0;
    const size_t room = (size_t)(E - O);
    if (room < MARGIN) return 0;
    return std::min((L - 8 - P) / 7 + 1, (room - MARGIN) / PER + 1);
  };
#define WP_REFILL(k)                              \
  do {                                            \
    R##k |= load64(B##k + P##k) << C##k;          \
    P##k += (63 - C##k) >> 3;                     \
    C##k |= 56;                                   \
  } while (0)
#define WP_STEP(k)                                      \
  do {                                                  \
    const uint32_t e_ = T[R##k & MASK];                 \
    unsigned nb_;                                       \
    if (!LONG || WP_LIKELY(e_ >> 28)) {                 \
      store32(O##k, e_);                                \
      O##k += e_ >> 28;                                 \
      nb_ = (e_ >> 24) & 15;                            \
    } else {                                            \
      const uint32_t s_ = S[R##k & LMASK];              \
      *O##k++ = (uint8_t)s_;                            \
      nb_ = s_ >> 8;                                    \
    }                                                   \
    R##k >>= nb_;                                       \
    C##k -= nb_;                                        \
  } while (0)
  for (;;) {
    size_t it = iters(P0, L0, O0, E0);
    it = std::min(it, iters(P1, L1, O1, E1));
    it = std::min(it, iters(P2, L2, O2, E2));
    it = std::min(it, iters(P3, L3, O3, E3));
    if (it == 0) break;
    for (; it > 0; --it) {
      WP_REFILL(0);
      WP_REFILL(1);
      WP_REFILL(2);
      WP_REFILL(3);
      for (size_t j = 0; j < LOOKUPS; ++j) {
        WP_STEP(0);
        WP_STEP(1);
        WP_STEP(2);
        WP_STEP(3);
      }
    }
  }
#undef WP_STEP
#undef WP_REFILL
  rd[0].pos = P0, rd[1].pos = P1, rd[2].pos = P2, rd[3].pos = P3;
  rd[0].buf = R0, rd[1].buf = R1, rd[2].buf = R2, rd[3].buf = R3;
  rd[0].cnt = C0, rd[1].cnt = C1, rd[2].cnt = C2, rd[3].cnt = C3;
  uint8_t* O[4] = {O0, O1, O2, O3};
  uint64_t bits = 0;
  for (int k = 0; k < kStreams; ++k) {
    Reader& r = rd[k];
    uint8_t* o = O[k];
    uint8_t* const e = oe[k];
    while (o < e) {
      refill_safe(r);
      for (int j = 0; j < 3 && o < e; ++j) {
        const uint32_t v = S[r.buf & LMASK];
        *o++ = (uint8_t)v;
        r.buf >>= (v >> 8);
        r.cnt -= (v >> 8);
      }
    }
    refill_safe(r);
    const uint64_t used = (uint64_t)r.pos * 8 - r.cnt;
    if (used > (uint64_t)len[k] * 8 || (used + 7) / 8 != len[k])
      throw Error(Code::Format, "entropy blob: a Huffman stream does not end at its end (corrupt data)");
    const unsigned pad = (unsigned)(len[k] * 8 - used);
    if (pad && (r.buf & ((uint64_t(1) << pad) - 1))) throw Error(Code::Format, "entropy blob: nonzero padding bits in a Huffman stream");
    bits += used;
  }
  return bits;
}

uint64_t decode_huff_chunk(const HuffDec& d, const uint8_t* c, size_t size, uint8_t* out, size_t m) {
  if (size < 12) throw Error(Code::Format, "entropy blob: Huffman chunk shorter than its 12-byte header");
  size_t len[kStreams];
  uint64_t sum = 0;
  for (int k = 0; k < kStreams - 1; ++k) {
    len[k] = load32(c + 4 * k);
    sum += len[k];
  }
  if (sum > size - 12) throw Error(Code::Format, "entropy blob: Huffman stream sizes exceed the chunk");
  len[kStreams - 1] = (size_t)(size - 12 - sum);
  if (d.single_sym >= 0) {
    if (size != 12 || sum != 0) throw Error(Code::Format, "entropy blob: a single-symbol chunk must have empty streams");
    std::memset(out, d.single_sym, m);
    return 0;
  }
  Reader rd[kStreams];
  uint8_t* ob[kStreams];
  uint8_t* oe[kStreams];
  const uint8_t* base = c + 12;
  const uint8_t* end = c + size;
  for (int k = 0; k < kStreams; ++k) {
    rd[k] = Reader{base, 0, (size_t)(end - base), 0, 0};
    base += len[k];
    ob[k] = out + m * k / kStreams;
    oe[k] = out + m * (k + 1) / kStreams;
  }
  return d.lmax > kTB ? decode4<true>(d, rd, len, ob, oe) : decode4<false>(d, rd, len, ob, oe);
}

// ---------------------------------------------------------------------------------------------------------
// Thread-local scratch for chunk encoding.

std::vector<uint8_t>& scratch(int which) {
  static thread_local std::vector<uint8_t> s[2];
  return s[which];
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------
// Public helpers.

namespace {
constexpr size_t kBigBlob = size_t(4) << 20;
constexpr size_t kHuge = size_t(2) << 20;
}  // namespace

void* blob_alloc(size_t bytes) {
#if defined(__linux__)
  if (bytes >= kBigBlob) {
    // Map 2 MiB more than needed, keep a 2 MiB-aligned window (so that whole huge pages fit), unmap the rest.
    const size_t len = (bytes + kHuge - 1) & ~(kHuge - 1);
    void* raw = mmap(nullptr, len + kHuge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) throw std::bad_alloc();
    const uintptr_t r = reinterpret_cast<uintptr_t>(raw);
    const uintptr_t a = (r + kHuge - 1) & ~(uintptr_t)(kHuge - 1);
    if (a > r) munmap(raw, a - r);
    if (a + len < r + len + kHuge) munmap(reinterpret_cast<void*>(a + len), r + len + kHuge - (a + len));
    madvise(reinterpret_cast<void*>(a), len, MADV_HUGEPAGE);  // advice only: failure is fine
    return reinterpret_cast<void*>(a);
  }
#endif
  return ::operator new(bytes);
}

void blob_free(void* p, size_t bytes) noexcept {
  if (!p) return;
#if defined(__linux__)
  if (bytes >= kBigBlob) {
    munmap(p, (bytes + kHuge - 1) & ~(kHuge - 1));
    return;
  }
#endif
  ::operator delete(p);
}

uint64_t xxh64(const void* data, size_t len, uint64_t seed) {
  constexpr uint64_t P1 = 0x9E3779B185EBCA87ull, P2 = 0xC2B2AE3D27D4EB4Full, P3 = 0x165667B19E3779F9ull,
                     P4 = 0x85EBCA77C2B2AE63ull, P5 = 0x27D4EB2F165667C5ull;
  auto round = [](uint64_t acc, uint64_t in) { return rotl64(acc + in * P2, 31) * P1; };
  auto merge = [&](uint64_t acc, uint64_t v) { return (acc ^ round(0, v)) * P1 + P4; };
  const uint8_t* p = static_cast<const uint8_t*>(data);
  const uint8_t* const end = p + len;
  uint64_t h;
  if (len >= 32) {
    uint64_t v1 = seed + P1 + P2, v2 = seed + P2, v3 = seed, v4 = seed - P1;
    const uint8_t* const limit = end - 32;
    do {
      v1 = round(v1, load64(p));
      v2 = round(v2, load64(p + 8));
      v3 = round(v3, load64(p + 16));
      v4 = round(v4, load64(p + 24));
      p += 32;
    } while (p <= limit);
    h = rotl64(v1, 1) + rotl64(v2, 7) + rotl64(v3, 12) + rotl64(v4, 18);
    h = merge(h, v1);
    h = merge(h, v2);
    h = merge(h, v3);
    h = merge(h, v4);
  } else {
    h = seed + P5;
  }
  h += (uint64_t)len;
  while (p + 8 <= end) {
    h ^= round(0, load64(p));
    h = rotl64(h, 27) * P1 + P4;
    p += 8;
  }
  if (p + 4 <= end) {
    h ^= (uint64_t)load32(p) * P1;
    h = rotl64(h, 23) * P2 + P3;
    p += 4;
  }
  while (p < end) {
    h ^= (uint64_t)(*p) * P5;
    h = rotl64(h, 11) * P1;
    ++p;
  }
  h ^= h >> 33;
  h *= P2;
  h ^= h >> 29;
  h *= P3;
  h ^= h >> 32;
  return h;
}

namespace {
// XXH64 (seed 0) of the concatenation a[0, na) b[0, nb), without copying b.
uint64_t xxh64_2(const uint8_t* a, size_t na, const uint8_t* b, size_t nb) {
  if (na + nb < 64 || na >= 32) {
    std::vector<uint8_t> tmp(a, a + na);
    tmp.insert(tmp.end(), b, b + nb);
    return xxh64(tmp.data(), tmp.size(), 0);
  }
  // XXH64's stripes are 32 bytes: hash the first stripe from a copy, then the rest of b in place by running
  // the same rounds (kept identical to xxh64 above).
  constexpr uint64_t P1 = 0x9E3779B185EBCA87ull, P2 = 0xC2B2AE3D27D4EB4Full, P3 = 0x165667B19E3779F9ull,
                     P4 = 0x85EBCA77C2B2AE63ull, P5 = 0x27D4EB2F165667C5ull;
  (void)P5;
  auto round = [](uint64_t acc, uint64_t in) { return rotl64(acc + in * P2, 31) * P1; };
  auto merge = [&](uint64_t acc, uint64_t v) { return (acc ^ round(0, v)) * P1 + P4; };
  uint8_t first[32];
  std::memcpy(first, a, na);
  std::memcpy(first + na, b, 32 - na);
  const size_t len = na + nb;
  uint64_t v1 = P1 + P2, v2 = P2, v3 = 0, v4 = 0 - P1;
  v1 = round(v1, load64(first));
  v2 = round(v2, load64(first + 8));
  v3 = round(v3, load64(first + 16));
  v4 = round(v4, load64(first + 24));
  const uint8_t* p = b + (32 - na);
  const uint8_t* const end = b + nb;
  while ((size_t)(end - p) >= 32) {
    v1 = round(v1, load64(p));
    v2 = round(v2, load64(p + 8));
    v3 = round(v3, load64(p + 16));
    v4 = round(v4, load64(p + 24));
    p += 32;
  }
  uint64_t h = rotl64(v1, 1) + rotl64(v2, 7) + rotl64(v3, 12) + rotl64(v4, 18);
  h = merge(h, v1);
  h = merge(h, v2);
  h = merge(h, v3);
  h = merge(h, v4);
  h += (uint64_t)len;
  while (p + 8 <= end) {
    h ^= round(0, load64(p));
    h = rotl64(h, 27) * P1 + P4;
    p += 8;
  }
  if (p + 4 <= end) {
    h ^= (uint64_t)load32(p) * P1;
    h = rotl64(h, 23) * P2 + P3;
    p += 4;
  }
  while (p < end) {
    h ^= (uint64_t)(*p) * P5;
    h = rotl64(h, 11) * P1;
    ++p;
  }
  h ^= h >> 33;
  h *= P2;
  h ^= h >> 29;
  h *= P3;
  h ^= h >> 32;
  return h;
}
}  // namespace

double histogram_entropy(const uint64_t* hist, int count) {
  double total = 0;
  for (int s = 0; s < count; ++s) total += (double)hist[s];
  if (total <= 0) return 0;
  double h = 0;
  for (int s = 0; s < count; ++s)
    if (hist[s]) {
      const double p = (double)hist[s] / total;
      h -= p * std::log2(p);
    }
  return h < 0 ? 0 : h;
}

std::vector<uint8_t> huffman_code_lengths(const uint64_t* hist, int A, int max_len) {
  if (A < 1 || A > 256) throw Error(Code::Argument, "alphabet must be from 1 to 256, got " + std::to_string(A));
  if (max_len < 1 || max_len > 16) throw Error(Code::Argument, "maxLen must be from 1 to 16, got " + std::to_string(max_len));
  std::vector<uint8_t> lengths(A, 0);
  std::vector<std::pair<uint64_t, int>> leaves;
  for (int s = 0; s < A; ++s)
    if (hist[s]) leaves.emplace_back(hist[s], s);
  const int n = (int)leaves.size();
  if (n == 0) return lengths;
  if (n == 1) {
    lengths[leaves[0].second] = 1;
    return lengths;
  }
  if ((1 << max_len) < n)
    throw Error(Code::Argument, "maxLen " + std::to_string(max_len) + " is too small for " + std::to_string(n) + " symbols");
  std::sort(leaves.begin(), leaves.end());
  // Package-merge (Larmore & Hirschberg): lists[d] holds the items of denomination 2^-(L-d), d = 0 the
  // deepest. An item is a leaf (a coin of one symbol) or a package of two items of the list below.
  const int L = std::min(max_len, n - 1);
  struct Item {
    uint64_t w;
    int32_t leaf;   // index into leaves, or -1
    int32_t child;  // package: first of its two items in the list below
  };
  std::vector<std::vector<Item>> lists(L);
  lists[0].reserve(n);
  for (int i = 0; i < n; ++i) lists[0].push_back(Item{leaves[i].first, i, -1});
  for (int d = 1; d < L; ++d) {
    const std::vector<Item>& prev = lists[d - 1];
    std::vector<Item>& cur = lists[d];
    cur.reserve(n + prev.size() / 2);
    size_t pk = 0, lf = 0;
    const size_t npk = prev.size() / 2;
    while (pk < npk || lf < (size_t)n) {
      const bool take_leaf = pk >= npk || (lf < (size_t)n && leaves[lf].first <= prev[2 * pk].w + prev[2 * pk + 1].w);
      if (take_leaf) {
        cur.push_back(Item{leaves[lf].first, (int32_t)lf, -1});
        ++lf;
      } else {
        cur.push_back(Item{prev[2 * pk].w + prev[2 * pk + 1].w, -1, (int32_t)(2 * pk)});
        ++pk;
      }
    }
  }
  const std::vector<Item>& top = lists[L - 1];
  const size_t take = 2 * (size_t)n - 2;
  if (top.size() < take) throw Error(Code::Internal, "package-merge: too few items");
  std::vector<std::pair<int, int32_t>> stack;
  for (size_t i = 0; i < take; ++i) stack.emplace_back(L - 1, (int32_t)i);
  while (!stack.empty()) {
    auto [d, idx] = stack.back();
    stack.pop_back();
    const Item& it = lists[d][idx];
    if (it.leaf >= 0) {
      ++lengths[leaves[it.leaf].second];
    } else {
      stack.emplace_back(d - 1, it.child);
      stack.emplace_back(d - 1, it.child + 1);
    }
  }
  return lengths;
}

// ---------------------------------------------------------------------------------------------------------
// Entry points.

Blob entropy_encode(const uint8_t* sym, size_t n, const EntropyParams& params, const Context& ctx,
                    EntropyStats* stats) {
  const int A = params.alphabet;
  if (A < 1 || A > 256) throw Error(Code::Argument, "alphabet must be from 1 to 256, got " + std::to_string(A));
  if (params.chunk < 1 || params.chunk > kMaxChunk) throw Error(Code::Argument, "chunk must be from 1 to 2^28 symbols, got " + std::to_string(params.chunk));
  if (params.coder != Coder::Huffman && params.coder != Coder::Rans) throw Error(Code::Argument, "unknown coder");
  if (params.coder == Coder::Huffman && (params.max_len < 1 || params.max_len > 16))
    throw Error(Code::Argument, "maxLen must be from 1 to 16, got " + std::to_string(params.max_len));
  if (params.coder == Coder::Rans && params.prob_bits != 0 && (params.prob_bits < 8 || params.prob_bits > 15))
    throw Error(Code::Argument, "probBits must be from 8 to 15 (or 0 for automatic), got " + std::to_string(params.prob_bits));
  if (n > 0 && sym == nullptr) throw Error(Code::Argument, "null symbols");

  const uint64_t nchunks = n == 0 ? 0 : (n - 1) / params.chunk + 1;
  // Huffman with chunks that are large next to the alphabet: count each stream's symbols (quarters of
  // chunks) instead of the whole input, so that every stream's exact size is known before coding and the
  // chunks can be coded straight into the blob (no per-chunk buffers, no copy).
  const bool exact = params.coder == Coder::Huffman && nchunks > 0 &&
                     (uint64_t)A * 16 * nchunks <= (uint64_t)n / 4 + (uint64_t(1) << 20);
  uint64_t hist[256];
  std::vector<uint32_t> qhist;  // exact: [chunk][stream][symbol < A]
  bool bad = false;
  if (exact) {
    qhist.resize(nchunks * kStreams * A);
    std::atomic<bool> any_bad{false};
    parallel_for(ctx, nchunks, [&](size_t c) {
      const size_t lo = c * (size_t)params.chunk, m = std::min<size_t>(params.chunk, n - lo);
      uint64_t h[256];
      for (int k = 0; k < kStreams; ++k) {
        const size_t b = m * k / kStreams, e = m * (k + 1) / kStreams;
        count_any(sym + lo + b, e - b, A, h);
        for (int x = A; x < 256; ++x)
          if (h[x]) any_bad = true;
        uint32_t* q = &qhist[(c * kStreams + k) * A];
        for (int x = 0; x < A; ++x) q[x] = (uint32_t)h[x];
      }
    });
    bad = any_bad;
    std::fill(hist, hist + 256, 0);
    if (!bad)
      for (size_t i = 0; i < qhist.size(); ++i) hist[i % A] += qhist[i];
  } else {
    histogram(sym, n, A, ctx, hist);
    for (int x = A; x < 256; ++x) bad = bad || hist[x] != 0;
  }
  if (bad) {
    size_t i = 0;
    while (i < n && sym[i] < A) ++i;
    throw Error(Code::Argument, "symbol " + std::to_string(sym[i]) + " at index " + std::to_string(i) +
                                    " is not below the alphabet size " + std::to_string(A));
  }
  const double H = histogram_entropy(hist, 256);

  // The code table.
  std::vector<uint32_t> table(A, 0);
  int param = 0;
  uint64_t code_bits = 0;
  if (params.coder == Coder::Huffman) {
    std::vector<uint8_t> l = huffman_code_lengths(hist, A, params.max_len);
    int used = 0;
    for (int x = 0; x < A; ++x) table[x] = l[x], used += l[x] != 0;
    if (used > 1)
      for (int x = 0; x < A; ++x) code_bits += hist[x] * l[x];
    param = params.max_len;
  } else {
    param = params.prob_bits ? params.prob_bits : rans_choose_bits(hist, A);
    table = rans_normalize(hist, A, param);
  }

  const uint64_t tbytes = (uint64_t)A * (params.coder == Coder::Huffman ? 1 : 2);
  const uint64_t meta = kHeaderBytes + round8(tbytes);
  const uint64_t base = round8(meta + 12 * nchunks);
  std::vector<uint64_t> ends(nchunks);
  std::vector<uint32_t> sums(nchunks);
  Blob blob;
  uint64_t total = 0;

  if (exact) {
    // Stream sizes from the counts, then every chunk coded in place. A stream's writer may store up to 7
    // bytes (zeros) past its end: into the next stream of its chunk, which is written later by the same
    // thread, or into the next chunk's 12-byte header, which is written only after all chunks are done.
    // So each chunk's checksum is taken over its header as it will be (from a local copy) and its streams.
    const HuffEnc enc = make_encoder(table.data(), A);
    std::vector<uint64_t> sbytes(nchunks * kStreams);
    for (uint64_t c = 0; c < nchunks; ++c) {
      for (int k = 0; k < kStreams; ++k) {
        uint64_t bits = 0;
        if (enc.single < 0) {
          const uint32_t* q = &qhist[(c * kStreams + k) * A];
          for (int x = 0; x < A; ++x) bits += (uint64_t)q[x] * enc.len[x];
        }
        sbytes[c * kStreams + k] = (bits + 7) / 8;
        total += (bits + 7) / 8;
      }
      total += 12;
      ends[c] = total;
    }
    std::vector<uint32_t>().swap(qhist);
    blob.resize(base + total + 8);
    uint8_t* const payload = blob.data() + base;
    parallel_for(ctx, nchunks, [&](size_t c) {
      const size_t lo = c * (size_t)params.chunk, m = std::min<size_t>(params.chunk, n - lo);
      uint8_t* out = payload + (c ? ends[c - 1] : 0);
      size_t bytes[kStreams];
      encode_huff_streams(enc, sym + lo, m, out + 12, bytes);
      size_t sb = 0;
      for (int k = 0; k < kStreams; ++k) {
        if (bytes[k] != sbytes[c * kStreams + k]) throw Error(Code::Internal, "Huffman stream size differs from its count");
        sb += bytes[k];
      }
      uint8_t head[12] = {0};
      huff_header(head, bytes);
      sums[c] = (uint32_t)xxh64_2(head, 12, out + 12, sb);
    });
    for (uint64_t c = 0; c < nchunks; ++c) {
      size_t bytes[kStreams];
      for (int k = 0; k < kStreams; ++k) bytes[k] = (size_t)sbytes[c * kStreams + k];
      uint8_t* out = payload + (c ? ends[c - 1] : 0);
      std::memset(out, 0, 12);
      huff_header(out, bytes);
    }
    blob.resize(base + total);
  } else {
    // Each chunk into per-thread scratch of its bound, then kept in a buffer of its exact size (small heap
    // blocks: bound-sized ones would each be a fresh mapping), then copied into the blob.
    std::vector<std::unique_ptr<uint8_t[]>> payload(nchunks);
    std::vector<size_t> psize(nchunks);
    auto keep = [&](size_t c, const uint8_t* data, size_t bytes) {
      payload[c].reset(new uint8_t[std::max<size_t>(bytes, 1)]);
      std::memcpy(payload[c].get(), data, bytes);
      psize[c] = bytes;
      sums[c] = (uint32_t)xxh64(data, bytes, 0);
    };
    if (params.coder == Coder::Huffman) {
      const HuffEnc enc = make_encoder(table.data(), A);
      parallel_for(ctx, nchunks, [&](size_t c) {
        const size_t lo = c * (size_t)params.chunk, m = std::min<size_t>(params.chunk, n - lo);
        std::vector<uint8_t>& buf = scratch(0);
        const size_t need = huff_bound(m, std::max(1, enc.lmax));
        if (buf.size() < need) buf.resize(need);
        uint8_t* out = buf.data();
        size_t bytes[kStreams];
        encode_huff_streams(enc, sym + lo, m, out + 12, bytes);
        std::memset(out, 0, 12);
        huff_header(out, bytes);
        keep(c, out, 12 + bytes[0] + bytes[1] + bytes[2] + bytes[3]);
      });
    } else {
      const RansEncoder enc(table.data(), A, param);
      parallel_for(ctx, nchunks, [&](size_t c) {
        const size_t lo = c * (size_t)params.chunk, m = std::min<size_t>(params.chunk, n - lo);
        std::vector<uint8_t>& buf = scratch(0);
        std::vector<uint8_t>& tmp = scratch(1);
        const size_t need = RansEncoder::bound(m);
        if (buf.size() < need) buf.resize(need);
        if (tmp.size() < need) tmp.resize(need);
        keep(c, buf.data(), enc.encode_chunk(sym + lo, m, buf.data(), tmp.data()));
      });
    }
    for (uint64_t c = 0; c < nchunks; ++c) ends[c] = (total += psize[c]);
    blob.resize(base + total);
    uint8_t* const b = blob.data();
    parallel_for(ctx, nchunks, [&](size_t c) {
      std::memcpy(b + base + (c ? ends[c - 1] : 0), payload[c].get(), psize[c]);
      payload[c].reset();
    });
  }
  if (params.coder == Coder::Rans) code_bits = 8 * total;

  // Header, code table, chunk table.
  uint8_t* const b = blob.data();
  std::memcpy(b, kMagic, 4);
  b[8] = kVersion;
  b[9] = (uint8_t)params.coder;
  b[10] = kStreams;
  b[11] = (uint8_t)param;
  store32(b + 12, (uint32_t)A);
  store64(b + 16, (uint64_t)n);
  store32(b + 24, params.chunk);
  store32(b + 28, 0);
  store64(b + 32, code_bits);
  std::memcpy(b + 40, &H, 8);
  std::memset(b + kHeaderBytes, 0, base - kHeaderBytes);
  for (int x = 0; x < A; ++x) {
    if (params.coder == Coder::Huffman) b[kHeaderBytes + x] = (uint8_t)table[x];
    else store16(b + kHeaderBytes + 2 * x, table[x]);
  }
  for (uint64_t c = 0; c < nchunks; ++c) {
    store64(b + meta + 8 * c, ends[c]);
    store32(b + meta + 8 * nchunks + 4 * c, sums[c]);
  }
  store32(b + 4, (uint32_t)xxh64(b + 8, base - 8, 0));

  if (stats) {
    stats->entropy_bits = H;
    stats->avg_code_bits = n ? (double)code_bits / (double)n : 0;
    stats->table_bytes = base;
    stats->payload_bytes = total;
    stats->total_bytes = blob.size();
  }
  return blob;
}

void entropy_decode(const uint8_t* blob, size_t size, uint8_t* out, size_t n, const Context& ctx) {
  const Parsed p = parse_blob(blob, size);
  if (p.n != (uint64_t)n)
    throw Error(Code::Argument, "the blob holds " + std::to_string(p.n) + " symbols, the output has room for " + std::to_string(n));
  if (n == 0) return;
  if (out == nullptr) throw Error(Code::Argument, "null output");
  const uint8_t* payload = blob + p.payload_base;
  auto chunk_span = [&](size_t c, const uint8_t*& data, size_t& bytes, size_t& lo, size_t& m) {
    const uint64_t b = c ? load64(p.offsets + 8 * (c - 1)) : 0, e = load64(p.offsets + 8 * c);
    data = payload + b;
    bytes = (size_t)(e - b);
    lo = c * (size_t)p.chunk;
    m = std::min<size_t>(p.chunk, n - lo);
    if ((uint32_t)xxh64(data, bytes, 0) != load32(p.checksums + 4 * c))
      throw Error(Code::Format, "entropy blob: checksum mismatch in chunk " + std::to_string(c) + " (corrupt payload)");
  };
  if (p.coder == Coder::Huffman) {
    const HuffDec dec = make_decoder(p.table);
    std::vector<uint64_t> bits(p.nchunks);
    parallel_for(ctx, p.nchunks, [&](size_t c) {
      const uint8_t* data;
      size_t bytes, lo, m;
      chunk_span(c, data, bytes, lo, m);
      bits[c] = decode_huff_chunk(dec, data, bytes, out + lo, m);
    });
    uint64_t total = 0;
    for (uint64_t v : bits) total += v;
    if (total != p.code_bits) throw Error(Code::Format, "entropy blob: the streams hold " + std::to_string(total) + " code bits, the header says " + std::to_string(p.code_bits));
  } else {
    const RansDecoder dec(p.table.data(), p.alphabet, p.param);
    parallel_for(ctx, p.nchunks, [&](size_t c) {
      const uint8_t* data;
      size_t bytes, lo, m;
      chunk_span(c, data, bytes, lo, m);
      dec.decode_chunk(data, bytes, out + lo, m);
    });
  }
}

EntropyInfo entropy_info(const uint8_t* blob, size_t size) {
  Parsed p = parse_blob(blob, size);
  EntropyInfo info;
  info.coder = p.coder;
  info.n = p.n;
  info.alphabet = p.alphabet;
  info.chunk = p.chunk;
  info.chunks = p.nchunks;
  info.param = p.param;
  info.table = std::move(p.table);
  info.stats.entropy_bits = p.entropy;
  info.stats.avg_code_bits = p.n ? (double)p.code_bits / (double)p.n : 0;
  info.stats.table_bytes = p.payload_base;
  info.stats.payload_bytes = p.payload_size;
  info.stats.total_bytes = size;
  return info;
}

}  // namespace wp
