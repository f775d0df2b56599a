/**
 * The native engine on older x86-64 CPUs, emulated with oneDNN's own cap (ONEDNN_MAX_CPU_ISA) so an AVX-512
 * machine runs the AVX2 and SSE4.1 code paths: child processes train and run ResNet-18, a Bottleneck ResNet,
 * DenseNet-121, a small DenseNet and the demo's resnet-slim with ONEDNN_VERBOSE=1.
 * - Under AVX512_CORE and AVX2 no oneDNN reference kernel ("ref:" in an execution line) may run: they are
 *   10-1000x slower than the JIT kernels (a hard-coded nChw16c layout once made a ResNet-18 step 20x slower on
 *   AVX2). SSE4.1 is checked for correct results only.
 * - Results are checked against the pure-JS TF.js backend (an independent implementation): logits in inference
 *   mode for every model; the first training step's loss and every gradient (norm and a fixed random projection,
 *   which a gradient in the wrong layout fails) and the logits after two Adam steps for the small models. The
 *   pure-JS backward of ResNet-18 / DenseNet-121 would take minutes, so their training step is checked between the
 *   AVX2 and AVX512_CORE runs instead (different oneDNN kernels: jit:avx2 against jit:avx512_core / brgconv).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { nativeSkip } from './require-native.js';
import type { ModelResult, WorkloadResult } from './isa-workload.js';

const skip = nativeSkip();
const workload = fileURLToPath(new URL('./isa-workload.js', import.meta.url));

// Small inputs (batch 2) keep the whole file to seconds of CPU; 64 px leaves 2x2 maps at the last stage, so
// training-mode batch norm averages 8 values there (at 1x1 it would average 2, and amplify rounding chaotically).
const SMALL = ['bottleneck:64', 'resnet-slim:64', 'densenet-slim:64'];
const LARGE = ['resnet18:64', 'densenet121:64'];
const SMALL_NAMES = SMALL.map((s) => s.split(':')[0]!);
const LARGE_NAMES = LARGE.map((s) => s.split(':')[0]!);
const CAPS = ['AVX512_CORE', 'AVX2', 'SSE41'] as const;
/** Effective ISAs (the addon's info().isa) on which a reference kernel is a failure. */
const JIT_REQUIRED = new Set(['avx2', 'avx512_core', 'avx512_core_vnni', 'avx512_core_bf16', 'avx512_core_amx']);

interface Run {
  result: WorkloadResult;
  /** oneDNN's execution lines (ONEDNN_VERBOSE=1), and the subset run by a reference implementation. */
  execLines: string[];
  refLines: string[];
  /** The ISA oneDNN reports it dispatches for ("onednn_verbose,info,cpu,isa:..."). */
  verboseIsa: string;
}

function runChild(args: string[], env: Record<string, string | undefined>): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [workload, ...args], {
      // Passive OpenMP waits: the children run beside each other (and other test files) on few cores, where
      // spinning threads waiting for a descheduled sibling make every convolution many times slower.
      env: { ...process.env, NEXTRAY_ENGINE: undefined, ONEDNN_MAX_CPU_ISA: undefined, ONEDNN_VERBOSE: undefined, OMP_WAIT_POLICY: 'passive', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`${workload} ${JSON.stringify(env)} exited ${code}: ${err.slice(-2000)}`));
      const lines = out.split('\n');
      const json = lines.filter((l) => l.startsWith('{')).pop();
      if (!json) return reject(new Error(`no result line from the workload: ${err.slice(-2000)}`));
      const execLines = lines.filter((l) => l.startsWith('onednn_verbose,exec,'));
      resolve({
        result: JSON.parse(json) as WorkloadResult,
        execLines,
        refLines: execLines.filter((l) => l.split(',')[4]?.startsWith('ref')),
        verboseIsa: lines.find((l) => l.startsWith('onednn_verbose,info,cpu,isa:'))?.slice('onednn_verbose,info,cpu,isa:'.length) ?? '',
      });
    });
  });
}

/** |a - b| <= atol + rtol * |b| elementwise, with a message naming what differs. */
function close(a: readonly number[], b: readonly number[], rtol: number, atol: number, what: string): void {
  assert.equal(a.length, b.length, `${what}: length`);
  a.forEach((v, i) => {
    assert.ok(Number.isFinite(v), `${what}[${i}] = ${v}`);
    assert.ok(Math.abs(v - b[i]!) <= atol + rtol * Math.abs(b[i]!), `${what}[${i}]: ${v} vs ${b[i]} (rtol ${rtol}, atol ${atol})`);
  });
}

/**
 * Same first-step loss and gradients: each gradient's norm within rtol, and its projection within rtol of its own
 * norm plus a floor of 1e-5 of the model's largest gradient norm (the first batch norm's scale gradient is ~1e-6,
 * a cancellation that float rounding moves by a few percent).
 */
function sameStep(a: ModelResult, b: ModelResult, rtol: number, what: string): void {
  close([a.loss], [b.loss], rtol, 0, `${what} loss`);
  assert.equal(a.grads.length, b.grads.length, `${what}: gradient count`);
  const floor = 1e-5 * Math.max(...b.grads.map((g) => g[0]));
  a.grads.forEach(([norm, proj], i) => {
    const [refNorm, refProj] = b.grads[i]!;
    assert.ok(Math.abs(norm - refNorm) <= rtol * refNorm + floor, `${what} gradient ${i} norm: ${norm} vs ${refNorm}`);
    assert.ok(Math.abs(proj - refProj) <= rtol * refNorm + floor, `${what} gradient ${i} projection: ${proj} vs ${refProj} (norm ${refNorm})`);
  });
}

describe('native engine under oneDNN ISA caps (ONEDNN_MAX_CPU_ISA)', { skip }, () => {
  let reference: WorkloadResult;
  const runs = new Map<string, Run>();
  let failure: unknown = null;

  before(async () => {
    try {
      const [ref, ...capped] = await Promise.all([
        runChild([...LARGE.map((s) => `${s}:infer`), ...SMALL], { NEXTRAY_ENGINE: 'cpu' }),
        ...CAPS.map((cap) => runChild([...LARGE, ...SMALL], { NEXTRAY_ENGINE: 'native', ONEDNN_MAX_CPU_ISA: cap, ONEDNN_VERBOSE: '1' })),
      ]);
      reference = ref!.result;
      CAPS.forEach((cap, i) => runs.set(cap, capped[i]!));
    } catch (e) {
      failure = e;
    }
  });
  after(() => runs.clear());

  const get = (cap: string): Run => {
    if (failure) throw failure;
    return runs.get(cap)!;
  };

  for (const cap of CAPS) {
    it(`${cap}: ran on the native engine with oneDNN's verbose log`, () => {
      const r = get(cap);
      assert.equal(r.result.engine, 'native');
      assert.ok(r.execLines.length > 100, `only ${r.execLines.length} oneDNN execution lines: is ONEDNN_VERBOSE honoured?`);
      assert.ok(r.verboseIsa.length > 0, 'oneDNN printed no ISA line');
      if (cap === 'SSE41') assert.equal(r.result.isa, 'sse41', 'the SSE41 cap is honoured');
    });

    it(`${cap}: no oneDNN reference kernel on any model path`, (t) => {
      const r = get(cap);
      if (cap === 'SSE41') return t.skip('SSE4.1 is checked for correctness only');
      if (!JIT_REQUIRED.has(r.result.isa ?? '')) return t.skip(`this CPU dispatches ${r.result.isa} under the ${cap} cap (below AVX2)`);
      const kinds = [...new Set(r.refLines.map((l) => l.split(',').slice(3, 6).join(',') + ' ' + l.split(',').at(-2)))];
      assert.deepEqual(kinds, [], `reference kernels ran under ${cap} (${r.verboseIsa}):\n${kinds.join('\n')}`);
    });

    it(`${cap}: inference of every model matches the pure-JS backend`, () => {
      const r = get(cap);
      for (const name of [...LARGE_NAMES, ...SMALL_NAMES]) {
        close(r.result.models[name]!.infer, reference.models[name]!.infer, 1e-4, 1e-5, `${cap} ${name} logits`);
      }
    });

    it(`${cap}: training steps of the small models match the pure-JS backend`, () => {
      const r = get(cap);
      for (const name of SMALL_NAMES) {
        const a = r.result.models[name]!;
        const b = reference.models[name]!;
        assert.equal(a.steps, b.steps);
        sameStep(a, b, 1e-3, `${cap} ${name}`);
        close(a.inferAfter, b.inferAfter, 1e-3, 1e-4, `${cap} ${name} logits after ${a.steps} Adam steps`);
        // Training moved the logits (else the comparison above says nothing about the steps).
        assert.ok(Math.abs(a.inferAfter[0]! - a.infer[0]!) > 1e-3, `${name}: the Adam steps changed nothing`);
      }
    });
  }

  it('ResNet-18 and DenseNet-121 training steps agree between the AVX2 and AVX512_CORE kernels', () => {
    const avx2 = get('AVX2').result;
    const avx512 = get('AVX512_CORE').result;
    // DenseNet-121's last block averages 8 values per batch-norm channel at 64 px, where rounding differences
    // between kernels grow to ~2e-3 of a gradient; a wrong kernel or layout is off by O(1).
    const rtol: Record<string, number> = { resnet18: 2e-3, densenet121: 1e-2 };
    for (const name of LARGE_NAMES) {
      sameStep(avx2.models[name]!, avx512.models[name]!, rtol[name]!, `${name} AVX2 vs AVX512_CORE`);
      assert.ok(Number.isFinite(avx2.models[name]!.inferAfter[0]!));
    }
  });
});
