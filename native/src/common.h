// Shared pieces of the neXt-Ray native addon: the one oneDNN engine and stream, a growable aligned buffer,
// and a guard that turns C++ and oneDNN exceptions into JavaScript errors instead of aborting Node.
#pragma once

#include <napi.h>

#include <cstdlib>
#include <exception>
#include <string>

#include "oneapi/dnnl/dnnl.hpp"

namespace nextray {

dnnl::engine& engine();
dnnl::stream& stream();

// An aligned heap buffer that only grows; reused across calls so steady-state kernels do not allocate.
class Buffer {
 public:
  Buffer() = default;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() { std::free(ptr_); }
  void* get(size_t bytes) {
    if (bytes == 0) bytes = 64;
    if (bytes > cap_) {
      std::free(ptr_);
      cap_ = (bytes + 63) / 64 * 64;
      ptr_ = std::aligned_alloc(64, cap_);
      if (!ptr_) {
        cap_ = 0;
        throw std::bad_alloc();
      }
    }
    return ptr_;
  }

 private:
  void* ptr_ = nullptr;
  size_t cap_ = 0;
};

template <typename F>
Napi::Value guard(Napi::Env env, F&& f) {
  try {
    return f();
  } catch (const Napi::Error&) {
    throw;
  } catch (const dnnl::error& e) {
    throw Napi::Error::New(env, std::string("oneDNN: ") + e.what() + " (status " + std::to_string(e.status) + ")");
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, std::string("native kernel: ") + e.what());
  }
}

size_t cachedPrimitiveCount();

// bf16 convolutions (conv.cc): whether oneDNN has bf16 kernels on this CPU (its effective ISA, so
// ONEDNN_MAX_CPU_ISA counts), and the switch, which stays off where they are missing.
bool bf16Available();
bool setBf16(bool on);
bool bf16On();

// Threads for the memory-bound kernels (elementwise, reductions, pooling). One by default: they are limited
// by memory bandwidth and page faults on freshly allocated outputs, and a second thread mostly adds
// wake-up and barrier waits (badly so on a shared machine); oneDNN convolutions and sgemm use all threads.
int elementwiseThreads();
void setElementwiseThreads(int n);

}  // namespace nextray
