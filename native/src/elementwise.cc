// Elementwise and reduction kernels that dominate batch normalisation on NHWC tensors once convolutions are
// native: binary ops with a per-channel (last axis) operand, and sums over all leading axes or over the last
// axis. TF.js's pure-JS versions index every element through generic broadcasting and transpose before
// reducing, which costs more than the convolutions themselves. Sums accumulate in double, as the JS
// kernels do (JS numbers), so results agree to float rounding.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "common.h"

namespace nextray {

namespace {

// Below this many elements a parallel region costs more than it saves (thread wake-up, and on a shared,
// oversubscribed machine waiting for the second thread to be scheduled at all).
constexpr int64_t kParallelMin = 1 << 16;

enum BinaryOp { kAdd = 0, kSub = 1, kMul = 2, kDiv = 3, kSquaredDiff = 4, kMaximum = 5, kMinimum = 6 };
// How the two operands line up with the output [rows, cols]:
// 0 both full; 1 b is [cols]; 2 a is [cols]; 3 b is a scalar; 4 a is a scalar.
enum Mode { kFull = 0, kBCols = 1, kACols = 2, kBScalar = 3, kAScalar = 4 };

template <int OP>
inline float apply(float a, float b) {
  if constexpr (OP == kAdd) return a + b;
  if constexpr (OP == kSub) return a - b;
  if constexpr (OP == kMul) return a * b;
  if constexpr (OP == kDiv) return a / b;
  if constexpr (OP == kSquaredDiff) return (a - b) * (a - b);
  if constexpr (OP == kMaximum) return (a > b || std::isnan(a)) ? a : b;
  if constexpr (OP == kMinimum) return (a < b || std::isnan(a)) ? a : b;
  return 0.f;
}

template <int OP>
void runBinary(const float* a, const float* b, float* o, int64_t rows, int64_t cols, int mode) {
  const int64_t total = rows * cols;
  switch (mode) {
    case kFull:
#pragma omp parallel for schedule(static) if (total >= kParallelMin && elementwiseThreads() > 1) num_threads(elementwiseThreads())
      for (int64_t i = 0; i < total; ++i) o[i] = apply<OP>(a[i], b[i]);
      break;
    case kBCols:
#pragma omp parallel for schedule(static) if (total >= kParallelMin && elementwiseThreads() > 1) num_threads(elementwiseThreads())
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c) o[r * cols + c] = apply<OP>(a[r * cols + c], b[c]);
      break;
    case kACols:
#pragma omp parallel for schedule(static) if (total >= kParallelMin && elementwiseThreads() > 1) num_threads(elementwiseThreads())
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c) o[r * cols + c] = apply<OP>(a[c], b[r * cols + c]);
      break;
    case kBScalar: {
      const float s = b[0];
#pragma omp parallel for schedule(static) if (total >= kParallelMin && elementwiseThreads() > 1) num_threads(elementwiseThreads())
      for (int64_t i = 0; i < total; ++i) o[i] = apply<OP>(a[i], s);
      break;
    }
    case kAScalar: {
      const float s = a[0];
#pragma omp parallel for schedule(static) if (total >= kParallelMin && elementwiseThreads() > 1) num_threads(elementwiseThreads())
      for (int64_t i = 0; i < total; ++i) o[i] = apply<OP>(s, b[i]);
      break;
    }
  }
}

// binary(op, a, b, out, rows, cols, mode)
Napi::Value Binary(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    int op = info[0].As<Napi::Number>().Int32Value();
    auto a = info[1].As<Napi::Float32Array>();
    auto b = info[2].As<Napi::Float32Array>();
    auto o = info[3].As<Napi::Float32Array>();
    int64_t rows = info[4].As<Napi::Number>().Int64Value(), cols = info[5].As<Napi::Number>().Int64Value();
    int mode = info[6].As<Napi::Number>().Int32Value();
    const int64_t total = rows * cols;
    int64_t wantA = total, wantB = total;
    if (mode == kBCols) wantB = cols;
    if (mode == kACols) wantA = cols;
    if (mode == kBScalar) wantB = 1;
    if (mode == kAScalar) wantA = 1;
    if (static_cast<int64_t>(a.ElementLength()) != wantA || static_cast<int64_t>(b.ElementLength()) != wantB ||
        static_cast<int64_t>(o.ElementLength()) != total || mode < 0 || mode > 4)
      throw Napi::Error::New(env, "binary operand sizes do not match the given layout");
    const float *pa = a.Data(), *pb = b.Data();
    float* po = o.Data();
    switch (op) {
      case kAdd: runBinary<kAdd>(pa, pb, po, rows, cols, mode); break;
      case kSub: runBinary<kSub>(pa, pb, po, rows, cols, mode); break;
      case kMul: runBinary<kMul>(pa, pb, po, rows, cols, mode); break;
      case kDiv: runBinary<kDiv>(pa, pb, po, rows, cols, mode); break;
      case kSquaredDiff: runBinary<kSquaredDiff>(pa, pb, po, rows, cols, mode); break;
      case kMaximum: runBinary<kMaximum>(pa, pb, po, rows, cols, mode); break;
      case kMinimum: runBinary<kMinimum>(pa, pb, po, rows, cols, mode); break;
      default: throw Napi::Error::New(env, "unknown binary op " + std::to_string(op));
    }
    return env.Undefined();
  });
}

// unary(op, x, out): 0 relu, 1 step (x > 0 ? 1 : 0, NaN stays NaN, as TF.js's Step with alpha 0), 2 sqrt,
// 3 square, 4 neg, 5 rsqrt
Napi::Value Unary(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    int op = info[0].As<Napi::Number>().Int32Value();
    auto x = info[1].As<Napi::Float32Array>();
    auto o = info[2].As<Napi::Float32Array>();
    if (x.ElementLength() != o.ElementLength()) throw Napi::Error::New(env, "unary sizes differ");
    const float* px = x.Data();
    float* po = o.Data();
    const int64_t n = x.ElementLength();
    if (op == 0) {
#pragma omp parallel for schedule(static) if (n >= kParallelMin && elementwiseThreads() > 1) num_threads(elementwiseThreads())
      for (int64_t i = 0; i < n; ++i) po[i] = px[i] < 0.f ? 0.f : px[i];  // NaN passes through, as in TF.js
    } else if (op == 1) {
#pragma omp parallel for schedule(static) if (n >= kParallelMin && elementwiseThreads() > 1) num_threads(elementwiseThreads())
      for (int64_t i = 0; i < n; ++i) po[i] = std::isnan(px[i]) ? px[i] : (px[i] > 0.f ? 1.f : 0.f);
    } else if (op == 2) {
#pragma omp parallel for schedule(static) if (n >= kParallelMin && elementwiseThreads() > 1) num_threads(elementwiseThreads())
      for (int64_t i = 0; i < n; ++i) po[i] = std::sqrt(px[i]);
    } else if (op == 3) {
#pragma omp parallel for schedule(static) if (n >= kParallelMin && elementwiseThreads() > 1) num_threads(elementwiseThreads())
      for (int64_t i = 0; i < n; ++i) po[i] = px[i] * px[i];
    } else if (op == 4) {
#pragma omp parallel for schedule(static) if (n >= kParallelMin && elementwiseThreads() > 1) num_threads(elementwiseThreads())
      for (int64_t i = 0; i < n; ++i) po[i] = -px[i];
    } else if (op == 5) {
      // In double, as the JS kernel computes 1 / Math.sqrt(x), so both round once to float.
#pragma omp parallel for schedule(static) if (n >= kParallelMin && elementwiseThreads() > 1) num_threads(elementwiseThreads())
      for (int64_t i = 0; i < n; ++i) po[i] = static_cast<float>(1.0 / std::sqrt(static_cast<double>(px[i])));
    } else {
      throw Napi::Error::New(env, "unknown unary op " + std::to_string(op));
    }
    return env.Undefined();
  });
}

// reduceLeading(x, out, rows, cols, mean): out[c] = sum over r of x[r, c] (divided by rows when mean).
Napi::Value ReduceLeading(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    auto x = info[0].As<Napi::Float32Array>();
    auto o = info[1].As<Napi::Float32Array>();
    int64_t rows = info[2].As<Napi::Number>().Int64Value(), cols = info[3].As<Napi::Number>().Int64Value();
    bool mean = info[4].ToBoolean();
    if (static_cast<int64_t>(x.ElementLength()) != rows * cols || static_cast<int64_t>(o.ElementLength()) != cols)
      throw Napi::Error::New(env, "reduceLeading sizes do not match");
    const float* px = x.Data();
    const int nt = rows * cols >= kParallelMin ? elementwiseThreads() : 1;
    std::vector<double> partial(static_cast<size_t>(nt) * cols, 0.0);
#pragma omp parallel num_threads(nt)
    {
      double* acc = partial.data() + static_cast<size_t>(omp_get_thread_num()) * cols;
#pragma omp for schedule(static)
      for (int64_t r = 0; r < rows; ++r) {
        const float* row = px + r * cols;
        for (int64_t c = 0; c < cols; ++c) acc[c] += row[c];
      }
    }
    float* po = o.Data();
    for (int64_t c = 0; c < cols; ++c) {
      double s = 0;
      for (int t = 0; t < nt; ++t) s += partial[static_cast<size_t>(t) * cols + c];
      po[c] = static_cast<float>(mean ? s / static_cast<double>(rows) : s);
    }
    return env.Undefined();
  });
}

// reduceMiddle(x, out, outer, rows, cols, mean): out[a, c] = sum over r of x[a, r, c] (global average pooling
// of NHWC is outer = N, rows = H*W, cols = C).
Napi::Value ReduceMiddle(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    auto x = info[0].As<Napi::Float32Array>();
    auto o = info[1].As<Napi::Float32Array>();
    int64_t outer = info[2].As<Napi::Number>().Int64Value(), rows = info[3].As<Napi::Number>().Int64Value(),
            cols = info[4].As<Napi::Number>().Int64Value();
    bool mean = info[5].ToBoolean();
    if (static_cast<int64_t>(x.ElementLength()) != outer * rows * cols ||
        static_cast<int64_t>(o.ElementLength()) != outer * cols)
      throw Napi::Error::New(env, "reduceMiddle sizes do not match");
    const float* px = x.Data();
    float* po = o.Data();
#pragma omp parallel for schedule(static) if (outer * rows * cols >= kParallelMin && elementwiseThreads() > 1) num_threads(elementwiseThreads())
    for (int64_t a = 0; a < outer; ++a) {
      std::vector<double> acc(cols, 0.0);
      const float* base = px + a * rows * cols;
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c) acc[c] += base[r * cols + c];
      for (int64_t c = 0; c < cols; ++c)
        po[a * cols + c] = static_cast<float>(mean ? acc[c] / static_cast<double>(rows) : acc[c]);
    }
    return env.Undefined();
  });
}

// reduceTrailing(x, out, rows, cols, mean): out[r] = sum over c of x[r, c].
Napi::Value ReduceTrailing(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    auto x = info[0].As<Napi::Float32Array>();
    auto o = info[1].As<Napi::Float32Array>();
    int64_t rows = info[2].As<Napi::Number>().Int64Value(), cols = info[3].As<Napi::Number>().Int64Value();
    bool mean = info[4].ToBoolean();
    if (static_cast<int64_t>(x.ElementLength()) != rows * cols || static_cast<int64_t>(o.ElementLength()) != rows)
      throw Napi::Error::New(env, "reduceTrailing sizes do not match");
    const float* px = x.Data();
    float* po = o.Data();
#pragma omp parallel for schedule(static) if (rows * cols >= kParallelMin && elementwiseThreads() > 1) num_threads(elementwiseThreads())
    for (int64_t r = 0; r < rows; ++r) {
      double s = 0;
      const float* row = px + r * cols;
      for (int64_t c = 0; c < cols; ++c) s += row[c];
      po[r] = static_cast<float>(mean ? s / static_cast<double>(cols) : s);
    }
    return env.Undefined();
  });
}


// batchNorm(x, mean, variance, scale|null, offset|null, out, cols, eps): per-channel (last axis) affine
// normalisation, out = offset + (x - mean) * scale / sqrt(variance + eps); the per-channel factor is formed in
// double as the JS kernel does.
Napi::Value BatchNorm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    auto x = info[0].As<Napi::Float32Array>();
    auto m = info[1].As<Napi::Float32Array>();
    auto v = info[2].As<Napi::Float32Array>();
    const bool hasScale = !info[3].IsNull() && !info[3].IsUndefined();
    const bool hasOffset = !info[4].IsNull() && !info[4].IsUndefined();
    auto o = info[5].As<Napi::Float32Array>();
    const int64_t cols = info[6].As<Napi::Number>().Int64Value();
    const double eps = info[7].As<Napi::Number>().DoubleValue();
    const int64_t n = x.ElementLength();
    if (cols <= 0 || n % cols != 0 || static_cast<int64_t>(o.ElementLength()) != n ||
        static_cast<int64_t>(m.ElementLength()) != cols || static_cast<int64_t>(v.ElementLength()) != cols)
      throw Napi::Error::New(env, "batchNorm sizes do not match");
    std::vector<float> k(cols), mu(cols), off(cols, 0.f);
    const float* ps = hasScale ? info[3].As<Napi::Float32Array>().Data() : nullptr;
    const float* po = hasOffset ? info[4].As<Napi::Float32Array>().Data() : nullptr;
    if (hasScale && static_cast<int64_t>(info[3].As<Napi::Float32Array>().ElementLength()) != cols)
      throw Napi::Error::New(env, "batchNorm scale size does not match");
    if (hasOffset && static_cast<int64_t>(info[4].As<Napi::Float32Array>().ElementLength()) != cols)
      throw Napi::Error::New(env, "batchNorm offset size does not match");
    for (int64_t c = 0; c < cols; ++c) {
      k[c] = static_cast<float>((ps ? ps[c] : 1.0) / std::sqrt(static_cast<double>(v.Data()[c]) + eps));
      mu[c] = m.Data()[c];
      if (po) off[c] = po[c];
    }
    const float* px = x.Data();
    float* out = o.Data();
    const int64_t rows = n / cols;
    const float *kp = k.data(), *mp = mu.data(), *op = off.data();
#pragma omp parallel for schedule(static) if (n >= kParallelMin && elementwiseThreads() > 1) num_threads(elementwiseThreads())
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) out[r * cols + c] = op[c] + (px[r * cols + c] - mp[c]) * kp[c];
    return env.Undefined();
  });
}

}  // namespace

// addRelu(a, b, out): the end of every residual block, relu(a + b), in one pass instead of two.
Napi::Value AddRelu(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    auto a = info[0].As<Napi::Float32Array>();
    auto b = info[1].As<Napi::Float32Array>();
    auto o = info[2].As<Napi::Float32Array>();
    const int64_t n = a.ElementLength();
    if (static_cast<int64_t>(b.ElementLength()) != n || static_cast<int64_t>(o.ElementLength()) != n)
      throw Napi::Error::New(env, "addRelu sizes do not match");
    const float* __restrict pa = a.Data();
    const float* __restrict pb = b.Data();
    float* __restrict po = o.Data();
#pragma omp parallel for schedule(static) if (n >= kParallelMin && elementwiseThreads() > 1) num_threads(elementwiseThreads())
    for (int64_t i = 0; i < n; ++i) po[i] = std::max(0.f, pa[i] + pb[i]);
    return env.Undefined();
  });
}

// reluGrad(dy, y, out): dy where the ReLU output y is positive, else 0 (branch-free select). dy is loaded
// unconditionally: with `y > 0 ? dy[i] : 0` the compiler may not read dy[i] where y <= 0, so it kept a branch
// per element, unpredictable on ReLU outputs (61 ms for 13M elements, against 6 ms for addRelu's pass).
Napi::Value ReluGrad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    auto dy = info[0].As<Napi::Float32Array>();
    auto y = info[1].As<Napi::Float32Array>();
    auto o = info[2].As<Napi::Float32Array>();
    const int64_t n = dy.ElementLength();
    if (static_cast<int64_t>(y.ElementLength()) != n || static_cast<int64_t>(o.ElementLength()) != n)
      throw Napi::Error::New(env, "reluGrad sizes do not match");
    const float* __restrict pd = dy.Data();
    const float* __restrict py = y.Data();
    float* __restrict po = o.Data();
#pragma omp parallel for schedule(static) if (n >= kParallelMin && elementwiseThreads() > 1) num_threads(elementwiseThreads())
    for (int64_t i = 0; i < n; ++i) {
      const float d = pd[i];
      po[i] = py[i] > 0.f ? d : 0.f;
    }
    return env.Undefined();
  });
}

void RegisterElementwise(Napi::Env env, Napi::Object exports) {
  exports.Set("addRelu", Napi::Function::New(env, AddRelu));
  exports.Set("reluGrad", Napi::Function::New(env, ReluGrad));
  exports.Set("binary", Napi::Function::New(env, Binary));
  exports.Set("unary", Napi::Function::New(env, Unary));
  exports.Set("reduceLeading", Napi::Function::New(env, ReduceLeading));
  exports.Set("reduceTrailing", Napi::Function::New(env, ReduceTrailing));
  exports.Set("reduceMiddle", Napi::Function::New(env, ReduceMiddle));
  exports.Set("batchNorm", Napi::Function::New(env, BatchNorm));
}

}  // namespace nextray
