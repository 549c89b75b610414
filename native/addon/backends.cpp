// versions() and backends(): what this binary was built with and which backends answer here.
#include <thread>

#include "common.h"
#ifdef WP_WITH_CUDA
#include "../cuda/device.h"
#endif

#ifndef WP_VERSION
#define WP_VERSION "0.0.0"
#endif

namespace wpa {

namespace {

Napi::Value Versions(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("weightpress", WP_VERSION);
  o.Set("napi", Napi::Number::New(env, NAPI_VERSION));
#ifdef WP_WITH_CUDA
  o.Set("cudaCompiled", true);
#else
  o.Set("cudaCompiled", false);
#endif
  o.Set("compiler", __VERSION__);
  return o;
}

Napi::Value Backends(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array a = Napi::Array::New(env);
  Napi::Object cpu = Napi::Object::New(env);
  cpu.Set("name", "cpu");
  cpu.Set("available", true);
  cpu.Set("threads", Napi::Number::New(env, std::thread::hardware_concurrency()));
  a.Set(0u, cpu);
  Napi::Object cu = Napi::Object::New(env);
  cu.Set("name", "cuda");
#ifdef WP_WITH_CUDA
  wp::cuda::DeviceInfo d = wp::cuda::device_info();
  cu.Set("compiled", true);
  cu.Set("available", d.available);
  cu.Set("devices", d.devices);
  if (!d.name.empty()) cu.Set("device", d.name);
  if (d.available) cu.Set("computeCapability", std::to_string(d.sm_major) + "." + std::to_string(d.sm_minor));
  if (d.memory) cu.Set("memory", Napi::Number::New(env, (double)d.memory));
  cu.Set("runtimeVersion", d.runtime_version);
  cu.Set("driverVersion", d.driver_version);
  if (!d.reason.empty()) cu.Set("reason", d.reason);
#else
  cu.Set("compiled", false);
  cu.Set("available", false);
#ifdef WP_BUILT_WITH_NODE_GYP
  cu.Set("reason", "this binary was built with node-gyp, which builds the CPU backend only; for CUDA, build with CMake: "
                   "WEIGHTPRESS_BUILD_FROM_SOURCE=1 npm rebuild weightpress, with cmake-js installed and nvcc on the PATH");
#else
  cu.Set("reason", "this binary was built with CMake without CUDA (nvcc was not found, or WEIGHTPRESS_CUDA=OFF)");
#endif
#endif
  a.Set(1u, cu);
  return a;
}

#ifdef WP_WITH_CUDA
// cudaHistogram16(raw: Uint16Array) -> BigUint64Array(65536): the GPU histogram, for GPU tests.
Napi::Value CudaHistogram16(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Bytes b = bytes_of(info[0], "raw");
  Napi::BigUint64Array out = Napi::BigUint64Array::New(env, 65536);
  try {
    wp::cuda::histogram16(reinterpret_cast<const uint16_t*>(b.data), b.size / 2, out.Data());
  } catch (const wp::Error& e) {
    throw to_js_error(env, e);
  }
  return out;
}
#endif

}  // namespace

void init_backends(Napi::Env env, Napi::Object exports) {
  exports.Set("versions", Napi::Function::New(env, Versions));
  exports.Set("backends", Napi::Function::New(env, Backends));
#ifdef WP_WITH_CUDA
  exports.Set("cudaHistogram16", Napi::Function::New(env, CudaHistogram16));
#endif
}

}  // namespace wpa
