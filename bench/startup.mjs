#!/usr/bin/env node
/**
 * Start-up benchmark, one JSON document on stdout. Whole processes, wall time, median of --runs rounds, each round
 * running every command once in turn so all see the same machine load:
 *   - `nextray --version` and `nextray --help` (node bin/nextray.js ...; target <= 0.15 s), `npx nextray --version`
 *     (npm's own start-up on top) and `node -e 0` (Node's floor on this machine, for context);
 *   - `nextray forward --arch resnet152 --weights resnet152.pth --input x.npy --output y.npy` on a 4x3x320x320 batch
 *     beside PyTorch doing the same job in one process (python3 -c: import torch, build torchvision's ResNet-152,
 *     load the same .pth, read x.npy, forward, write y.npy); target ours <= 1.0x PyTorch. The two outputs are
 *     compared (max |difference| / max |logit|) so a fast wrong answer shows. forward keeps ONNX Runtime's optimised
 *     graph of the weights in a cache (here under the bench's own XDG_CACHE_HOME, never the user's), so three rows:
 *       forwardFirstRun   the cache emptied before each run (new weights): read the .pth, export, optimise, run;
 *                         only a marker is written (the graph is kept from the second run on);
 *       forwardSecondRun  at once after the first run: the same, and ONNX Runtime's optimised graph written (at once
 *                         after a plain run is its best case: 3.3-3.8 s against 4.0-4.8 s after an idle pause here);
 *       forward           the cache warm (every later run on the same weights file): no export, no optimisation;
 *       forwardNoCache    `--no-onnx-cache`: export and optimise every time, nothing written.
 *     ratioForwardOursOverTorch is the warm-cache row's; ratioForwardFirstRunOverTorch the first run's, and so on.
 *     On Linux the launcher runs forward with glibc's large-page tunable (bin/relaunch.js), so two more rows show what
 *     that does: forwardFirstRunSmallPages (NEXTRAY_HUGEPAGES=0, the cache emptied first) and torchForwardHugetlb
 *     (PyTorch with the same GLIBC_TUNABLES=glibc.malloc.hugetlb=1), with their ratios.
 *
 *   npm run build && node bench/startup.mjs [--runs 5] [--no-torch] [--keep DIR]
 *   (or: npm run bench -- --only startup)
 *
 * Set-up (not timed): PyTorch writes a seeded ResNet-152 (torchvision's layout and keys, 1000-class head) as a .pth and a seeded
 * x.npy. Without PyTorch only the --version / --help rows are measured.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = fileURLToPath(new URL('..', import.meta.url));
const { values: a } = parseArgs({
  options: {
    runs: { type: 'string', default: '5' },
    'no-torch': { type: 'boolean', default: false },
    keep: { type: 'string' },
  },
});
const runs = Number(a.runs);
if (!Number.isInteger(runs) || runs < 1) {
  console.error(`bench startup: --runs ${a.runs}: a whole number >= 1`);
  process.exit(2);
}
const PYTHON = '/usr/bin/python3';
const threads = cpus().length;
const dir = a.keep ?? mkdtempSync(join(tmpdir(), 'nextray-bench-startup-'));
mkdirSync(dir, { recursive: true });
const log = (s) => process.stderr.write(`bench startup: ${s}\n`);
const r3 = (x) => Math.round(x * 1000) / 1000;

const cacheHome = join(dir, 'xdg-cache');
function timed(cmd, args, env = {}) {
  const t0 = performance.now();
  const r = spawnSync(cmd, args, { cwd: root, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, env: { ...process.env, XDG_CACHE_HOME: cacheHome, ...env } });
  const seconds = (performance.now() - t0) / 1000;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status}): ${(r.stderr || '').trim().split('\n').slice(-3).join(' | ')}`);
  return seconds;
}

/** A float32 .npy's values (little-endian, C order), enough to compare two logit arrays. */
function readNpyF32(path) {
  const b = readFileSync(path);
  const headerLen = b.readUInt16LE(8);
  const header = b.subarray(10, 10 + headerLen).toString('latin1');
  if (!header.includes("'<f4'")) throw new Error(`${path}: expected float32 .npy, header ${header}`);
  const start = 10 + headerLen;
  return new Float32Array(b.buffer.slice(b.byteOffset + start, b.byteOffset + b.length));
}

// torchvision's ResNet-152 (models/resnet.py: Bottleneck with the stride on its 3x3 convolution, layers 3-8-36-3,
// the same state_dict keys), written out so that the bench needs only torch: Debian's python3-torch comes without
// torchvision on some machines.
const TORCH_RESNET152 = `
import torch.nn as nn
class Bottleneck(nn.Module):
    def __init__(self, inplanes, planes, stride, downsample):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)
class ResNet(nn.Module):
    def __init__(self, layers=(3, 8, 36, 3), num_classes=1000):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._layer(64, layers[0], 1)
        self.layer2 = self._layer(128, layers[1], 2)
        self.layer3 = self._layer(256, layers[2], 2)
        self.layer4 = self._layer(512, layers[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(2048, num_classes)
    def _layer(self, planes, blocks, stride):
        down = None
        if stride != 1 or self.inplanes != planes * 4:
            down = nn.Sequential(nn.Conv2d(self.inplanes, planes * 4, 1, stride, bias=False), nn.BatchNorm2d(planes * 4))
        out = [Bottleneck(self.inplanes, planes, stride, down)]
        self.inplanes = planes * 4
        out += [Bottleneck(self.inplanes, planes, 1, None) for _ in range(1, blocks)]
        return nn.Sequential(*out)
    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))
`;
// The PyTorch side: what `nextray forward` does, as one Python process.
const TORCH_FORWARD = `
import sys, numpy as np, torch
torch.set_num_threads(int(sys.argv[4]))
${TORCH_RESNET152}
m = ResNet()
m.load_state_dict(torch.load(sys.argv[1]))
m.eval()
with torch.no_grad():
    y = m(torch.from_numpy(np.load(sys.argv[2])))
np.save(sys.argv[3], y.numpy().astype(np.float32))
`;
const TORCH_SETUP = `
import sys, numpy as np, torch
import { median } from './lib/util.mjs';
${TORCH_RESNET152}
torch.manual_seed(0)
torch.save(ResNet().state_dict(), sys.argv[1])
np.save(sys.argv[2], np.random.default_rng(0).standard_normal((4, 3, 320, 320)).astype(np.float32))
`;

const report = {
  date: new Date().toISOString(),
  machine: {
    cpu: cpus()[0]?.model,
    cores: cpus().length,
    glibc: process.report?.getReport?.().header?.glibcVersionRuntime ?? null,
    transparentHugePages: (() => {
      try {
        return readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8').trim();
      } catch {
        return null;
      }
    })(),
    loadAverageAtStart: loadavg().map((l) => Math.round(l * 100) / 100),
  },
  settings: { runs, forward: { arch: 'resnet152', input: [4, 3, 320, 320], threads } },
};
try {
  const haveTorch = !a['no-torch'] && spawnSync(PYTHON, ['-c', 'import torch, numpy'], { encoding: 'utf8' }).status === 0;
  const pth = join(dir, 'resnet152.pth');
  const x = join(dir, 'x.npy');
  const yOurs = join(dir, 'y-ours.npy');
  const yTorch = join(dir, 'y-torch.npy');
  if (haveTorch) {
    log('PyTorch writes the seeded ResNet-152 and x.npy ...');
    timed(PYTHON, ['-c', TORCH_SETUP, pth, x]);
  } else {
    report.torch = `PyTorch skipped: ${a['no-torch'] ? '--no-torch' : `${PYTHON} cannot import torch/numpy`}; forward not measured`;
  }

  const commands = {
    version: { cmd: process.execPath, args: ['bin/nextray.js', '--version'], shown: 'nextray --version' },
    help: { cmd: process.execPath, args: ['bin/nextray.js', '--help'], shown: 'nextray --help' },
    npxVersion: { cmd: 'npx', args: ['--no-install', 'nextray', '--version'], shown: 'npx nextray --version' },
    nodeFloor: { cmd: process.execPath, args: ['-e', '0'], shown: 'node -e 0' },
  };
  if (haveTorch) {
    const fwd = (out) => ['bin/nextray.js', 'forward', '--arch', 'resnet152', '--weights', pth, '--input', x, '--output', out, '--threads', String(threads)];
    const shown = `nextray forward --arch resnet152 --weights resnet152.pth --input x.npy --output y.npy --threads ${threads}`;
    commands.forwardFirstRun = { cmd: process.execPath, args: fwd(`${yOurs}.first.npy`), shown: `${shown} (optimised-graph cache emptied first)`, emptyCache: true };
    commands.forwardSecondRun = { cmd: process.execPath, args: fwd(`${yOurs}.second.npy`), shown: `${shown} (second run on the weights: writes the cache)` };
    commands.forward = { cmd: process.execPath, args: fwd(yOurs), shown: `${shown} (optimised-graph cache warm)` };
    commands.forwardNoCache = { cmd: process.execPath, args: [...fwd(`${yOurs}.nocache.npy`), '--no-onnx-cache'], shown: `${shown} --no-onnx-cache` };
    commands.forwardFirstRunSmallPages = { ...commands.forwardFirstRun, args: fwd(`${yOurs}.small.npy`), env: { NEXTRAY_HUGEPAGES: '0' }, shown: `NEXTRAY_HUGEPAGES=0 ${commands.forwardFirstRun.shown}` };
    const torchShown = `python3 -c <import torch; torchvision's ResNet-152; load resnet152.pth; forward x.npy; save y.npy; ${threads} threads>`;
    commands.torchForward = { cmd: PYTHON, args: ['-c', TORCH_FORWARD, pth, x, yTorch, String(threads)], shown: torchShown };
    // PyTorch given the same large-page tunable the launcher gives forward (bin/relaunch.js), for a like-for-like row.
    commands.torchForwardHugetlb = { cmd: PYTHON, args: ['-c', TORCH_FORWARD, pth, x, `${yTorch}.huge.npy`, String(threads)], env: { GLIBC_TUNABLES: 'glibc.malloc.hugetlb=1' }, shown: `GLIBC_TUNABLES=glibc.malloc.hugetlb=1 ${torchShown}` };
  }
  log('warm-up (page cache) ...');
  const emptyCache = () => rmSync(cacheHome, { recursive: true, force: true });
  for (const c of Object.values(commands)) {
    if (c.emptyCache) emptyCache();
    timed(c.cmd, c.args, c.env);
  }
  const times = Object.fromEntries(Object.keys(commands).map((k) => [k, []]));
  for (let i = 0; i < runs; i++) {
    log(`round ${i + 1}/${runs} ...`);
    for (const [k, c] of Object.entries(commands)) {
      if (c.emptyCache) emptyCache();
      times[k].push(timed(c.cmd, c.args, c.env));
    }
  }
  report.results = Object.fromEntries(
    Object.entries(commands).map(([k, c]) => [k, { median: r3(median(times[k])), runs: times[k].map(r3), command: c.shown }]),
  );
  if (haveTorch) {
    const ours = readNpyF32(yOurs);
    const ref = readNpyF32(yTorch);
    let diff = 0;
    let scale = 0;
    for (let i = 0; i < ref.length; i++) {
      diff = Math.max(diff, Math.abs(ours[i] - ref[i]));
      scale = Math.max(scale, Math.abs(ref[i]));
    }
    const same = (p) => readFileSync(p).equals(readFileSync(yOurs));
    report.forwardAgreement = {
      logits: ref.length,
      sameLength: ours.length === ref.length,
      maxAbsDiffOverMaxAbsLogit: Number((diff / scale).toExponential(2)),
      allForwardOutputsByteIdenticalToWarm: same(`${yOurs}.first.npy`) && same(`${yOurs}.second.npy`) && same(`${yOurs}.nocache.npy`) && same(`${yOurs}.small.npy`),
    };
    report.ratioForwardOursOverTorch = r3(median(times.forward) / median(times.torchForward));
    report.ratioForwardFirstRunOverTorch = r3(median(times.forwardFirstRun) / median(times.torchForward));
    report.ratioForwardSecondRunOverTorch = r3(median(times.forwardSecondRun) / median(times.torchForward));
    report.ratioForwardNoCacheOverTorch = r3(median(times.forwardNoCache) / median(times.torchForward));
    report.ratioForwardFirstRunSmallPagesOverTorch = r3(median(times.forwardFirstRunSmallPages) / median(times.torchForward));
    report.ratioForwardFirstRunOverTorchHugetlb = r3(median(times.forwardFirstRun) / median(times.torchForwardHugetlb));
  }
  report.machine.loadAverageAtEnd = loadavg().map((l) => Math.round(l * 100) / 100);
  console.log(JSON.stringify(report, null, 2));
} finally {
  if (!a.keep) rmSync(dir, { recursive: true, force: true });
}
