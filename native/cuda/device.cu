#include <cuda_runtime.h>

#include <string>

#include "../core/error.h"
#include "device.h"

namespace wp::cuda {

DeviceInfo device_info() {
  DeviceInfo info;
  cudaRuntimeGetVersion(&info.runtime_version);
  cudaDriverGetVersion(&info.driver_version);
  cudaError_t e = cudaGetDeviceCount(&info.devices);
  if (e != cudaSuccess) {
    info.devices = 0;
    info.reason = std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
    cudaGetLastError();  // clear the sticky state
    return info;
  }
  if (info.devices == 0) {
    info.reason = "no CUDA device";
    return info;
  }
  cudaDeviceProp prop;
  if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess) {
    info.name = prop.name;
    info.sm_major = prop.major;
    info.sm_minor = prop.minor;
    info.memory = prop.totalGlobalMem;
  }
  info.available = true;
  return info;
}

}  // namespace wp::cuda
