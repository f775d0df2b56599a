// Entry point of the neXt-Ray native addon: registers the kernels the TF.js 'nextray-native' backend calls
// (src/engine/native-backend.ts) and reports what the library found (oneDNN version, ISA, threads).
#include <omp.h>

#include "common.h"

namespace nextray {

Napi::Value Conv2dForward(const Napi::CallbackInfo& info);
Napi::Value Conv2dForwardBn(const Napi::CallbackInfo& info);
Napi::Value Conv2dBackwardData(const Napi::CallbackInfo& info);
Napi::Value Conv2dBackwardFilter(const Napi::CallbackInfo& info);
Napi::Value ConvImpl(const Napi::CallbackInfo& info);
Napi::Value SetWinograd(const Napi::CallbackInfo& info);
Napi::Value SetShortcutSum(const Napi::CallbackInfo& info);
Napi::Value Pool2d(const Napi::CallbackInfo& info);
Napi::Value MaxPoolGrad(const Napi::CallbackInfo& info);
Napi::Value AvgPoolGrad(const Napi::CallbackInfo& info);
Napi::Value Matmul(const Napi::CallbackInfo& info);
void RegisterElementwise(Napi::Env env, Napi::Object exports);
void RegisterBatchNorm(Napi::Env env, Napi::Object exports);
void RegisterOptim(Napi::Env env, Napi::Object exports);

int g_elementwiseThreads = 1;
int elementwiseThreads() { return g_elementwiseThreads; }
void setElementwiseThreads(int n) { g_elementwiseThreads = n; }

dnnl::engine& engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

dnnl::stream& stream() {
  static dnnl::stream s(engine());
  return s;
}

namespace {

const char* isaName(dnnl::cpu_isa isa) {
  switch (isa) {
    case dnnl::cpu_isa::sse41: return "sse41";
    case dnnl::cpu_isa::avx: return "avx";
    case dnnl::cpu_isa::avx2: return "avx2";
    case dnnl::cpu_isa::avx512_core: return "avx512_core";
    case dnnl::cpu_isa::avx512_core_vnni: return "avx512_core_vnni";
    case dnnl::cpu_isa::avx512_core_bf16: return "avx512_core_bf16";
    case dnnl::cpu_isa::avx512_core_amx: return "avx512_core_amx";
    default: return "other";
  }
}

Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  const dnnl_version_t* v = dnnl_version();
  o.Set("onednn", std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch));
  o.Set("isa", isaName(dnnl::get_effective_cpu_isa()));
  o.Set("threads", omp_get_max_threads());
  o.Set("elementwiseThreads", elementwiseThreads());
  o.Set("cachedPrimitives", static_cast<double>(cachedPrimitiveCount()));
  o.Set("bf16", bf16Available());
  o.Set("precision", bf16On() ? "bf16" : "fp32");
  return o;
}

Napi::Value SetElementwiseThreads(const Napi::CallbackInfo& info) {
  int n = info[0].As<Napi::Number>().Int32Value();
  if (n > 0) setElementwiseThreads(n);
  return Napi::Number::New(info.Env(), elementwiseThreads());
}

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  int n = info[0].As<Napi::Number>().Int32Value();
  if (n > 0) omp_set_num_threads(n);
  return Napi::Number::New(info.Env(), omp_get_max_threads());
}

// setPrecision('fp32' | 'bf16') -> the precision in effect ('fp32' where the CPU has no bf16 kernels).
Napi::Value SetPrecision(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string p = info[0].As<Napi::String>().Utf8Value();
  if (p != "fp32" && p != "bf16") throw Napi::Error::New(env, "precision must be 'fp32' or 'bf16', got '" + p + "'");
  return Napi::String::New(env, setBf16(p == "bf16") ? "bf16" : "fp32");
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("info", Napi::Function::New(env, Info));
  exports.Set("setThreads", Napi::Function::New(env, SetThreads));
  exports.Set("setElementwiseThreads", Napi::Function::New(env, SetElementwiseThreads));
  exports.Set("setPrecision", Napi::Function::New(env, SetPrecision));
  exports.Set("setWinograd", Napi::Function::New(env, SetWinograd));
  exports.Set("setShortcutSum", Napi::Function::New(env, SetShortcutSum));
  exports.Set("conv2dForward", Napi::Function::New(env, Conv2dForward));
  exports.Set("conv2dForwardBn", Napi::Function::New(env, Conv2dForwardBn));
  exports.Set("conv2dBackwardData", Napi::Function::New(env, Conv2dBackwardData));
  exports.Set("conv2dBackwardFilter", Napi::Function::New(env, Conv2dBackwardFilter));
  exports.Set("convImpl", Napi::Function::New(env, ConvImpl));
  exports.Set("pool2d", Napi::Function::New(env, Pool2d));
  exports.Set("maxPoolGrad", Napi::Function::New(env, MaxPoolGrad));
  exports.Set("avgPoolGrad", Napi::Function::New(env, AvgPoolGrad));
  exports.Set("matmul", Napi::Function::New(env, Matmul));
  RegisterElementwise(env, exports);
  RegisterBatchNorm(env, exports);
  RegisterOptim(env, exports);
  return exports;
}

}  // namespace nextray

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return nextray::Init(env, exports); }

NODE_API_MODULE(nextray_native, InitModule)
