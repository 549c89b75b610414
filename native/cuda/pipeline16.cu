// The CUDA backend of the 16-bit scalar pipeline's bandwidth-bound passes (core/backend.h): exact 65,536-bin
// histograms (CUB) and the fused lookup-table assign + bit-pack (core/kernels.h, the same code the CPU runs).
// The tensor streams through the GPU in pieces, double-buffered on two streams with pinned staging buffers,
// so the copy of one piece overlaps the work on the other and GPU memory stays bounded for any tensor size.
#include <cub/device/device_histogram.cuh>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "../core/backend.h"
#include "../core/error.h"
#include "../core/kernels.h"
#include "device.h"

namespace wp::cuda {

namespace {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess)
    throw Error(Code::Cuda, std::string(what) + ": " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")");
}

template <typename T>
struct DeviceArray {
  T* p = nullptr;
  explicit DeviceArray(size_t n) { if (n) check(cudaMalloc(&p, n * sizeof(T)), "cudaMalloc"); }
  ~DeviceArray() { if (p) cudaFree(p); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
};

template <typename T>
struct PinnedArray {
  T* p = nullptr;
  explicit PinnedArray(size_t n) { if (n) check(cudaMallocHost(&p, n * sizeof(T)), "cudaMallocHost"); }
  ~PinnedArray() { if (p) cudaFreeHost(p); }
  PinnedArray(const PinnedArray&) = delete;
  PinnedArray& operator=(const PinnedArray&) = delete;
};

struct Streams {
  cudaStream_t s[2] = {nullptr, nullptr};
  Streams() { for (auto& x : s) check(cudaStreamCreateWithFlags(&x, cudaStreamNonBlocking), "cudaStreamCreate"); }
  ~Streams() { for (auto& x : s) if (x) cudaStreamDestroy(x); }
};

constexpr uint64_t kPiece = 1ull << 26;  // elements per piece: 128 MiB of 16-bit values per staging buffer

__global__ void accumulate(const unsigned int* part, unsigned long long* total, int bins) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < bins) total[i] += part[i];
}

// One thread per group of 8 elements; a group never straddles two slices because S % 8 == 0.
__global__ void assign_pack(const uint16_t* raw, uint64_t n, uint64_t first, uint64_t S, const uint8_t* luts, int pb,
                            uint8_t* out) {
  uint64_t g = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x;
  uint64_t e = g * 8;
  if (e >= n) return;
  int len = (int)min((uint64_t)8, n - e);
  const uint8_t* lut = luts + ((first + e) / S) * 65536;
  lut_pack8(raw + e, len, lut, pb, out + g * pb);
}

// Streams [0, n) through the GPU in pieces: stage(piece, pinned) fills the pinned buffer, work(piece, stream,
// device buffer) enqueues the GPU work, finish(piece) runs once that piece's stream is done.
template <typename Stage, typename Work, typename Finish>
void stream_pieces(uint64_t n, Stage stage, Work work, Finish finish, const Context& ctx) {
  Streams st;
  PinnedArray<uint16_t> pin0(std::min(n, kPiece)), pin1(n > kPiece ? kPiece : 0);
  DeviceArray<uint16_t> dev0(std::min(n, kPiece)), dev1(n > kPiece ? kPiece : 0);
  uint16_t* pin[2] = {pin0.p, pin1.p};
  uint16_t* dev[2] = {dev0.p, dev1.p};
  const uint64_t pieces = (n + kPiece - 1) / kPiece;
  for (uint64_t p = 0; p < pieces; ++p) {
    ctx.check_cancel();
    int b = (int)(p & 1);
    if (p >= 2) {  // the buffer's previous piece must be done before it is refilled
      check(cudaStreamSynchronize(st.s[b]), "cudaStreamSynchronize");
      finish(p - 2);
    }
    uint64_t off = p * kPiece, len = std::min(kPiece, n - off);
    stage(off, len, pin[b]);
    check(cudaMemcpyAsync(dev[b], pin[b], len * 2, cudaMemcpyHostToDevice, st.s[b]), "copy to device");
    work(p, off, len, dev[b], st.s[b]);
  }
  for (uint64_t p = pieces >= 2 ? pieces - 2 : 0; p < pieces; ++p) {
    check(cudaStreamSynchronize(st.s[p & 1]), "cudaStreamSynchronize");
    finish(p);
  }
}

void gpu_histogram16(const uint16_t* raw, uint64_t n, uint64_t S, uint64_t* hist, const Context& ctx) {
  constexpr int kBins = 65536;
  const uint64_t ns = (n + S - 1) / S;
  DeviceArray<unsigned long long> total(ns * kBins);
  check(cudaMemset(total.p, 0, ns * kBins * sizeof(unsigned long long)), "cudaMemset");
  DeviceArray<unsigned int> part[2] = {DeviceArray<unsigned int>(kBins), DeviceArray<unsigned int>(kBins)};
  size_t temp_bytes = 0;
  check(cub::DeviceHistogram::HistogramEven((void*)nullptr, temp_bytes, (const unsigned short*)nullptr, part[0].p, kBins + 1, 0,
                                            kBins, (int)std::min<uint64_t>(n, kPiece)), "histogram size");
  DeviceArray<char> temp[2] = {DeviceArray<char>(temp_bytes), DeviceArray<char>(temp_bytes)};
  stream_pieces(
      n, [&](uint64_t off, uint64_t len, uint16_t* pin) { std::memcpy(pin, raw + off, len * 2); },
      [&](uint64_t p, uint64_t off, uint64_t len, uint16_t* dev, cudaStream_t s) {
        int b = (int)(p & 1);
        // A piece may cross slice boundaries: one histogram per slice segment.
        for (uint64_t a = off; a < off + len;) {
          uint64_t sl = a / S, e = std::min(off + len, (sl + 1) * S);
          size_t tb = temp_bytes;
          check(cub::DeviceHistogram::HistogramEven(temp[b].p, tb, (const unsigned short*)(dev + (a - off)), part[b].p, kBins + 1, 0,
                                                    kBins, (int)(e - a), s), "histogram");
          accumulate<<<kBins / 256, 256, 0, s>>>(part[b].p, total.p + sl * kBins, kBins);
          check(cudaGetLastError(), "accumulate");
          a = e;
        }
      },
      [&](uint64_t) {}, ctx);
  check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
  std::vector<unsigned long long> h(ns * kBins);
  check(cudaMemcpy(h.data(), total.p, h.size() * sizeof(unsigned long long), cudaMemcpyDeviceToHost), "copy to host");
  for (size_t i = 0; i < h.size(); ++i) hist[i] += h[i];
}

void gpu_assign16(const uint16_t* raw, uint64_t n, uint64_t S, const uint8_t* luts, int pb, uint8_t* out, const Context& ctx) {
  const uint64_t ns = (n + S - 1) / S;
  DeviceArray<uint8_t> d_luts(ns * 65536);
  check(cudaMemcpy(d_luts.p, luts, ns * 65536, cudaMemcpyHostToDevice), "copy tables");
  const uint64_t piece_out = kPiece / 8 * pb;
  DeviceArray<uint8_t> dout0(piece_out), dout1(piece_out);
  PinnedArray<uint8_t> pout0(piece_out), pout1(piece_out);
  uint8_t* dout[2] = {dout0.p, dout1.p};
  uint8_t* pout[2] = {pout0.p, pout1.p};
  std::vector<uint64_t> piece_len((n + kPiece - 1) / kPiece);
  stream_pieces(
      n, [&](uint64_t off, uint64_t len, uint16_t* pin) { std::memcpy(pin, raw + off, len * 2); },
      [&](uint64_t p, uint64_t off, uint64_t len, uint16_t* dev, cudaStream_t s) {
        int b = (int)(p & 1);
        uint64_t groups = (len + 7) / 8;
        assign_pack<<<(unsigned)((groups + 255) / 256), 256, 0, s>>>(dev, len, off, S, d_luts.p, pb, dout[b]);
        check(cudaGetLastError(), "assign_pack");
        uint64_t bytes = (len * pb + 7) / 8;
        check(cudaMemcpyAsync(pout[b], dout[b], bytes, cudaMemcpyDeviceToHost, s), "copy to host");
        piece_len[p] = len;
      },
      [&](uint64_t p) {
        uint64_t bytes = (piece_len[p] * pb + 7) / 8;
        std::memcpy(out + p * kPiece / 8 * pb, pout[p & 1], bytes);
      },
      ctx);
}

const Backend16 kGpuBackend16{"cuda", gpu_histogram16, gpu_assign16};

}  // namespace

const Backend16* backend16() {
  static const bool ok = device_info().available;
  return ok ? &kGpuBackend16 : nullptr;
}

}  // namespace wp::cuda
