#!/usr/bin/env node
// `npm run bench`: ours against PyTorch (and ONNX Runtime) on the same ResNet workloads. Each workload runs in its
// own child process (bench/workload.mjs for ours, bench/torch_reference.py under Debian's /usr/bin/python3 for
// PyTorch when torch imports) so peak RSS is per workload; times are medians of --runs runs after --warmup runs. Prints one JSON document.
// Inference (infer1, infer8) is also measured in ONNX Runtime (bench/onnx-inference.mjs: the same ResNet-152 with
// the binary head at 320 px, exported by src/models/onnx, onnxruntime-node on the CPU, 2 threads): one child process
// measures batch 1 and batch 8 from the exported .onnx file; the numbers sit in each inference entry as `onnx` beside
// `ours` (TF.js) and `torch`.
// --isa avx2 (or sse41, avx, avx512_core, ...) runs our side under oneDNN's ISA cap (ONEDNN_MAX_CPU_ISA), so an
// AVX-512 machine measures what an AVX2-only CPU gets. PyTorch gets the same cap: Debian's PyTorch runs its
// convolutions through the same system oneDNN (which honours the variable) and its own ATen kernels are capped
// with ATEN_CPU_CAPABILITY; a probe (a small convolution, forward and backward, under ONEDNN_VERBOSE=1) records in
// the JSON which oneDNN kernels PyTorch actually ran under the cap. ONNX Runtime cannot be capped (MLAS picks its
// kernels from CPUID, with no switch) and runs at the machine's own ISA: the JSON says so.
// --rounds K (default 1) alternates ours and PyTorch K times per workload (each round a fresh process per side)
// and takes the medians over all rounds, so a change in the machine's speed during the run hits both sides.
// train18bf16 (not in the default set): train18 with bf16 convolutions (ours --precision bf16, PyTorch autocast bf16);
// run it after train18 (--only train18,train18bf16) for the bf16/fp32 ratios of the same run.
// startup: `nextray --version` / `--help` and `nextray forward` (ResNet-152, 4x3x320x320) whole process beside PyTorch's
// whole process (bench/startup.mjs).
// fcache152 (not in the default set): the frozen-feature cache, bench/feature-cache.mjs (see its header).
// Usage: npm run bench -- [--runs 3] [--warmup 1] [--rounds 1] [--only infer1,infer8,train18,train152f,predict,startup,fcache152]
//        [--no-torch] [--no-onnx] [--no-profile] [--engine native|cpu] [--isa avx2]
// Needs `npm run build` (it runs dist/).
import { spawnSync } from 'node:child_process';
import { cpus, loadavg, tmpdir } from 'node:os';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { option } from './lib/util.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const argv = process.argv.slice(2);
const opt = (name, dflt) => option(argv, name, dflt);
const runs = opt('runs', '3');
const warmup = opt('warmup', '1');
const engine = opt('engine', 'native');
const only = opt('only', 'infer1,infer8,train18,train152f,predict,startup').split(',');
const isa = opt('isa', null);
const ISAS = ['sse41', 'avx', 'avx2', 'avx2_vnni', 'avx512_core', 'avx512_core_vnni', 'avx512_core_bf16', 'avx512_core_amx', 'all'];
if (isa !== null && !ISAS.includes(isa.toLowerCase())) {
  console.error(`bench: --isa ${isa}: use one of ${ISAS.join(', ')}`);
  process.exit(2);
}
// oneDNN reads the cap when it first dispatches. ATen's dispatch levels are default / avx2 / avx512.
const oursEnv = isa ? { ONEDNN_MAX_CPU_ISA: isa.toUpperCase() } : {};
const atenLevel = !isa || isa === 'all' ? null : isa.startsWith('avx512') ? 'avx512' : isa.startsWith('avx2') ? 'avx2' : 'default';
const torchEnv = isa ? { ONEDNN_MAX_CPU_ISA: isa.toUpperCase(), ...(atenLevel ? { ATEN_CPU_CAPABILITY: atenLevel } : {}) } : {};
const rounds = Number(opt('rounds', '1'));
if (!Number.isInteger(rounds) || rounds < 1) {
  console.error(`bench: --rounds ${opt('rounds')}: a whole number >= 1`);
  process.exit(2);
}
const PYTHON = '/usr/bin/python3';

// FLOPs (2 x multiply-adds) per image at 320x320: torchvision's GMACs at 224 (ResNet-18 1.81, ResNet-152
// 11.51) scaled by (320/224)^2. A training step costs about 3x the forward (data and weight gradients);
// with 148 of 152 layers frozen only the forward counts (the trainable tail is < 1% of the work).
const GFLOP_PER_IMAGE = { resnet18: 2 * 1.81 * (320 / 224) ** 2, resnet152: 2 * 11.51 * (320 / 224) ** 2 };

const WORKLOADS = {
  infer1: { kind: 'infer', arch: 'resnet152', batch: 1, freeze: 0, gflop: GFLOP_PER_IMAGE.resnet152 },
  infer8: { kind: 'infer', arch: 'resnet152', batch: 8, freeze: 0, gflop: 8 * GFLOP_PER_IMAGE.resnet152 },
  train18: { kind: 'train', arch: 'resnet18', batch: 8, freeze: 0, gflop: 3 * 8 * GFLOP_PER_IMAGE.resnet18 },
  train152f: { kind: 'train', arch: 'resnet152', batch: 16, freeze: 148, gflop: 16 * GFLOP_PER_IMAGE.resnet152 },
  // train18 in mixed precision: ours with --precision bf16, PyTorch under torch.cpu.amp.autocast(bfloat16).
  train18bf16: { kind: 'train', arch: 'resnet18', batch: 8, freeze: 0, gflop: 3 * 8 * GFLOP_PER_IMAGE.resnet18, precision: 'bf16' },
};

function medianOf(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** One side's rounds as one result: the first round's fields, every round's times, their median, the peak RSS. */
function mergeRounds(results) {
  if (results.length === 1) return results[0];
  const failed = results.find((r) => r.error);
  if (failed) return failed;
  const seconds = results.flatMap((r) => r.seconds);
  const median = medianOf(seconds);
  const merged = { ...results[0], seconds, median, roundMedians: results.map((r) => r.median), maxRssMB: Math.max(...results.map((r) => r.maxRssMB)) };
  if ('perImage' in results[0]) merged.perImage = median / results[0].batch;
  return merged;
}

function lastJson(stdout) {
  const line = stdout.split('\n').filter((l) => l.startsWith('{')).pop();
  return line ? JSON.parse(line) : null;
}

/** Runs a script that prints one (pretty-printed) JSON document on stdout. */
function runWholeJson(cmd, args, extraEnv = {}) {
  const r = spawnSync(cmd, args, { cwd: root, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, env: { ...process.env, ...extraEnv } });
  try {
    if (r.status === 0) return JSON.parse(r.stdout);
  } catch {
    // fall through to the error below
  }
  return { error: `${cmd} ${args.join(' ')} failed (exit ${r.status}): ${(r.stderr || '').trim().split('\n').slice(-3).join(' | ')}` };
}

function run(cmd, args, extraEnv = {}) {
  const r = spawnSync(cmd, args, {
    cwd: root,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    env: { ...process.env, ...extraEnv },
  });
  const parsed = r.status === 0 ? lastJson(r.stdout) : null;
  if (!parsed) return { error: `${cmd} ${args.join(' ')} failed (exit ${r.status}): ${(r.stderr || '').trim().split('\n').slice(-3).join(' | ')}` };
  return parsed;
}

const torchCheck = spawnSync(PYTHON, ['-c', 'import torch, torchvision; print(torch.__version__)'], { encoding: 'utf8' });
const haveTorch = !argv.includes('--no-torch') && torchCheck.status === 0;
const torchNote = haveTorch
  ? `PyTorch ${torchCheck.stdout.trim()} via ${PYTHON}`
  : argv.includes('--no-torch')
    ? 'PyTorch skipped (--no-torch)'
    : `PyTorch skipped: ${PYTHON} cannot import torch/torchvision (apt-get install python3-torch python3-torchvision)`;

// Which oneDNN convolution kernels PyTorch runs under the cap (implementation names from ONEDNN_VERBOSE).
function torchConvKernels() {
  const code = 'import torch\nx = torch.randn(2, 16, 32, 32, requires_grad=True)\nc = torch.nn.Conv2d(16, 16, 3, padding=1)\nc(x).sum().backward()';
  const r = spawnSync(PYTHON, ['-c', code], { encoding: 'utf8', env: { ...process.env, ...torchEnv, ONEDNN_VERBOSE: '1' } });
  if (r.status !== 0) return `probe failed (exit ${r.status})`;
  const kernels = new Set();
  for (const line of r.stdout.split('\n')) {
    const f = line.split(',');
    if (f[1] === 'exec' && f[3] === 'convolution') kernels.add(`${f[5]}: ${f[4]}`);
  }
  return [...kernels];
}

const report = {
  date: new Date().toISOString(),
  machine: { cpu: cpus()[0]?.model, cores: cpus().length, loadAverageAtStart: loadavg().map((l) => Math.round(l * 100) / 100) },
  settings: {
    runs: Number(runs),
    warmup: Number(warmup),
    engine,
    size: 320,
    threads: 2,
    rounds,
    isaCap: isa
      ? {
          ours: `ONEDNN_MAX_CPU_ISA=${isa.toUpperCase()}`,
          torch: Object.entries(torchEnv).map(([k, v]) => `${k}=${v}`).join(' '),
          onnxRuntime: 'not capped: MLAS picks its kernels from CPUID and has no switch; it runs at the machine\'s own ISA',
        }
      : 'none (the machine\'s own ISA)',
  },
  torch: torchNote,
  ...(isa && haveTorch ? { torchConvKernelsUnderCap: torchConvKernels() } : {}),
  gemm: null,
  workloads: {},
};

process.stderr.write('bench: sgemm 2048^3 peak ...\n');
report.gemm = run(process.execPath, ['bench/workload.mjs', 'gemm', '--runs', '5', '--warmup', '1'], oursEnv);
const peak = report.gemm?.gflops;

// ONNX Runtime inference: the model is exported to a temporary .onnx file by one process, then a second process
// makes a session from that file alone (as a deployment would) and measures batch 1 and batch 8, as many timed runs
// as the other workloads; its peak RSS holds no TF.js model.
const inferOnly = only.filter((n) => WORKLOADS[n]?.kind === 'infer');
let onnx = null;
if (inferOnly.length && !argv.includes('--no-onnx')) {
  process.stderr.write('bench: ONNX Runtime inference (batch 1 and 8) ...\n');
  const dir = mkdtempSync(join(tmpdir(), 'nextray-bench-'));
  const file = join(dir, 'resnet152-320.onnx');
  try {
    const saved = runWholeJson(process.execPath, ['bench/onnx-inference.mjs', '--arch', 'resnet152', '--size', '320', '--save', file]);
    onnx = saved.error
      ? saved
      : { ...runWholeJson(process.execPath, ['bench/onnx-inference.mjs', '--onnx', file, '--gflop', String(saved.gflop_per_image), '--size', '320',
          '--threads', '2', '--reps1', runs, '--reps8', runs, '--warmup', warmup]), export: saved };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  report.onnx = onnx;
}

// `nextray predict`: cold start beside PyTorch, folder throughput beside ONNX Runtime alone (bench/predict.mjs).
if (only.includes('predict')) {
  process.stderr.write('bench: predict (cold start, folder throughput) ...\n');
  report.predict = runWholeJson(process.execPath, ['bench/predict.mjs', '--runs', runs, ...(argv.includes('--no-torch') ? ['--no-torch'] : [])]);
}

// Start-up: --version / --help, and `nextray forward` against PyTorch, whole processes (bench/startup.mjs).
if (only.includes('startup')) {
  process.stderr.write('bench: startup (--version, --help, forward whole process) ...\n');
  report.startup = runWholeJson(process.execPath, ['bench/startup.mjs', '--runs', runs, ...(argv.includes('--no-torch') ? ['--no-torch'] : [])]);
}

// fp32/fp16/int8 exports (bench/quant.mjs): `--only quant --quant-data DIR [--quant-run RUN]`.
if (only.includes('quant')) {
  const q = ['bench/quant.mjs', '--archs', 'resnet50,resnet152', '--data', opt('quant-data', 'demo-output/data'), '--reps1', runs, '--reps8', runs];
  report.quant = runWholeJson(process.execPath, opt('quant-run') ? [...q, '--run', opt('quant-run')] : q);
}

// The frozen-feature cache (bench/feature-cache.mjs): `--only fcache152 [--fc-images 1000] [--fc-epochs 3]
// [--fc-data DIR]`: seconds per epoch uncached vs cached, extraction vs one inference pass, peak RSS of each, and the
// projection for full MURA. Under --isa the cap applies to all of it. Not in the default set (tens of minutes).
if (only.includes('fcache152')) {
  process.stderr.write('bench: fcache152 (ResNet-152, 148 frozen, 320 px, batch 16; uncached, extraction, inference, cached) ...\n');
  const fc = ['bench/feature-cache.mjs', '--images', opt('fc-images', '1000'), '--epochs', opt('fc-epochs', '3'), '--engine', engine];
  if (opt('fc-data')) fc.push('--data', opt('fc-data'));
  report.featureCache = runWholeJson(process.execPath, fc, oursEnv);
}

for (const name of only.filter((n) => n !== 'predict' && n !== 'quant' && n !== 'fcache152' && n !== 'startup')) {
  const w = WORKLOADS[name];
  if (!w) {
    console.error(`bench: unknown workload '${name}' (${Object.keys(WORKLOADS).join(', ')})`);
    process.exit(2);
  }
  const common = ['--arch', w.arch, '--batch', String(w.batch), '--size', '320', '--runs', runs, '--warmup', warmup];
  if (w.freeze) common.push('--freeze', String(w.freeze));
  if (w.precision) common.push('--precision', w.precision);
  const oursRounds = [];
  const torchRounds = [];
  for (let k = 0; k < rounds; k++) {
    const tag = rounds > 1 ? ` round ${k + 1}/${rounds}` : '';
    process.stderr.write(`bench: ${name} (ours${tag}) ...\n`);
    // The kernel profile (an extra untimed run) in the first round only.
    const profile = k === 0 && !argv.includes('--no-profile') ? ['--profile'] : [];
    oursRounds.push(run(process.execPath, ['bench/workload.mjs', w.kind, ...common, '--engine', engine, ...profile], oursEnv));
    if (haveTorch) {
      process.stderr.write(`bench: ${name} (PyTorch${tag}) ...\n`);
      torchRounds.push(run(PYTHON, ['bench/torch_reference.py', w.kind, ...common, '--threads', '2'], torchEnv));
    }
  }
  const ours = mergeRounds(oursRounds);
  const torch = haveTorch ? mergeRounds(torchRounds) : null;
  const entry = { ours, torch: torch ?? torchNote };
  if (ours.median) {
    entry.oursGflops = Math.round((w.gflop / ours.median) * 10) / 10;
    // (the peak is float32 sgemm's: no fraction for bf16 workloads)
    if (peak && !w.precision) entry.oursFractionOfGemmPeak = Math.round((entry.oursGflops / peak) * 1000) / 1000;
  }
  if (ours.median && torch?.median) {
    entry.ratioTimeOursOverTorch = Math.round((ours.median / torch.median) * 100) / 100;
    entry.ratioPeakRssOursOverTorch = Math.round((ours.maxRssMB / torch.maxRssMB) * 100) / 100;
    entry.torchGflops = Math.round((w.gflop / torch.median) * 10) / 10;
  }
  if (w.kind === 'infer' && onnx) {
    const b = w.batch === 1 ? onnx.batch1 : w.batch === 8 ? onnx.batch8 : null;
    if (onnx.error || !b) entry.onnx = onnx.error ?? `no ONNX Runtime measurement for batch ${w.batch}`;
    else {
      // Same unit as ours/torch `median`: seconds per batch.
      const median = Math.round(b.median_s_per_image * w.batch * 1e4) / 1e4;
      entry.onnx = { median, perImage: b.median_s_per_image, runs: b.runs, gflops: b.gflops, peakRssMB: onnx.peak_rss_mb, onnxruntime: onnx.onnxruntime_node };
      if (ours.median) entry.ratioTimeOnnxOverOurs = Math.round((median / ours.median) * 100) / 100;
      if (torch?.median) entry.ratioTimeOnnxOverTorch = Math.round((median / torch.median) * 100) / 100;
    }
  }
  // The speed targets (medians of one run): inference <= 1.0x PyTorch traced and <= 1.25x ONNX Runtime; ResNet-18
  // training step <= 0.8x PyTorch; frozen ResNet-152 step <= 0.7x PyTorch.
  const target = { infer1: 1.0, infer8: 1.0, train18: 0.8, train152f: 0.7 }[name];
  if (target && entry.ratioTimeOursOverTorch) {
    entry.targets = { oursOverTorch: { max: target, value: entry.ratioTimeOursOverTorch, met: entry.ratioTimeOursOverTorch <= target } };
    if (w.kind === 'infer' && entry.onnx?.median && ours.median) {
      const r = Math.round((ours.median / entry.onnx.median) * 100) / 100;
      entry.targets.oursOverOnnx = { max: 1.25, value: r, met: r <= 1.25 };
    }
  }
  // bf16 beside its float32 workload of the same run: ours bf16 / ours fp32 and / PyTorch fp32.
  const fp32 = w.precision && report.workloads[name.replace(w.precision, '')];
  if (fp32 && ours.median) {
    if (fp32.ours?.median) entry.ratioTimeOverOursFp32 = Math.round((ours.median / fp32.ours.median) * 100) / 100;
    if (fp32.torch?.median) entry.ratioTimeOursOverTorchFp32 = Math.round((ours.median / fp32.torch.median) * 100) / 100;
  }
  report.workloads[name] = entry;
  // Progress on stderr, so a long run that is cut short still leaves its finished workloads behind.
  process.stderr.write(`bench: ${name} done: ${JSON.stringify({ ours: ours.median ?? ours.error, torch: torch?.median ?? torchNote, onnx: entry.onnx?.median, ratio: entry.ratioTimeOursOverTorch })}\n`);
}
report.machine.loadAverageAtEnd = loadavg().map((l) => Math.round(l * 100) / 100);
console.log(JSON.stringify(report, null, 2));
