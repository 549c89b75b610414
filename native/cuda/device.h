// The CUDA backend's entry points, mirroring core's names in wp::cuda. Compiled only when nvcc is found
// (WP_WITH_CUDA); the addon must load and answer on machines without a GPU or driver.
#pragma once
#include <cstdint>
#include <string>

#include "../core/backend.h"

namespace wp::cuda {

using wp::Backend16;

struct DeviceInfo {
  bool available = false;  // a driver and at least one device answered
  int devices = 0;
  std::string name;        // device 0
  int sm_major = 0, sm_minor = 0;
  uint64_t memory = 0;     // bytes, device 0
  int runtime_version = 0, driver_version = 0;
  std::string reason;      // why not available
};

// Never throws; a missing driver gives available = false with the CUDA error text in reason.
DeviceInfo device_info();

// The CUDA implementation of the 16-bit pipeline's histogram and assign passes, or null when no device answers.
const Backend16* backend16();

// Exact 65,536-bin histogram of 16-bit codes (F16/BF16 raw bits) on device 0: counts[b] = #{i : raw[i] == b}.
// Host pointers in and out; throws wp::Error(Cuda) on failure. For tests and benchmarks of the GPU path.
void histogram16(const uint16_t* raw, uint64_t n, uint64_t* counts);

}  // namespace wp::cuda
