// Entropy coding of quantization codes: canonical Huffman (length-limited by package-merge) and rANS, in one
// self-describing, chunked blob (docs/ENTROPY.md gives the layout byte by byte).
//
//   * Symbols are bytes below an alphabet size A (1..256) that the caller gives; a symbol >= A is an argument
//     error (Code::Argument).
//   * The input is cut into chunks of C symbols; each chunk is coded on its own (4 interleaved streams inside),
//     so encode and decode run in parallel over chunks (CPU threads now; a GPU decoder can take one chunk per
//     block). An offset table gives each chunk's end, a 32-bit checksum (XXH64, low half) guards each chunk's
//     payload, and another the header, the code table and the chunk table.
//   * Every blob is validated on decode; anything malformed (wrong magic, truncated, bad table, offsets out of
//     range, checksum mismatch, a chunk that does not decode to exactly its symbols and its bytes) throws
//     wp::Error(Code::Format). No input bytes can make the decoder read or write out of bounds.
//   * Deterministic: the same symbols and parameters give the same bytes for any thread count.
//
// Plain C++ (no N-API). huffman.cpp holds the container (layout, checksums, histogram, the entry points) and
// the Huffman coder; rans.cpp the rANS coder.
#pragma once
#include <cstddef>
#include <cstdint>
#include <new>
#include <vector>

#include "../context.h"
#include "../error.h"

namespace wp {

enum class Coder : uint8_t { Huffman = 0, Rans = 1 };

struct EntropyParams {
  Coder coder = Coder::Huffman;
  int alphabet = 256;          // A: symbols are 0..A-1 (1 <= A <= 256)
  uint32_t chunk = 1u << 16;   // symbols per chunk (1 .. 2^28)
  int max_len = 16;            // Huffman: longest code length allowed (1..16; 2^max_len >= symbols present)
  int prob_bits = 0;           // rANS: probability precision P (8..15), 0 = automatic (12..15)
};

struct EntropyStats {
  double entropy_bits = 0;     // H of the symbol histogram, bits/symbol (0 when n = 0)
  // Average code length, bits/symbol. Huffman: sum over symbols of code length / n (the code's L; excludes
  // the stream-size words and the <= 7 padding bits per stream). rANS: 8 * payload_bytes / n (everything,
  // final states included). 0 when n = 0.
  double avg_code_bits = 0;
  uint64_t table_bytes = 0;    // header + code table + chunk table (offsets, checksums) + padding
  uint64_t payload_bytes = 0;  // all chunk payloads
  uint64_t total_bytes = 0;    // table_bytes + payload_bytes: the blob's size
};

// What a blob says about itself (entropy_info): cheap, validates the header, the table and the chunk table
// (not the payloads).
struct EntropyInfo {
  Coder coder = Coder::Huffman;
  uint64_t n = 0;                 // symbols
  int alphabet = 0;               // A
  uint32_t chunk = 0;             // symbols per chunk
  uint64_t chunks = 0;            // ceil(n / chunk)
  int param = 0;                  // Huffman: the length cap; rANS: P
  std::vector<uint32_t> table;    // Huffman: code length per symbol (0 = unused); rANS: normalized frequency
  EntropyStats stats;
};

// Memory for blobs: large ones (>= 4 MiB) are mapped with transparent huge pages where the OS allows it
// (Linux: mmap + madvise(MADV_HUGEPAGE)), which makes the first touch of a fresh output several times cheaper;
// elements are default-initialized (not zeroed): the encoder writes every byte.
void* blob_alloc(size_t bytes);
void blob_free(void* p, size_t bytes) noexcept;
template <class T>
struct BlobAllocator {
  using value_type = T;
  BlobAllocator() = default;
  template <class U>
  BlobAllocator(const BlobAllocator<U>&) noexcept {}
  T* allocate(size_t n) { return static_cast<T*>(blob_alloc(n * sizeof(T))); }
  void deallocate(T* p, size_t n) noexcept { blob_free(p, n * sizeof(T)); }
  template <class U>
  void construct(U* p) noexcept { ::new (static_cast<void*>(p)) U; }
  template <class U, class... Args>
  void construct(U* p, Args&&... args) { ::new (static_cast<void*>(p)) U(static_cast<Args&&>(args)...); }
  template <class U>
  bool operator==(const BlobAllocator<U>&) const noexcept { return true; }
  template <class U>
  bool operator!=(const BlobAllocator<U>&) const noexcept { return false; }
};
using Blob = std::vector<uint8_t, BlobAllocator<uint8_t>>;

// Encodes sym[0, n) into one blob. Throws Code::Argument on bad parameters or a symbol >= alphabet,
// Code::Cancelled when ctx's flag is raised. stats may be null.
Blob entropy_encode(const uint8_t* sym, size_t n, const EntropyParams& params, const Context& ctx,
                    EntropyStats* stats = nullptr);

// Decodes a blob into out[0, n). n must be the blob's symbol count (else Code::Argument); a malformed blob
// throws Code::Format (out may then hold partial results).
void entropy_decode(const uint8_t* blob, size_t size, uint8_t* out, size_t n, const Context& ctx);

// The blob's header, table and statistics, without decoding the payloads. Throws Code::Format if the header,
// table or chunk table is malformed.
EntropyInfo entropy_info(const uint8_t* blob, size_t size);

// Shannon entropy of a histogram, bits/symbol.
double histogram_entropy(const uint64_t* hist, int count);

// Optimal length-limited Huffman code lengths (package-merge) for hist[0, A): 0 for unused symbols; a single
// used symbol gets length 1 (coded with 0 bits, see docs). Throws Code::Argument if 2^max_len < symbols used.
std::vector<uint8_t> huffman_code_lengths(const uint64_t* hist, int alphabet, int max_len);

// XXH64 (Collet's xxHash, 64-bit) of data[0, size) with a seed: the checksum of the blob layout.
uint64_t xxh64(const void* data, size_t size, uint64_t seed);

// ---------------------------------------------------------------------------------------------------------
// Internal interface between huffman.cpp (container) and rans.cpp (coder). Not for other callers.
namespace entropy_detail {

constexpr uint32_t kRansL = 1u << 15;  // rANS state lower bound; states live in [2^15, 2^31)
constexpr int kStreams = 4;            // interleaved streams (Huffman) / states (rANS) per chunk

// Normalized frequencies summing to 2^P, every used symbol >= 1, near-minimal cost sum c_i log2(2^P / f_i).
std::vector<uint32_t> rans_normalize(const uint64_t* hist, int alphabet, int prob_bits);
// P for rANS when the caller leaves it to us (prob_bits = 0): the smallest P in 12..15 within 0.0005
// bit/symbol of P = 15.
int rans_choose_bits(const uint64_t* hist, int alphabet);

struct RansEncoder {
  struct Sym {
    uint32_t x_max, rcp_freq, bias, cmpl_freq, rcp_shift, pad;
  };
  Sym sym[256];
  int prob_bits = 12;
  RansEncoder(const uint32_t* freq, int alphabet, int prob_bits);
  static size_t bound(size_t m) { return 16 + 2 * m + 16; }
  // Encodes one chunk of m symbols into out (at least bound(m) bytes, plus scratch of bound(m) bytes);
  // returns the bytes written.
  size_t encode_chunk(const uint8_t* s, size_t m, uint8_t* out, uint8_t* scratch) const;
};

struct RansDecoder {
  int prob_bits = 12;
  std::vector<uint32_t> slot;  // per slot: freq << 16 | (slot - cum)
  std::vector<uint8_t> sym;    // per slot: symbol
  RansDecoder(const uint32_t* freq, int alphabet, int prob_bits);
  // Decodes one chunk payload into out[0, m); throws Code::Format on malformed data.
  void decode_chunk(const uint8_t* p, size_t size, uint8_t* out, size_t m) const;
};

}  // namespace entropy_detail
}  // namespace wp
