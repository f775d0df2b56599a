// Batched matrix products through oneDNN's sgemm (row-major, both cores), with TF.js's batch broadcasting
// (batch index modulo each operand's batch count) and an optional fused bias over columns and ReLU.
#include "common.h"

namespace nextray {

// matmul(a, b, out, dims: Int32Array [batchA, batchB, M, N, K, transA, transB], bias|null, relu)
Napi::Value Matmul(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    auto a = info[0].As<Napi::Float32Array>();
    auto b = info[1].As<Napi::Float32Array>();
    auto out = info[2].As<Napi::Float32Array>();
    auto dimsArr = info[3].As<Napi::Int32Array>();
    if (dimsArr.ElementLength() != 7) throw Napi::Error::New(env, "matmul dims must have 7 entries");
    const int32_t* d = dimsArr.Data();
    const int64_t batchA = d[0], batchB = d[1], M = d[2], N = d[3], K = d[4];
    const bool transA = d[5] != 0, transB = d[6] != 0;
    const int64_t batch = std::max(batchA, batchB);
    if (static_cast<int64_t>(a.ElementLength()) != batchA * M * K ||
        static_cast<int64_t>(b.ElementLength()) != batchB * K * N ||
        static_cast<int64_t>(out.ElementLength()) != batch * M * N)
      throw Napi::Error::New(env, "matmul operand sizes do not match the given dimensions");
    const float* bias = nullptr;
    int64_t biasLen = 0;
    if (!info[4].IsNull() && !info[4].IsUndefined()) {
      auto ba = info[4].As<Napi::Float32Array>();
      bias = ba.Data();
      biasLen = ba.ElementLength();
      if (biasLen != N && biasLen != 1) throw Napi::Error::New(env, "matmul bias must have N or 1 entries");
    }
    const bool relu = info[5].ToBoolean();
    for (int64_t i = 0; i < batch; ++i) {
      const float* pa = a.Data() + (i % batchA) * M * K;
      const float* pb = b.Data() + (i % batchB) * K * N;
      float* pc = out.Data() + i * M * N;
      dnnl_status_t st = dnnl_sgemm(transA ? 'T' : 'N', transB ? 'T' : 'N', M, N, K, 1.f, pa, transA ? M : K, pb,
                                    transB ? K : N, 0.f, pc, N);
      if (st != dnnl_success) throw Napi::Error::New(env, "oneDNN sgemm failed with status " + std::to_string(st));
    }
    if (bias || relu) {
      float* pc = out.Data();
      const int64_t rows = batch * M;
#pragma omp parallel for schedule(static) if (batch * M * N >= (1 << 16) && elementwiseThreads() > 1) num_threads(elementwiseThreads())
      for (int64_t r = 0; r < rows; ++r) {
        float* row = pc + r * N;
        if (bias)
          for (int64_t j = 0; j < N; ++j) row[j] += bias[biasLen == 1 ? 0 : j];
        if (relu)
          for (int64_t j = 0; j < N; ++j) row[j] = row[j] > 0.f ? row[j] : 0.f;
      }
    }
    return env.Undefined();
  });
}

}  // namespace nextray
