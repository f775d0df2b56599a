// Adam's update of one parameter as one kernel: TF.js runs it as ten elementwise ops per parameter, each
// allocating a full-size output. The arithmetic is float32 in the same order as src/train/adam.ts's composed
// ops (m, v, sqrt(v) / bc2 + eps, var - m / denom * stepSize), so both paths give the same bits.
#include <cmath>

#include "common.h"

namespace nextray {

namespace {

// adamUpdate(param, m, v, grad, newParam, newM, newV, beta1, beta2, stepSize, bc2Sqrt, epsilon)
Napi::Value AdamUpdate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    Napi::Float32Array a[7];
    for (int i = 0; i < 7; ++i) a[i] = info[i].As<Napi::Float32Array>();
    const size_t n = a[0].ElementLength();
    for (int i = 1; i < 7; ++i)
      if (a[i].ElementLength() != n) throw Napi::Error::New(env, "adamUpdate: parameter, moments and gradient sizes differ");
    const double b1 = info[7].As<Napi::Number>().DoubleValue(), b2 = info[8].As<Napi::Number>().DoubleValue();
    // Scalars enter TF.js as float32 tensors: round them the same way.
    const float fb1 = static_cast<float>(b1), f1b1 = static_cast<float>(1 - b1);
    const float fb2 = static_cast<float>(b2), f1b2 = static_cast<float>(1 - b2);
    const float step = static_cast<float>(info[9].As<Napi::Number>().DoubleValue());
    const float bc2 = static_cast<float>(info[10].As<Napi::Number>().DoubleValue());
    const float eps = static_cast<float>(info[11].As<Napi::Number>().DoubleValue());
    const float *p = a[0].Data(), *m = a[1].Data(), *v = a[2].Data(), *g = a[3].Data();
    float *np = a[4].Data(), *nm = a[5].Data(), *nv = a[6].Data();
    for (size_t i = 0; i < n; ++i) {
      const float mi = m[i] * fb1 + g[i] * f1b1;
      const float vi = v[i] * fb2 + (g[i] * g[i]) * f1b2;
      const float denom = std::sqrt(vi) / bc2 + eps;
      np[i] = p[i] - (mi / denom) * step;
      nm[i] = mi;
      nv[i] = vi;
    }
    return env.Undefined();
  });
}

}  // namespace

void RegisterOptim(Napi::Env env, Napi::Object exports) { exports.Set("adamUpdate", Napi::Function::New(env, AdamUpdate)); }

}  // namespace nextray
