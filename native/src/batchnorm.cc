// Batch normalisation in training mode as two fused kernels over NHWC data ([rows, cols], cols = channels):
// the forward computes the batch statistics and the normalised output (optionally followed by ReLU) in two
// passes; the backward computes dx, dscale and doffset in two passes from dy, x and the statistics. TF.js
// differentiates moments() + batchNorm() into ~40 elementwise and reduction kernels per layer, each
// allocating a full-size output; these replace all of them (see src/engine/fused-ops.ts for the contract).
// Sums accumulate in double per thread, then combine, so results agree with the composed JS ops to float
// rounding whatever the thread count.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "common.h"

namespace nextray {

namespace {

constexpr int64_t kParallelMin = 1 << 16;

// These kernels do several flops per byte (double sums, the ReLU mask recomputed), so unlike the plain
// elementwise ones they gain from every core.
int threadsFor(int64_t n) { return n >= kParallelMin ? std::max(1, omp_get_max_threads()) : 1; }

const float* optionalData(const Napi::Value& v, int64_t cols, const char* what, Napi::Env env) {
  if (v.IsNull() || v.IsUndefined()) return nullptr;
  auto a = v.As<Napi::Float32Array>();
  if (static_cast<int64_t>(a.ElementLength()) != cols)
    throw Napi::Error::New(env, std::string("batchNormTrain: ") + what + " has " + std::to_string(a.ElementLength()) +
                                    " values for " + std::to_string(cols) + " channels");
  return a.Data();
}

Napi::Float32Array sized(const Napi::Value& v, int64_t n, const char* what, Napi::Env env) {
  auto a = v.As<Napi::Float32Array>();
  if (static_cast<int64_t>(a.ElementLength()) != n)
    throw Napi::Error::New(env, std::string("batchNormTrain: ") + what + " has " + std::to_string(a.ElementLength()) +
                                    " values, expected " + std::to_string(n));
  return a;
}

// Sums over rows per column of f(r, c), in double, split over `nt` threads.
template <typename F>
void columnSums(int64_t rows, int64_t cols, int nt, int k, std::vector<double>& acc, F f) {
  acc.assign(static_cast<size_t>(nt) * k * cols, 0.0);
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    const int t = omp_get_thread_num();
    const int tn = omp_get_num_threads();
    const int64_t r0 = rows * t / tn, r1 = rows * (t + 1) / tn;
    double* a = acc.data() + static_cast<size_t>(t) * k * cols;
    for (int64_t r = r0; r < r1; ++r) f(r, a);
  }
  for (int t = 1; t < nt; ++t)
    for (int64_t i = 0; i < k * cols; ++i) acc[i] += acc[static_cast<size_t>(t) * k * cols + i];
}

// batchNormTrain(x, scale|null, offset|null, y, mean, variance, cols, eps, relu)
// mean/variance receive the batch statistics (variance biased, as tf.moments gives it).
Napi::Value BatchNormTrain(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    auto x = info[0].As<Napi::Float32Array>();
    const int64_t cols = info[6].As<Napi::Number>().Int64Value();
    const int64_t n = x.ElementLength();
    if (cols <= 0 || n % cols != 0 || n == 0) throw Napi::Error::New(env, "batchNormTrain: x is not [rows, channels]");
    const float* scale = optionalData(info[1], cols, "scale", env);
    const float* offset = optionalData(info[2], cols, "offset", env);
    float* y = sized(info[3], n, "y", env).Data();
    float* mean = sized(info[4], cols, "mean", env).Data();
    float* variance = sized(info[5], cols, "variance", env).Data();
    const double eps = info[7].As<Napi::Number>().DoubleValue();
    const bool relu = info[8].ToBoolean().Value();
    const int64_t rows = n / cols;
    const float* px = x.Data();
    const int nt = threadsFor(n);

    // Shifted sums (by the first row) keep sum-of-squares cancellation small when |mean| >> std.
    std::vector<double> shift(px, px + cols);
    const double* s = shift.data();
    std::vector<double> acc;
    columnSums(rows, cols, nt, 2, acc, [&](int64_t r, double* __restrict a) {
      const float* __restrict row = px + r * cols;
      double* __restrict a2 = a + cols;
      for (int64_t c = 0; c < cols; ++c) {
        const double d = static_cast<double>(row[c]) - s[c];
        a[c] += d;
        a2[c] += d * d;
      }
    });
    std::vector<float> k(cols), b(cols);
    for (int64_t c = 0; c < cols; ++c) {
      const double m1 = acc[c] / rows;
      const double var = std::max(0.0, acc[cols + c] / rows - m1 * m1);
      const double mu = s[c] + m1;
      mean[c] = static_cast<float>(mu);
      variance[c] = static_cast<float>(var);
      // The same float arithmetic as the batchNorm kernel: offset + (x - mean) * (scale / sqrt(var + eps)).
      k[c] = static_cast<float>((scale ? scale[c] : 1.0) / std::sqrt(static_cast<double>(variance[c]) + eps));
      b[c] = offset ? offset[c] : 0.f;
    }
    const float *kp = k.data(), *bp = b.data(), *mp = mean;
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int64_t r = 0; r < rows; ++r) {
      const float* row = px + r * cols;
      float* o = y + r * cols;
      if (relu)
        for (int64_t c = 0; c < cols; ++c) o[c] = std::max(0.f, bp[c] + (row[c] - mp[c]) * kp[c]);
      else
        for (int64_t c = 0; c < cols; ++c) o[c] = bp[c] + (row[c] - mp[c]) * kp[c];
    }
    return env.Undefined();
  });
}

// dy where the recomputed forward output z is positive, else 0, without a branch: on real activations the sign is
// a coin flip, and a mispredicted branch per element made this kernel 25x slower than the forward.
inline float passIfPositive(float z, float dy) {
  uint32_t bits;
  std::memcpy(&bits, &dy, 4);
  bits &= -static_cast<uint32_t>(z > 0.f);
  float g;
  std::memcpy(&g, &bits, 4);
  return g;
}

// The two passes of the backward: column sums of g and g * (x - mean), then dx. g = dy, or with ReLU dy where
// the recomputed forward output is positive (the output itself is not kept).
template <bool RELU>
void gradPasses(const float* __restrict dy, const float* __restrict px, const float* __restrict mean, const float* __restrict ip,
                const float* __restrict kp, const float* __restrict bp, const float* scale, int64_t rows, int64_t cols, int nt,
                std::vector<double>& acc, std::vector<float>& c1, std::vector<float>& c2, std::vector<float>& kk,
                float* dscale, float* doffset, float* __restrict dx) {
  columnSums(rows, cols, nt, 2, acc, [&](int64_t r, double* __restrict a) {
    const float* __restrict d = dy + r * cols;
    const float* __restrict x = px + r * cols;
    double* __restrict a2 = a + cols;
    for (int64_t c = 0; c < cols; ++c) {
      const float g = RELU ? passIfPositive(bp[c] + (x[c] - mean[c]) * kp[c], d[c]) : d[c];
      a[c] += g;
      a2[c] += static_cast<double>(g) * (static_cast<double>(x[c]) - mean[c]);
    }
  });
  for (int64_t c = 0; c < cols; ++c) {
    const double sumG = acc[c], sumGX = acc[cols + c];
    doffset[c] = static_cast<float>(sumG);
    dscale[c] = static_cast<float>(sumGX * ip[c]);
    // dx = scale * inv * (g - sumG / M - (x - mean) * inv^2 * sumGX / M)
    kk[c] = (scale ? scale[c] : 1.f) * ip[c];
    c1[c] = static_cast<float>(sumG / rows);
    c2[c] = static_cast<float>(static_cast<double>(ip[c]) * ip[c] * sumGX / rows);
  }
  const float *__restrict k1 = c1.data(), *__restrict k2 = c2.data(), *__restrict kq = kk.data();
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
  for (int64_t r = 0; r < rows; ++r) {
    const float* __restrict d = dy + r * cols;
    const float* __restrict x = px + r * cols;
    float* __restrict o = dx + r * cols;
    for (int64_t c = 0; c < cols; ++c) {
      const float g = RELU ? passIfPositive(bp[c] + (x[c] - mean[c]) * kp[c], d[c]) : d[c];
      o[c] = kq[c] * (g - k1[c] - (x[c] - mean[c]) * k2[c]);
    }
  }
}

// batchNormTrainGrad(dy, x, mean, variance, scale|null, offset|null, dx, dscale, doffset, cols, eps, relu)
// The gradient of y = [relu](offset + (x - mean(x)) * scale / sqrt(var(x) + eps)) through the batch statistics.
Napi::Value BatchNormTrainGrad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    auto dyA = info[0].As<Napi::Float32Array>();
    const int64_t cols = info[9].As<Napi::Number>().Int64Value();
    const int64_t n = dyA.ElementLength();
    if (cols <= 0 || n % cols != 0 || n == 0) throw Napi::Error::New(env, "batchNormTrainGrad: dy is not [rows, channels]");
    const float* dy = dyA.Data();
    const float* px = sized(info[1], n, "x", env).Data();
    const float* mean = sized(info[2], cols, "mean", env).Data();
    const float* variance = sized(info[3], cols, "variance", env).Data();
    const float* scale = optionalData(info[4], cols, "scale", env);
    const float* offset = optionalData(info[5], cols, "offset", env);
    float* dx = sized(info[6], n, "dx", env).Data();
    float* dscale = sized(info[7], cols, "dscale", env).Data();
    float* doffset = sized(info[8], cols, "doffset", env).Data();
    const double eps = info[10].As<Napi::Number>().DoubleValue();
    const bool relu = info[11].ToBoolean().Value();
    const int64_t rows = n / cols;
    const int nt = threadsFor(n);

    std::vector<float> inv(cols), k(cols), b(cols);
    for (int64_t c = 0; c < cols; ++c) {
      inv[c] = static_cast<float>(1.0 / std::sqrt(static_cast<double>(variance[c]) + eps));
      k[c] = static_cast<float>((scale ? scale[c] : 1.0) / std::sqrt(static_cast<double>(variance[c]) + eps));
      b[c] = offset ? offset[c] : 0.f;
    }
    std::vector<double> acc;
    std::vector<float> c1(cols), c2(cols), kk(cols);
    if (relu)
      gradPasses<true>(dy, px, mean, inv.data(), k.data(), b.data(), scale, rows, cols, nt, acc, c1, c2, kk, dscale, doffset, dx);
    else
      gradPasses<false>(dy, px, mean, inv.data(), k.data(), b.data(), scale, rows, cols, nt, acc, c1, c2, kk, dscale, doffset, dx);
    return env.Undefined();
  });
}

}  // namespace

void RegisterBatchNorm(Napi::Env env, Napi::Object exports) {
  exports.Set("batchNormTrain", Napi::Function::New(env, BatchNormTrain));
  exports.Set("batchNormTrainGrad", Napi::Function::New(env, BatchNormTrainGrad));
}

}  // namespace nextray
