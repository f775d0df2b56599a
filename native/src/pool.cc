// Max and average pooling (forward and gradient) on NHWC Float32Arrays with OpenMP. Written by hand rather
// than through oneDNN because TF.js's semantics must be matched exactly: average pooling divides by the
// number of in-bounds pixels going forward but by the full window size going backward, and max-pool
// gradients go to the first maximum in scan order.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "common.h"

namespace nextray {

namespace {

// [n, h, w, c, oh, ow, kh, kw, sh, sw, padTop, padLeft]
struct PoolGeom {
  int64_t n, h, w, c, oh, ow, kh, kw, sh, sw, pt, pl;
};

PoolGeom readPoolGeom(const Napi::Value& v) {
  auto a = v.As<Napi::Int32Array>();
  if (a.ElementLength() != 12) throw Napi::Error::New(v.Env(), "pool geometry must have 12 entries");
  const int32_t* g = a.Data();
  return {g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7], g[8], g[9], g[10], g[11]};
}

void checkLen(const Napi::Env& env, const Napi::Float32Array& a, int64_t want, const char* what) {
  if (static_cast<int64_t>(a.ElementLength()) != want)
    throw Napi::Error::New(env, std::string(what) + " has " + std::to_string(a.ElementLength()) +
                                    " elements, expected " + std::to_string(want));
}

// Channel chunk for the gradient kernels: windows overlap in space, so threads split batch and channels.
constexpr int64_t kChunk = 64;
// Small pools run on one thread: waking the second costs more than the work.
constexpr int64_t kParallelMin = 1 << 16;

}  // namespace

// pool2d(x, out, geom, isMax)
Napi::Value Pool2d(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    auto xa = info[0].As<Napi::Float32Array>();
    auto oa = info[1].As<Napi::Float32Array>();
    PoolGeom g = readPoolGeom(info[2]);
    bool isMax = info[3].ToBoolean();
    checkLen(env, xa, g.n * g.h * g.w * g.c, "pool input");
    checkLen(env, oa, g.n * g.oh * g.ow * g.c, "pool output");
    const float* x = xa.Data();
    float* out = oa.Data();
    const int64_t C = g.c;
#pragma omp parallel for collapse(2) schedule(static) if (g.n * g.oh * g.ow * g.c >= kParallelMin && elementwiseThreads() > 1) num_threads(elementwiseThreads())
    for (int64_t b = 0; b < g.n; ++b) {
      for (int64_t yr = 0; yr < g.oh; ++yr) {
        const int64_t rCorner = yr * g.sh - g.pt;
        const int64_t r0 = std::max<int64_t>(0, rCorner), r1 = std::min<int64_t>(g.h, rCorner + g.kh);
        for (int64_t yc = 0; yc < g.ow; ++yc) {
          const int64_t cCorner = yc * g.sw - g.pl;
          const int64_t c0 = std::max<int64_t>(0, cCorner), c1 = std::min<int64_t>(g.w, cCorner + g.kw);
          float* o = out + ((b * g.oh + yr) * g.ow + yc) * C;
          const float init = isMax ? -std::numeric_limits<float>::infinity() : 0.f;
          for (int64_t d = 0; d < C; ++d) o[d] = init;
          for (int64_t r = r0; r < r1; ++r)
            for (int64_t col = c0; col < c1; ++col) {
              const float* p = x + ((b * g.h + r) * g.w + col) * C;
              if (isMax)
                for (int64_t d = 0; d < C; ++d) o[d] = p[d] > o[d] ? p[d] : o[d];
              else
                for (int64_t d = 0; d < C; ++d) o[d] += p[d];
            }
          if (!isMax) {
            const float count = static_cast<float>((r1 - r0) * (c1 - c0));
            for (int64_t d = 0; d < C; ++d) o[d] /= count;
          }
        }
      }
    }
    return env.Undefined();
  });
}

// maxPoolGrad(dy, x, dx (zero-filled), geom)
Napi::Value MaxPoolGrad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    auto dya = info[0].As<Napi::Float32Array>();
    auto xa = info[1].As<Napi::Float32Array>();
    auto dxa = info[2].As<Napi::Float32Array>();
    PoolGeom g = readPoolGeom(info[3]);
    checkLen(env, dya, g.n * g.oh * g.ow * g.c, "maxPoolGrad dy");
    checkLen(env, xa, g.n * g.h * g.w * g.c, "maxPoolGrad x");
    checkLen(env, dxa, g.n * g.h * g.w * g.c, "maxPoolGrad dx");
    const float* dy = dya.Data();
    const float* x = xa.Data();
    float* dx = dxa.Data();
    const int64_t C = g.c, chunks = (C + kChunk - 1) / kChunk;
    constexpr float kNegInf = -std::numeric_limits<float>::infinity();
// Compute-bound (a compare per window element), so unlike the plain elementwise kernels it uses every core.
// Two vectorisable passes per window instead of a running argmax: the window's maximum, then the first element
// in scan order equal to it takes the gradient (as in TF.js: the first maximum wins; a window of NaN or -inf only
// passes nothing). The running argmax selected a 64-bit index per element, which baseline x86-64 cannot do in
// vector registers, so it did not vectorise: 8x160x160x64 -> 80x80 took 101 ms, 21 ms this way (best of 15
// each, one after the other, load average 4.8, bench-free script on the AVX-512 machine).
#pragma omp parallel for collapse(2) schedule(static) if (g.n * g.oh * g.ow * g.c >= kParallelMin)
    for (int64_t b = 0; b < g.n; ++b) {
      for (int64_t ch = 0; ch < chunks; ++ch) {
        const int64_t d0 = ch * kChunk, w = std::min(C, d0 + kChunk) - d0;
        float best[kChunk];
        uint32_t open[kChunk];  // all ones until this window's maximum has taken its gradient
        for (int64_t yr = 0; yr < g.oh; ++yr) {
          const int64_t rCorner = yr * g.sh - g.pt;
          const int64_t r0 = std::max<int64_t>(0, rCorner), r1 = std::min<int64_t>(g.h, rCorner + g.kh);
          for (int64_t yc = 0; yc < g.ow; ++yc) {
            const int64_t cCorner = yc * g.sw - g.pl;
            const int64_t c0 = std::max<int64_t>(0, cCorner), c1 = std::min<int64_t>(g.w, cCorner + g.kw);
            for (int64_t d = 0; d < w; ++d) best[d] = kNegInf;
            for (int64_t r = r0; r < r1; ++r)
              for (int64_t col = c0; col < c1; ++col) {
                const float* px = x + ((b * g.h + r) * g.w + col) * C + d0;
                for (int64_t d = 0; d < w; ++d) best[d] = px[d] > best[d] ? px[d] : best[d];
              }
            for (int64_t d = 0; d < w; ++d) open[d] = -static_cast<uint32_t>(best[d] > kNegInf);
            const float* gy = dy + ((b * g.oh + yr) * g.ow + yc) * C + d0;
            for (int64_t r = r0; r < r1; ++r)
              for (int64_t col = c0; col < c1; ++col) {
                const int64_t base = ((b * g.h + r) * g.w + col) * C + d0;
                const float* px = x + base;
                float* pdx = dx + base;
                // Masks, not branches or selects, so the loop vectorises: dx += (hit ? dy : +0), and +0 leaves
                // every sum unchanged (sums start at +0, so none is -0).
                for (int64_t d = 0; d < w; ++d) {
                  const uint32_t hit = open[d] & -static_cast<uint32_t>(px[d] == best[d]);
                  uint32_t bits;
                  std::memcpy(&bits, gy + d, 4);
                  bits &= hit;
                  float add;
                  std::memcpy(&add, &bits, 4);
                  pdx[d] += add;
                  open[d] &= ~hit;
                }
              }
          }
        }
      }
    }
    return env.Undefined();
  });
}

// avgPoolGrad(dy, dx (zero-filled), geom): TF.js spreads dy / (kh*kw) over the in-bounds window pixels.
Napi::Value AvgPoolGrad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    auto dya = info[0].As<Napi::Float32Array>();
    auto dxa = info[1].As<Napi::Float32Array>();
    PoolGeom g = readPoolGeom(info[2]);
    checkLen(env, dya, g.n * g.oh * g.ow * g.c, "avgPoolGrad dy");
    checkLen(env, dxa, g.n * g.h * g.w * g.c, "avgPoolGrad dx");
    const float* dy = dya.Data();
    float* dx = dxa.Data();
    const float mult = 1.f / static_cast<float>(g.kh * g.kw);
    const int64_t C = g.c, chunks = (C + kChunk - 1) / kChunk;
#pragma omp parallel for collapse(2) schedule(static) if (g.n * g.oh * g.ow * g.c >= kParallelMin && elementwiseThreads() > 1) num_threads(elementwiseThreads())
    for (int64_t b = 0; b < g.n; ++b) {
      for (int64_t ch = 0; ch < chunks; ++ch) {
        const int64_t d0 = ch * kChunk, d1 = std::min(C, d0 + kChunk);
        for (int64_t yr = 0; yr < g.oh; ++yr) {
          const int64_t rCorner = yr * g.sh - g.pt;
          const int64_t r0 = std::max<int64_t>(0, rCorner), r1 = std::min<int64_t>(g.h, rCorner + g.kh);
          for (int64_t yc = 0; yc < g.ow; ++yc) {
            const int64_t cCorner = yc * g.sw - g.pl;
            const int64_t c0 = std::max<int64_t>(0, cCorner), c1 = std::min<int64_t>(g.w, cCorner + g.kw);
            const float* gy = dy + ((b * g.oh + yr) * g.ow + yc) * C;
            for (int64_t r = r0; r < r1; ++r)
              for (int64_t col = c0; col < c1; ++col) {
                float* p = dx + ((b * g.h + r) * g.w + col) * C;
                for (int64_t d = d0; d < d1; ++d) p[d] += gy[d] * mult;
              }
          }
        }
      }
    }
    return env.Undefined();
  });
}

}  // namespace nextray
