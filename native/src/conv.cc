// oneDNN convolution kernels (forward with bias + relu, backward data, backward weights) on the TF.js CPU
// backend's own Float32Arrays: activations stay NHWC and filters HWIO exactly as TF.js stores them, so no
// copies are made on the way in or out; only the filter is reordered into oneDNN's blocked layout, because
// the fast JIT kernels want it that way and it is small next to the activations.
#include "common.h"

#include <cstring>
#include <string>
#include <unordered_map>
#include <vector>

namespace nextray {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

// Mixed precision (setPrecision('bf16')): convolutions read bfloat16 copies of their inputs (activations, filters,
// gradients) and write float32 (outputs, input gradients, filter gradients), so everything on the JS side -- the
// master weights, batch-norm statistics, Adam's moments -- stays float32. Only where oneDNN has bf16 kernels
// (avx512_core_bf16 or AMX; see bf16Available), else the setting stays fp32. The conversions are reorders into
// reused buffers (the same ones that move activations into oneDNN's layouts).
bool g_bf16 = false;

bool bf16Available() {
  // cpu_isa values are bit sets: avx512_core_bf16 (0xe7) is contained in every ISA that has its instructions
  // (AMX: 0x3e7); the effective ISA honours ONEDNN_MAX_CPU_ISA, so a capped run reports no bf16.
  const unsigned isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
  const unsigned bf16 = static_cast<unsigned>(dnnl::cpu_isa::avx512_core_bf16);
  return (isa & bf16) == bf16;
}

bool setBf16(bool on) {
  g_bf16 = on && bf16Available();
  return g_bf16;
}
bool bf16On() { return g_bf16; }

namespace {

// Geometry of one convolution as TF.js's computeConv2DInfo resolved it.
struct ConvGeom {
  int64_t n, h, w, ci, oh, ow, co, kh, kw, sh, sw, pt, pb, pl, pr, dh, dw;
  std::string key() const {
    std::string k;
    for (int64_t v : {n, h, w, ci, oh, ow, co, kh, kw, sh, sw, pt, pb, pl, pr, dh, dw}) {
      k += std::to_string(v);
      k += ',';
    }
    return k;
  }
  memory::desc src(tag t = tag::nhwc, dt d = dt::f32) const { return {{n, ci, h, w}, d, t}; }
  memory::desc dst(tag t = tag::nhwc, dt d = dt::f32) const { return {{n, co, oh, ow}, d, t}; }
  memory::desc wei(tag t = tag::hwio, dt d = dt::f32) const { return {{co, ci, kh, kw}, d, t}; }
  memory::dims strides() const { return {sh, sw}; }
  memory::dims dil() const { return {dh - 1, dw - 1}; }  // oneDNN counts dilation from 0
  memory::dims padL() const { return {pt, pl}; }
  memory::dims padR() const { return {pb, pr}; }
};

// Reads the geometry array the JS side packs: [n,h,w,ci, oh,ow,co, kh,kw, sh,sw, pt,pb,pl,pr, dh,dw].
ConvGeom readGeom(const Napi::Value& v) {
  auto a = v.As<Napi::Int32Array>();
  if (a.ElementLength() != 17) throw Napi::Error::New(v.Env(), "conv geometry must have 17 entries");
  const int32_t* g = a.Data();
  return ConvGeom{g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7], g[8],
                  g[9], g[10], g[11], g[12], g[13], g[14], g[15], g[16]};
}

dnnl::primitive_attr userScratchpad() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

// oneDNN 2.6's NHWC kernel (brgconv) is slow for a stem with 1-4 input channels (17 ms for a 3->16 3x3/2 conv
// of 32 images at 128 px on AVX-512). Its direct JIT kernel for planar input and channel-blocked output is much
// faster, even with the reorders from and back to NHWC around it. The blocking (nChw16c on AVX-512, nChw8c on
// AVX2/AVX/SSE4.1) is left to oneDNN (destination 'any'): a hard-coded nChw16c has no kernel below AVX-512 and ran
// oneDNN's reference convolution there (a ResNet-18 step 20x slower on AVX2). (With 'any' for the source too, 2.6
// picks NHWC brgconv.)
bool smallInput(const ConvGeom& g) { return g.ci <= 4; }

// oneDNN's reference kernels (implementation names "ref:...") are correct but 10-1000x slower than its JIT
// kernels; a layout choice that lands on one is the wrong choice wherever another layout has a JIT kernel.
template <typename PD>
bool isRef(const PD& pd) {
  return std::string(pd.impl_info_str()).rfind("ref", 0) == 0;
}

// Where the direct NHWC kernels are oneDNN's older JIT ("jit:avx2", "jit:sse41": CPUs without AVX-512, where
// 2.6 has no brgconv) they are much slower than the same kernels on channel-blocked activations (nChw8c): for a
// 3x3 64->64 convolution of 8 images at 80x80 under the AVX2 cap, single thread, best of 12, three runs, NHWC
// against blocked: forward 47-62 ms against 33-44, backward data 44-52 against 39-43, backward weights 82-90 against
// 41-53 (/tmp microbenchmark of the 2026-12-05 session, load 5). There the activations are reordered to oneDNN's
// layout and back around the convolution; on AVX-512 (brgconv forward) NHWC stays.
bool slowNhwc(const char* impl) {
  const std::string name(impl);
  return name.rfind("jit:", 0) == 0 && name.find("avx512") == std::string::npos;
}

// Winograd F(4x4, 3x3) (oneDNN's jit_wino_4x3, AVX-512 only in 2.6) for 3x3 stride-1 convolutions with channel
// counts in multiples of 16: it does the same convolution with ~2.25x fewer multiplications, in oneDNN's blocked
// layout (nChw16c), so activations are reordered from and back to NHWC around it. Its float32 results differ from
// the direct algorithm's by rounding (the transforms add a few ulps; see test/engine/native-kernels.test.ts).
// Off with NEXTRAY_WINOGRAD=0 (src/engine/options.ts). Where oneDNN has no Winograd kernel (AVX2 and below) the
// primitive creation fails and the direct algorithm is used.
bool winogradOn = true;
bool shortcutSum = false;

bool winogradFits(const ConvGeom& g) {
  return winogradOn && g.kh == 3 && g.kw == 3 && g.sh == 1 && g.sw == 1 && g.dh == 1 && g.dw == 1 && g.ci % 16 == 0 &&
         g.co % 16 == 0;
}

// How a residual joins the convolution's output before the ReLU: not at all, as a binary-add post-op reading
// the residual tensor (no copy), or as a sum post-op onto a destination pre-filled with the residual (the
// fallback where oneDNN has no kernel for the binary post-op).
enum class Residual { none, binary, sum };

// half: bf16 source and filter (float32 destination and bias).
dnnl::convolution_forward::primitive_desc forwardPd(const ConvGeom& g, bool bias, bool relu, dnnl::prop_kind pk,
                                                    bool anyLayout = false, Residual res = Residual::none,
                                                    bool half = false) {
  const dt in = half ? dt::bf16 : dt::f32;
  memory::desc biasMd = bias ? memory::desc({g.co}, dt::f32, tag::x) : memory::desc();
  dnnl::convolution_forward::desc d(pk, dnnl::algorithm::convolution_direct,
                                    g.src(anyLayout ? (smallInput(g) ? tag::nchw : tag::any) : tag::nhwc, in),
                                    g.wei(tag::any, in), biasMd, anyLayout ? g.dst(tag::any) : g.dst(), g.strides(),
                                    g.dil(), g.padL(), g.padR());
  dnnl::primitive_attr attr = userScratchpad();
  dnnl::post_ops po;
  if (res == Residual::binary) po.append_binary(dnnl::algorithm::binary_add, g.dst());
  if (res == Residual::sum) po.append_sum(1.f);
  if (relu) po.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
  if (res != Residual::none || relu) attr.set_post_ops(po);
  return dnnl::convolution_forward::primitive_desc(d, attr, engine());
}

// A Winograd forward primitive in oneDNN's own layouts (no post-ops other than bias and ReLU), or throws.
dnnl::convolution_forward::primitive_desc winogradPd(const ConvGeom& g, bool bias, bool relu, dnnl::prop_kind pk) {
  memory::desc biasMd = bias ? memory::desc({g.co}, dt::f32, tag::x) : memory::desc();
  dnnl::convolution_forward::desc d(pk, dnnl::algorithm::convolution_winograd, g.src(tag::any), g.wei(tag::any), biasMd,
                                    g.dst(tag::any), g.strides(), g.dil(), g.padL(), g.padR());
  dnnl::primitive_attr attr = userScratchpad();
  if (relu) {
    dnnl::post_ops po;
    po.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
    attr.set_post_ops(po);
  }
  return dnnl::convolution_forward::primitive_desc(d, attr, engine());
}

struct FwdEntry {
  dnnl::convolution_forward::primitive_desc pd;
  Residual residual;
  dnnl::convolution_forward prim;
  bool reorderWeights;
  dnnl::reorder weightReorder;
  // Activations in oneDNN's own layouts (smallInput, or where NHWC has only a reference kernel): NHWC -> pd.src_desc() before, pd.dst_desc() -> NHWC after.
  bool reorderSrc = false, reorderDst = false;
  dnnl::reorder srcReorder, dstReorder;
  bool half = false;  // bf16 source and filter (the source reorder converts)
};
struct BwdDataEntry {
  dnnl::convolution_backward_data::primitive_desc pd;
  dnnl::convolution_backward_data prim;
  bool reorderWeights;
  dnnl::reorder weightReorder;
  // Winograd works in oneDNN's layouts: dy NHWC -> pd.diff_dst_desc() before, pd.diff_src_desc() -> NHWC after.
  // bf16 (half): dy and the filter in bf16, converted by those reorders.
  bool reorderDy = false, reorderDx = false;
  dnnl::reorder dyReorder, dxReorder;
  bool half = false;
};
struct BwdWeightsEntry {
  dnnl::convolution_backward_weights::primitive_desc pd;
  dnnl::convolution_backward_weights prim;
  bool reorderWeights;
  dnnl::reorder weightReorder;  // from oneDNN's diff_weights layout back to HWIO
  // Winograd: x and dy NHWC -> pd.src_desc() / pd.diff_dst_desc() before.
  // bf16 (half): x and dy in bf16, converted by those reorders.
  bool reorderX = false, reorderDy = false;
  dnnl::reorder xReorder, dyReorder;
  bool half = false;
};

// Primitive creation costs milliseconds (JIT code generation); a ResNet has a few dozen distinct shapes,
// so every primitive is built once per shape and reused for the life of the process.
std::unordered_map<std::string, FwdEntry> fwdCache;
std::unordered_map<std::string, BwdDataEntry> bwdDataCache;
std::unordered_map<std::string, BwdWeightsEntry> bwdWeightsCache;

// The forward primitive for one shape; half: bf16 source and filter (direct algorithm: oneDNN 2.6's Winograd is
// float32 only). Sets how the residual joins in `res`.
dnnl::convolution_forward::primitive_desc selectForward(const ConvGeom& g, bool bias, bool relu, bool residual,
                                                        bool half, Residual& res) {
  const bool any = smallInput(g) && !residual;
  const auto pk = dnnl::prop_kind::forward_inference;
  res = Residual::none;
  dnnl::convolution_forward::primitive_desc pd;
  // NEXTRAY_SHORTCUT_POSTOP=sum (src/engine/options.ts, via setShortcutSum) forces the sum post-op (a diagnostic:
  // measured slower here, it copies the shortcut).
  if (residual && shortcutSum) {
    pd = forwardPd(g, bias, relu, pk, false, Residual::sum, half);
    res = Residual::sum;
  } else if (residual) {
    try {
      pd = forwardPd(g, bias, relu, pk, false, Residual::binary, half);
      res = Residual::binary;
    } catch (const dnnl::error&) {
      pd = forwardPd(g, bias, relu, pk, false, Residual::sum, half);
      res = Residual::sum;
    }
  } else {
    // The preferred layouts first; the other where the preferred has only a reference kernel on this CPU.
    pd = forwardPd(g, bias, relu, pk, any, Residual::none, half);
    if (isRef(pd) || (!any && slowNhwc(pd.impl_info_str()))) {
      auto other = forwardPd(g, bias, relu, pk, !any, Residual::none, half);
      if (!isRef(other)) pd = other;
    }
    if (!half && winogradFits(g)) {
      try {
        // forward_training, also for inference: for forward_inference oneDNN picks kernels that take the filter
        // pre-transformed ("wino" layout), and that transform (wino_reorder) cost 380-460 ms per ResNet-152
        // batch-1 forward wherever the filter copy is not kept (above NEXTRAY_WEIGHT_CACHE_PIXELS), more than the
        // convolutions; the training kernels transform inside. ResNet-152 batch 1, sum of oneDNN's own times
        // (ONEDNN_VERBOSE), load 6: 551 ms this way, 906-1133 with forward_inference, 661-878 direct.
        auto w = winogradPd(g, bias, relu, dnnl::prop_kind::forward_training);
        // Its filter layout must be reachable from HWIO (this throws where it is not).
        dnnl::reorder::primitive_desc(engine(), g.wei(), engine(), w.weights_desc());
        if (!isRef(w)) pd = w;
      } catch (const dnnl::error&) {
        // no Winograd kernel on this CPU: keep the direct one
      }
    }
  }
  return pd;
}

// Where float32 Winograd applies (3x3 stride 1, channels in multiples of 16, AVX-512: every bf16 CPU) it stays:
// ResNet-18's stride-1 3x3 convolutions at 320 px, batch 8 took as long in bf16 (direct) as in float32 Winograd or
// longer (forward 17.9 vs 18.1 ms at 80x80, 17.2 vs 14.6 at 40x40, 16.3 vs 13.9 at 20x20; bench/conv-precision.mjs,
// load 3.5), while bf16 halved the strided, 1x1 and stem convolutions. Convolutions joined by a residual run direct
// (no Winograd), so bf16 there.
bool bf16OverWinograd(const ConvGeom& g, bool residual) { return residual || !winogradFits(g); }

FwdEntry& getFwd(const ConvGeom& g, bool bias, bool relu, bool residual = false) {
  bool half = g_bf16 && bf16OverWinograd(g, residual);
  std::string key = g.key() + (bias ? "b" : "") + (relu ? "r" : "") + (residual ? (shortcutSum ? "S" : "s") : "") +
                    (winogradOn ? "w" : "") + (half ? "h" : "");
  auto it = fwdCache.find(key);
  if (it != fwdCache.end()) return it->second;
  Residual res = Residual::none;
  dnnl::convolution_forward::primitive_desc pd;
  if (half) {
    try {
      pd = selectForward(g, bias, relu, residual, true, res);
    } catch (const dnnl::error&) {
      half = false;  // no bf16 implementation at all
    }
  }
  // No bf16 kernel for this shape (only oneDNN's reference one): float32 for it.
  if (!half || isRef(pd)) {
    half = false;
    pd = selectForward(g, bias, relu, residual, false, res);
  }
  bool re = pd.weights_desc() != g.wei();
  dnnl::reorder r;
  if (re) r = dnnl::reorder(dnnl::reorder::primitive_desc(engine(), g.wei(), engine(), pd.weights_desc()));
  FwdEntry e{pd, res, dnnl::convolution_forward(pd), re, r};
  e.half = half;
  if (pd.src_desc() != g.src()) {
    e.reorderSrc = true;
    e.srcReorder = dnnl::reorder(dnnl::reorder::primitive_desc(engine(), g.src(), engine(), pd.src_desc()));
  }
  if (pd.dst_desc() != g.dst()) {
    e.reorderDst = true;
    e.dstReorder = dnnl::reorder(dnnl::reorder::primitive_desc(engine(), pd.dst_desc(), engine(), g.dst()));
  }
  return fwdCache.emplace(key, std::move(e)).first->second;
}

// The forward primitive for training that the backward primitives take as their hint, and which algorithm and
// layouts they use: Winograd where it fits and this CPU has it; direct on blocked activations where NHWC's kernels
// are the slow ones; else direct NHWC (blocked = false).
struct BwdPlan {
  dnnl::algorithm alg = dnnl::algorithm::convolution_direct;
  bool blocked = false;
  dnnl::convolution_forward::primitive_desc hint;
};

BwdPlan bwdPlan(const ConvGeom& g, bool half = false) {
  BwdPlan p;
  if (half) {  // bf16: direct NHWC (AVX-512 only, where NHWC's kernels are the fast ones)
    p.hint = forwardPd(g, false, false, dnnl::prop_kind::forward_training, false, Residual::none, true);
    return p;
  }
  if (winogradFits(g)) {
    try {
      p.hint = winogradPd(g, false, false, dnnl::prop_kind::forward_training);
      if (!isRef(p.hint)) {
        p.alg = dnnl::algorithm::convolution_winograd;
        p.blocked = true;
        return p;
      }
    } catch (const dnnl::error&) {
      // no Winograd kernel on this CPU
    }
  }
  p.hint = forwardPd(g, false, false, dnnl::prop_kind::forward_training);
  if (!smallInput(g) && slowNhwc(p.hint.impl_info_str())) {
    auto blocked = forwardPd(g, false, false, dnnl::prop_kind::forward_training, true);
    if (!isRef(blocked)) {
      p.hint = blocked;
      p.blocked = true;
    }
  }
  return p;
}

// A cache entry for a backward-data primitive: every operand whose layout or type differs from TF.js's (NHWC
// float32 activations, HWIO float32 filter) gets its reorder, which also converts to bf16 where the primitive
// reads bf16.
BwdDataEntry bwdDataEntry(const dnnl::convolution_backward_data::primitive_desc& pd, const ConvGeom& g, bool half) {
  auto to = [&](const memory::desc& from, const memory::desc& into) {
    return dnnl::reorder(dnnl::reorder::primitive_desc(engine(), from, engine(), into));
  };
  BwdDataEntry e{pd, dnnl::convolution_backward_data(pd), pd.weights_desc() != g.wei(), dnnl::reorder()};
  if (e.reorderWeights) e.weightReorder = to(g.wei(), pd.weights_desc());
  e.reorderDy = pd.diff_dst_desc() != g.dst();
  if (e.reorderDy) e.dyReorder = to(g.dst(), pd.diff_dst_desc());
  e.reorderDx = pd.diff_src_desc() != g.src();
  if (e.reorderDx) e.dxReorder = to(pd.diff_src_desc(), g.src());
  e.half = half;
  return e;
}

// The same for a backward-weights primitive (its filter reorder runs the other way: oneDNN's layout -> HWIO).
BwdWeightsEntry bwdWeightsEntry(const dnnl::convolution_backward_weights::primitive_desc& pd, const ConvGeom& g,
                                bool half) {
  auto to = [&](const memory::desc& from, const memory::desc& into) {
    return dnnl::reorder(dnnl::reorder::primitive_desc(engine(), from, engine(), into));
  };
  BwdWeightsEntry e{pd, dnnl::convolution_backward_weights(pd), pd.diff_weights_desc() != g.wei(), dnnl::reorder()};
  if (e.reorderWeights) e.weightReorder = to(pd.diff_weights_desc(), g.wei());
  e.reorderX = pd.src_desc() != g.src();
  if (e.reorderX) e.xReorder = to(g.src(), pd.src_desc());
  e.reorderDy = pd.diff_dst_desc() != g.dst();
  if (e.reorderDy) e.dyReorder = to(g.dst(), pd.diff_dst_desc());
  e.half = half;
  return e;
}

// bf16 backward data: dy and the filter in bf16, dx float32 (NHWC), or throws.
BwdDataEntry bf16BwdData(const ConvGeom& g) {
  BwdPlan plan = bwdPlan(g, true);
  dnnl::convolution_backward_data::desc d(dnnl::algorithm::convolution_direct, g.src(), g.wei(tag::any, dt::bf16),
                                          g.dst(tag::nhwc, dt::bf16), g.strides(), g.dil(), g.padL(), g.padR());
  dnnl::convolution_backward_data::primitive_desc pd(d, userScratchpad(), engine(), plan.hint);
  if (isRef(pd)) throw dnnl::error(dnnl_unimplemented, "only a reference bf16 kernel");
  return bwdDataEntry(pd, g, true);
}

// A backward primitive for one shape (Prim: convolution_backward_data or _weights, whose descriptors take the same
// arguments), built once and cached: bf16 where `half` and a bf16 kernel exists; else Winograd or direct on
// oneDNN's blocked layouts where bwdPlan chose them; else direct NHWC.
template <typename Prim, typename Entry, typename Bf16, typename Make>
Entry& getBackward(std::unordered_map<std::string, Entry>& cache, const ConvGeom& g, bool half, Bf16 bf16, Make make) {
  std::string key = g.key() + (winogradOn ? "w" : "") + (half ? "h" : "");
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  if (half) {
    try {
      return cache.emplace(key, bf16(g)).first->second;
    } catch (const dnnl::error&) {
      // no bf16 kernel for this shape: float32
    }
  }
  BwdPlan plan = bwdPlan(g);
  if (plan.blocked) {
    try {
      typename Prim::desc d(plan.alg, g.src(tag::any), g.wei(tag::any), g.dst(tag::any), g.strides(), g.dil(),
                            g.padL(), g.padR());
      typename Prim::primitive_desc pd(d, userScratchpad(), engine(), plan.hint);
      if (!isRef(pd)) return cache.emplace(key, make(pd, g, false)).first->second;
    } catch (const dnnl::error&) {
      // fall through to direct NHWC
    }
    plan.hint = forwardPd(g, false, false, dnnl::prop_kind::forward_training);
  }
  typename Prim::desc d(dnnl::algorithm::convolution_direct, g.src(), g.wei(tag::any), g.dst(), g.strides(), g.dil(),
                        g.padL(), g.padR());
  typename Prim::primitive_desc pd(d, userScratchpad(), engine(), plan.hint);
  return cache.emplace(key, make(pd, g, false)).first->second;
}

BwdDataEntry& getBwdData(const ConvGeom& g) {
  return getBackward<dnnl::convolution_backward_data>(bwdDataCache, g, g_bf16 && bf16OverWinograd(g, false),
                                                      bf16BwdData, bwdDataEntry);
}

// oneDNN 2.6's bf16 backward-weights kernel (jit_bf16:avx512_core_bf16) gains only on large outputs with many
// channels; measured alone per shape (bench/conv-precision.mjs and single-shape probes, 2 threads, load average
// 4-6 on 2 shared cores) it was 2-3x SLOWER than float32 for strided 3x3 filters (ResNet-18 at 320 px, batch 8:
// 136 vs 60 ms, 129 vs 40, 131 vs 45), and erratically slower -- up to 88-300 ms against 0.3-1.3 ms -- for small
// outputs (8x8 and 4x4, 64-128 channels) and few channels (the demo's resnet-slim: 16-32 channels), while
// 16x16 and larger outputs with 64+ output channels gained 1.3-2x (ResNet-18's stride-1 3x3 convolutions, its
// 1x1 shortcuts at 40x40 and 20x20, the 7x7/2 stem). Everything else keeps float32 filter gradients.
bool bf16BackwardWeights(const ConvGeom& g) {
  const bool strided = g.sh > 1 || g.sw > 1;
  const bool spatial = g.kh > 1 || g.kw > 1;
  if (strided && spatial && !smallInput(g)) return false;
  return g.oh * g.ow >= 256 && g.co >= 64;
}

// bf16 backward weights: x and dy in bf16 (NHWC), dw float32, or throws.
BwdWeightsEntry bf16BwdWeights(const ConvGeom& g) {
  BwdPlan plan = bwdPlan(g, true);
  dnnl::convolution_backward_weights::desc d(dnnl::algorithm::convolution_direct, g.src(tag::nhwc, dt::bf16),
                                             g.wei(tag::any), g.dst(tag::nhwc, dt::bf16), g.strides(), g.dil(),
                                             g.padL(), g.padR());
  dnnl::convolution_backward_weights::primitive_desc pd(d, userScratchpad(), engine(), plan.hint);
  if (isRef(pd)) throw dnnl::error(dnnl_unimplemented, "only a reference bf16 kernel");
  return bwdWeightsEntry(pd, g, true);
}

BwdWeightsEntry& getBwdWeights(const ConvGeom& g) {
  return getBackward<dnnl::convolution_backward_weights>(
      bwdWeightsCache, g, g_bf16 && bf16OverWinograd(g, false) && bf16BackwardWeights(g), bf16BwdWeights,
      bwdWeightsEntry);
}

void checkLen(const Napi::Env& env, const Napi::Float32Array& a, int64_t want, const char* what) {
  if (static_cast<int64_t>(a.ElementLength()) != want)
    throw Napi::Error::New(env, std::string(what) + " has " + std::to_string(a.ElementLength()) +
                                    " elements, expected " + std::to_string(want));
}

// Reusable aligned buffers for reordered filters and scratchpads, so steady-state calls allocate nothing.
Buffer weightBuf, scratchBuf, srcBuf, dstBuf, foldBuf;

// A filter already reordered into oneDNN's blocked layout, owned by a JS object that the backend keeps per
// filter array (a WeakMap keyed by the Float32Array, whose contents TF.js never changes), so repeated
// inference or frozen layers skip the reorder; freed when that array is garbage-collected.
// With a per-output-channel scale folded in (conv2dForwardBn), the scale it was made with is kept too, so the
// same filter with other scales (or none) is never served a stale copy.
struct CachedWeights {
  memory::desc md;
  void* data;
  int64_t bytes;
  std::vector<float> scale;
};

// The filter in the primitive's layout, with `scale` (co floats, or null) multiplied into its output channels:
// from the cache object when it holds a copy made from the same scale, else reordered now (and kept there when
// a cache object is given).
memory forwardWeights(Napi::Env env, FwdEntry& e, const ConvGeom& g, const float* w, const float* scale,
                      Napi::Value cacheVal) {
  dnnl::stream& s = stream();
  auto folded = [&]() -> const float* {
    if (!scale) return w;
    const int64_t n = g.kh * g.kw * g.ci * g.co;
    float* f = static_cast<float*>(foldBuf.get(n * sizeof(float)));
    for (int64_t i = 0; i < n; i += g.co)  // HWIO: the output channel is the innermost axis
      for (int64_t o = 0; o < g.co; o++) f[i + o] = w[i + o] * scale[o];
    return f;
  };
  if (!e.reorderWeights) return memory(g.wei(), engine(), const_cast<float*>(folded()));
  const bool useCache = cacheVal.IsObject();
  if (useCache) {
    Napi::Object cache = cacheVal.As<Napi::Object>();
    Napi::Value held = cache.Get("w");
    CachedWeights* cw = held.IsExternal() ? held.As<Napi::External<CachedWeights>>().Data() : nullptr;
    const bool sameScale = cw && (scale ? cw->scale.size() == static_cast<size_t>(g.co) &&
                                              std::equal(cw->scale.begin(), cw->scale.end(), scale)
                                        : cw->scale.empty());
    if (!cw || cw->md != e.pd.weights_desc() || !sameScale) {
      const size_t bytes = e.pd.weights_desc().get_size();
      void* data = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
      if (!data) throw std::bad_alloc();
      cw = new CachedWeights{e.pd.weights_desc(), data, static_cast<int64_t>(bytes),
                             scale ? std::vector<float>(scale, scale + g.co) : std::vector<float>()};
      memory user(g.wei(), engine(), const_cast<float*>(folded()));
      memory cached(cw->md, engine(), cw->data);
      e.weightReorder.execute(s, user, cached);
      // Replacing "w" lets the previous copy's finalizer free it.
      cache.Set("w", Napi::External<CachedWeights>::New(env, cw, [](Napi::Env fenv, CachedWeights* c) {
                  Napi::MemoryManagement::AdjustExternalMemory(fenv, -c->bytes);
                  std::free(c->data);
                  delete c;
                }));
      Napi::MemoryManagement::AdjustExternalMemory(env, cw->bytes);
    }
    return memory(cw->md, engine(), cw->data);
  }
  memory user(g.wei(), engine(), const_cast<float*>(folded()));
  memory wMem(e.pd.weights_desc(), engine(), weightBuf.get(e.pd.weights_desc().get_size()));
  e.weightReorder.execute(s, user, wMem);
  return wMem;
}

// out = [relu](conv(x, w [* scale]) + bias [+ residual])
void runForward(Napi::Env env, const ConvGeom& g, Napi::Float32Array x, Napi::Float32Array w,
                const float* scale, const float* bias, const float* residual, Napi::Float32Array out,
                bool relu, Napi::Value cacheVal) {
  checkLen(env, x, g.n * g.h * g.w * g.ci, "conv2d input");
  checkLen(env, w, g.kh * g.kw * g.ci * g.co, "conv2d filter");
  checkLen(env, out, g.n * g.oh * g.ow * g.co, "conv2d output");
  FwdEntry& e = getFwd(g, bias != nullptr, relu, residual != nullptr);
  dnnl::stream& s = stream();
  memory wMem = forwardWeights(env, e, g, w.Data(), scale, cacheVal);
  memory src(g.src(), engine(), x.Data());
  memory dst(g.dst(), engine(), out.Data());
  memory userDst = dst;
  if (e.reorderSrc) {
    memory blocked(e.pd.src_desc(), engine(), srcBuf.get(e.pd.src_desc().get_size()));
    e.srcReorder.execute(s, src, blocked);
    src = blocked;
  }
  if (e.reorderDst) dst = memory(e.pd.dst_desc(), engine(), dstBuf.get(e.pd.dst_desc().get_size()));
  memory scratch(e.pd.scratchpad_desc(), engine(), scratchBuf.get(e.pd.scratchpad_desc().get_size()));
  std::unordered_map<int, memory> args{
      {DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wMem}, {DNNL_ARG_DST, dst}, {DNNL_ARG_SCRATCHPAD, scratch}};
  if (bias) args.emplace(DNNL_ARG_BIAS, memory({{g.co}, dt::f32, tag::x}, engine(), const_cast<float*>(bias)));
  if (e.residual == Residual::binary) {
    args.emplace(DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1,
                 memory(g.dst(), engine(), const_cast<float*>(residual)));
  } else if (e.residual == Residual::sum) {
    std::memcpy(out.Data(), residual, out.ElementLength() * sizeof(float));
  }
  e.prim.execute(s, args);
  if (e.reorderDst) e.dstReorder.execute(s, dst, userDst);
  s.wait();
}

}  // namespace

// conv2dForward(x, filter, bias|null, out, geom: Int32Array(17), relu: boolean, cache?: object)
Napi::Value Conv2dForward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    ConvGeom g = readGeom(info[4]);
    const float* bias = nullptr;
    if (!info[2].IsNull() && !info[2].IsUndefined()) {
      auto b = info[2].As<Napi::Float32Array>();
      checkLen(env, b, g.co, "conv2d bias");
      bias = b.Data();
    }
    runForward(env, g, info[0].As<Napi::Float32Array>(), info[1].As<Napi::Float32Array>(), nullptr, bias, nullptr,
               info[3].As<Napi::Float32Array>(), info[5].ToBoolean(), info.Length() > 6 ? info[6] : env.Undefined());
    return env.Undefined();
  });
}

// conv2dForwardBn(x, filter, scale, shift, residual|null, out, geom, relu, cache|null):
// out = [relu](conv(x, filter * scale) + shift [+ residual]), the batch norm folded into the filter on its way
// into oneDNN's layout, so no folded copy of the filter is kept on the JS side.
Napi::Value Conv2dForwardBn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    ConvGeom g = readGeom(info[6]);
    auto scale = info[2].As<Napi::Float32Array>();
    auto shift = info[3].As<Napi::Float32Array>();
    checkLen(env, scale, g.co, "conv2d+bn scale");
    checkLen(env, shift, g.co, "conv2d+bn shift");
    const float* residual = nullptr;
    if (!info[4].IsNull() && !info[4].IsUndefined()) {
      auto r = info[4].As<Napi::Float32Array>();
      checkLen(env, r, g.n * g.oh * g.ow * g.co, "conv2d+bn residual");
      residual = r.Data();
    }
    runForward(env, g, info[0].As<Napi::Float32Array>(), info[1].As<Napi::Float32Array>(), scale.Data(),
               shift.Data(), residual, info[5].As<Napi::Float32Array>(), info[7].ToBoolean(), info[8]);
    return env.Undefined();
  });
}

// conv2dBackwardData(dy, filter, dx, geom)
Napi::Value Conv2dBackwardData(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    auto dy = info[0].As<Napi::Float32Array>();
    auto w = info[1].As<Napi::Float32Array>();
    auto dx = info[2].As<Napi::Float32Array>();
    ConvGeom g = readGeom(info[3]);
    checkLen(env, dy, g.n * g.oh * g.ow * g.co, "conv2d backprop-input dy");
    checkLen(env, w, g.kh * g.kw * g.ci * g.co, "conv2d backprop-input filter");
    checkLen(env, dx, g.n * g.h * g.w * g.ci, "conv2d backprop-input dx");
    BwdDataEntry& e = getBwdData(g);
    dnnl::stream& s = stream();
    memory userW(g.wei(), engine(), w.Data());
    memory wMem = userW;
    if (e.reorderWeights) {
      wMem = memory(e.pd.weights_desc(), engine(), weightBuf.get(e.pd.weights_desc().get_size()));
      e.weightReorder.execute(s, userW, wMem);
    }
    memory scratch(e.pd.scratchpad_desc(), engine(), scratchBuf.get(e.pd.scratchpad_desc().get_size()));
    memory dyMem(g.dst(), engine(), dy.Data());
    memory dxUser(g.src(), engine(), dx.Data());
    memory dxMem = dxUser;
    if (e.reorderDy) {
      memory blocked(e.pd.diff_dst_desc(), engine(), srcBuf.get(e.pd.diff_dst_desc().get_size()));
      e.dyReorder.execute(s, dyMem, blocked);
      dyMem = blocked;
    }
    if (e.reorderDx) dxMem = memory(e.pd.diff_src_desc(), engine(), dstBuf.get(e.pd.diff_src_desc().get_size()));
    e.prim.execute(s, {{DNNL_ARG_DIFF_DST, dyMem},
                       {DNNL_ARG_WEIGHTS, wMem},
                       {DNNL_ARG_DIFF_SRC, dxMem},
                       {DNNL_ARG_SCRATCHPAD, scratch}});
    if (e.reorderDx) e.dxReorder.execute(s, dxMem, dxUser);
    s.wait();
    return env.Undefined();
  });
}

// conv2dBackwardFilter(x, dy, dw, geom)
Napi::Value Conv2dBackwardFilter(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    auto x = info[0].As<Napi::Float32Array>();
    auto dy = info[1].As<Napi::Float32Array>();
    auto dw = info[2].As<Napi::Float32Array>();
    ConvGeom g = readGeom(info[3]);
    checkLen(env, x, g.n * g.h * g.w * g.ci, "conv2d backprop-filter x");
    checkLen(env, dy, g.n * g.oh * g.ow * g.co, "conv2d backprop-filter dy");
    checkLen(env, dw, g.kh * g.kw * g.ci * g.co, "conv2d backprop-filter dw");
    BwdWeightsEntry& e = getBwdWeights(g);
    dnnl::stream& s = stream();
    memory userDw(g.wei(), engine(), dw.Data());
    memory dwMem = userDw;
    if (e.reorderWeights)
      dwMem = memory(e.pd.diff_weights_desc(), engine(), weightBuf.get(e.pd.diff_weights_desc().get_size()));
    memory scratch(e.pd.scratchpad_desc(), engine(), scratchBuf.get(e.pd.scratchpad_desc().get_size()));
    memory xMem(g.src(), engine(), x.Data());
    memory dyMem(g.dst(), engine(), dy.Data());
    if (e.reorderX) {
      memory blocked(e.pd.src_desc(), engine(), srcBuf.get(e.pd.src_desc().get_size()));
      e.xReorder.execute(s, xMem, blocked);
      xMem = blocked;
    }
    if (e.reorderDy) {
      memory blocked(e.pd.diff_dst_desc(), engine(), dstBuf.get(e.pd.diff_dst_desc().get_size()));
      e.dyReorder.execute(s, dyMem, blocked);
      dyMem = blocked;
    }
    e.prim.execute(s, {{DNNL_ARG_SRC, xMem},
                       {DNNL_ARG_DIFF_DST, dyMem},
                       {DNNL_ARG_DIFF_WEIGHTS, dwMem},
                       {DNNL_ARG_SCRATCHPAD, scratch}});
    if (e.reorderWeights) e.weightReorder.execute(s, dwMem, userDw);
    s.wait();
    return env.Undefined();
  });
}

// convImpl(kind: 0 fwd, 1 bwd data, 2 bwd weights, 3 fwd + bias + shortcut + relu, geom) -> the oneDNN
// implementation name, for profiling (kind 3 adds how the shortcut joins: "binary" or "sum" post-op; " bf16" where
// the primitive reads bf16).
Napi::Value ConvImpl(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    int kind = info[0].As<Napi::Number>().Int32Value();
    ConvGeom g = readGeom(info[1]);
    // With bf16 on, " bf16" after the name says the primitive really reads bf16 (a shape without a bf16 kernel
    // runs float32 and says nothing).
    const char* half = " bf16";
    if (kind == 3) {
      FwdEntry& e = getFwd(g, true, true, true);
      return Napi::String::New(env, std::string(e.pd.impl_info_str()) + (e.half ? half : "") +
                                        (e.residual == Residual::binary ? " (binary post-op)" : " (sum post-op)"));
    }
    std::string name;
    if (kind == 0) {
      FwdEntry& e = getFwd(g, false, false);
      name = std::string(e.pd.impl_info_str()) + (e.half ? half : "");
    } else if (kind == 1) {
      BwdDataEntry& e = getBwdData(g);
      name = std::string(e.pd.impl_info_str()) + (e.half ? half : "");
    } else {
      BwdWeightsEntry& e = getBwdWeights(g);
      name = std::string(e.pd.impl_info_str()) + (e.half ? half : "");
    }
    return Napi::String::New(env, name);
  });
}

// setWinograd(on: boolean) -> the setting in effect. Primitives already built keep their algorithm; new shapes
// (and shapes first seen under the other setting) get the new one.
Napi::Value SetWinograd(const Napi::CallbackInfo& info) {
  winogradOn = info[0].ToBoolean().Value();
  return Napi::Boolean::New(info.Env(), winogradOn);
}

// setShortcutSum(on: boolean) -> the setting in effect: residuals join through the sum post-op instead of binary add.
Napi::Value SetShortcutSum(const Napi::CallbackInfo& info) {
  shortcutSum = info[0].ToBoolean().Value();
  return Napi::Boolean::New(info.Env(), shortcutSum);
}

size_t cachedPrimitiveCount() { return fwdCache.size() + bwdDataCache.size() + bwdWeightsCache.size(); }

}  // namespace nextray
