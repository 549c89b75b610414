// Exact histograms of 16-bit float codes on the GPU: CUB's even histogram over the raw bits.
#include <cub/device/device_histogram.cuh>
#include <cuda_runtime.h>

#include <algorithm>
#include <string>
#include <vector>

#include "../core/error.h"
#include "device.h"

namespace wp::cuda {

namespace {
void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess)
    throw Error(Code::Cuda, std::string(what) + ": " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")");
}

// RAII device buffer.
struct DeviceBuffer {
  void* p = nullptr;
  explicit DeviceBuffer(size_t bytes) { if (bytes) check(cudaMalloc(&p, bytes), "cudaMalloc"); }
  ~DeviceBuffer() { if (p) cudaFree(p); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
};

__global__ void widen(const unsigned int* in, uint64_t* out, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = in[i];
}
}  // namespace

void histogram16(const uint16_t* raw, uint64_t n, uint64_t* counts) {
  constexpr int kBins = 65536;
  // CUB counts in 32-bit: split the input so that no bin can overflow.
  constexpr uint64_t kPiece = 1ull << 31;
  DeviceBuffer d_in(n * 2), d_hist(kBins * sizeof(unsigned int)), d_sum(kBins * sizeof(uint64_t));
  check(cudaMemcpy(d_in.p, raw, n * 2, cudaMemcpyHostToDevice), "copy to device");
  check(cudaMemset(d_sum.p, 0, kBins * sizeof(uint64_t)), "cudaMemset");
  std::vector<uint64_t> host(kBins, 0);
  for (uint64_t off = 0; off < n; off += kPiece) {
    int len = (int)std::min<uint64_t>(kPiece - 1, n - off);
    size_t temp = 0;
    const unsigned short* in = static_cast<const unsigned short*>(d_in.p) + off;
    check(cub::DeviceHistogram::HistogramEven(nullptr, temp, in, static_cast<unsigned int*>(d_hist.p), kBins + 1, 0, kBins, len), "histogram size");
    DeviceBuffer d_temp(temp);
    check(cub::DeviceHistogram::HistogramEven(d_temp.p, temp, in, static_cast<unsigned int*>(d_hist.p), kBins + 1, 0, kBins, len), "histogram");
    widen<<<(kBins + 255) / 256, 256>>>(static_cast<unsigned int*>(d_hist.p), static_cast<uint64_t*>(d_sum.p), kBins);
    check(cudaGetLastError(), "widen");
    std::vector<uint64_t> part(kBins);
    check(cudaMemcpy(part.data(), d_sum.p, kBins * sizeof(uint64_t), cudaMemcpyDeviceToHost), "copy to host");
    for (int b = 0; b < kBins; ++b) host[b] += part[b];
  }
  for (int b = 0; b < kBins; ++b) counts[b] = host[b];
}

}  // namespace wp::cuda
