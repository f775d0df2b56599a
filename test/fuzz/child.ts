/**
 * The fuzz campaign's worker process: runs one case at a time for the parent (campaign.ts) and says how it ended.
 * A case is rebuilt here from (target, seed, index), so a native crash (a segfault in a decoder) costs only this
 * process; the parent counts it, names the case and starts another worker.
 *
 * Outcomes: 'ok' (accepted), 'clean' (refused with the project's error: a NextrayError, or a 4xx JSON answer), 'crash'
 * (any other exception, a 5xx, a stack trace in the server log, no answer at all), 'bypass' (a protected route
 * answered without the token). Hangs are the parent's to see (no reply within the case time limit).
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { decodeGrey, ImageError } from '../../src/data/images.js';
import { DicomError, readDicom } from '../../src/data/dicom/index.js';
import { makePreprocessing, preprocessGrey } from '../../src/data/preprocess.js';
import { loadMuraDataset, muraCsvNames, type MuraDataset } from '../../src/data/mura.js';
import { createSplit, loadSplit, writeSplit } from '../../src/data/splits.js';
import { nodeFrameDecoders } from '../../src/data/dicom/node-codecs.js';
import { buildServer } from '../../src/serve/server.js';
import type { Predictor } from '../../src/serve/predictor.js';
import { NextrayError } from '../../src/util/errors.js';
import { Rng } from '../../src/util/rng.js';
import { tempDir } from '../helpers/paths.js';
import { httpRequest, rawRequest } from '../helpers/raw-http.js';
import { writeTinyDataset } from '../train/fixture.js';
import { imageCase, makeBases, multipartCase, mutateText, pathCase, type Bases, type Target } from './cases.js';

export interface CaseRequest {
  /** 'selftest' checks the campaign itself: index 0 kills the worker (as a native crash would), 1 never answers, 2 throws a TypeError. */
  target: Target | 'selftest';
  seed: number;
  index: number;
}

export interface CaseResult {
  outcome: 'ok' | 'clean' | 'crash' | 'bypass' | 'hang';
  detail?: string;
}

export const FUZZ_TOKEN = 'fuzz-token-0123456789';
const PRE = makePreprocessing({ size: 32 });

const predictor: Predictor = {
  model: { name: 'fuzz', sha256: '0', arch: 'fake', preprocessing: PRE, threshold: 0.5, engine: 'none', outputs: [], metadata: {}, inputSize: 32 },
  onnx: { bytes: new Uint8Array([1, 2, 3]) },
  predict: async () => ({ probability: 0.5, decision: 'normal', threshold: 0.5, ood: null, heatmap: null, warnings: [], width: 1, height: 1, format: 'png', seconds: 0 }),
  release: async () => {},
};

let bases: Promise<Bases> | undefined;
// Inside the campaign's own temporary folder when there is one: the campaign removes it even after a killed worker.
const tmp = (() => {
  const parent = process.env.NEXTRAY_FUZZ_TMP;
  if (!parent) return tempDir('nextray-fuzz-');
  const dir = mkdtempSync(join(parent, 'worker-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
})();
process.on('exit', () => tmp.cleanup());

interface Data {
  dir: string;
  csvs: Map<string, Buffer>;
  dataset: MuraDataset;
  splitJson: string;
  splitCsv: string;
}
let data: Promise<Data> | undefined;

async function dataset(): Promise<Data> {
  const dir = join(tmp.dir, 'data');
  await writeTinyDataset(dir, { trainPatients: 6, validPatients: 8, size: 24 });
  const root = join(dir, 'MURA-v1.1');
  const csvs = new Map(muraCsvNames().map((n) => [n, readFileSync(join(root, n))]));
  const ds = await loadMuraDataset(dir);
  const split = createSplit(ds, { seed: 3, valFraction: 0.5 });
  const splitJson = join(tmp.dir, 'split.json');
  const splitCsv = join(tmp.dir, 'split.csv');
  writeSplit(splitJson, split, ds, 'json');
  writeSplit(splitCsv, split, ds, 'csv');
  return { dir, csvs, dataset: ds, splitJson: readFileSync(splitJson, 'utf8'), splitCsv: readFileSync(splitCsv, 'utf8') };
}

interface Servers {
  open: FastifyInstance;
  openPort: number;
  guarded: FastifyInstance;
  guardedPort: number;
  log: string[];
}
let servers: Promise<Servers> | undefined;

async function startServers(): Promise<Servers> {
  const app = join(tmp.dir, 'app');
  mkdirSync(join(app, 'assets'), { recursive: true });
  writeFileSync(join(app, 'index.html'), '<!doctype html><p>app</p>');
  writeFileSync(join(app, 'assets', 'app.js'), '1');
  const log: string[] = [];
  const opts = { predictor, appDir: app, requestTimeoutMs: 1500, bodyLimit: 1 << 20, log: (l: string) => log.push(l) };
  const open = await buildServer(opts);
  await open.listen({ host: '127.0.0.1', port: 0 });
  const guarded = await buildServer({ ...opts, token: FUZZ_TOKEN });
  await guarded.listen({ host: '127.0.0.1', port: 0 });
  const port = (s: FastifyInstance) => (s.server.address() as { port: number }).port;
  return { open, openPort: port(open), guarded, guardedPort: port(guarded), log };
}

function classify(err: unknown): CaseResult {
  if (err instanceof NextrayError) return { outcome: 'clean' };
  return { outcome: 'crash', detail: err instanceof Error ? `${err.name}: ${err.message}\n${err.stack ?? ''}` : String(err) };
}

/** A server answer: 2xx ok, 4xx clean (with a JSON error), 5xx or a stack in the log a crash. */
function judgeAnswer(status: number, body: Buffer, log: string[], mark: number): CaseResult {
  const stack = log.slice(mark).find((l) => /^error:|\n\s+at /.test(l));
  if (stack) return { outcome: 'crash', detail: `stack trace in the server log: ${stack.slice(0, 300)}` };
  if (status >= 500) return { outcome: 'crash', detail: `HTTP ${status}: ${body.toString().slice(0, 200)}` };
  if (status >= 400) {
    const ct = body.toString();
    if (!ct.startsWith('{') && !ct.startsWith('<!doctype')) return { outcome: 'crash', detail: `HTTP ${status} without a JSON error: ${ct.slice(0, 100)}` };
    return { outcome: 'clean' };
  }
  return { outcome: 'ok' };
}

export async function runCase(req: CaseRequest): Promise<CaseResult> {
  const { target, seed, index } = req;
  if (target === 'selftest') {
    if (index === 0) process.kill(process.pid, 'SIGKILL'); // as a native crash ends it, without a core file
    if (index === 1) return new Promise<CaseResult>(() => undefined);
  }
  try {
    if (target === 'selftest') throw new TypeError('a bug, on purpose');
    if (target === 'png' || target === 'jpeg' || target === 'dicom') {
      bases ??= makeBases();
      const bytes = imageCase(target, seed, index, await bases);
      if (target === 'dicom') {
        const img = await readDicom(bytes, { source: `case${index}.dcm`, decoders: nodeFrameDecoders, maxPixels: 4_000_000 });
        preprocessGrey(img.grey, img.width, img.height, PRE);
      } else {
        const img = await decodeGrey(bytes, { maxPixels: 4_000_000 });
        preprocessGrey(img.data, img.width, img.height, PRE);
      }
      return { outcome: 'ok' };
    }
    if (target === 'csv' || target === 'split') {
      data ??= dataset();
      const d = await data;
      const rng = new Rng(`${seed}:${target}:${index}`);
      const root = join(d.dir, 'MURA-v1.1');
      if (target === 'csv') {
        const names = [...d.csvs.keys()];
        const name = names[rng.int(names.length)]!;
        try {
          writeFileSync(join(root, name), mutateText(rng, d.csvs.get(name)!.toString('utf8')));
          if (rng.chance(0.2)) writeFileSync(join(root, names[rng.int(names.length)]!), mutateText(rng, ''));
          await loadMuraDataset(d.dir);
        } finally {
          for (const [n, b] of d.csvs) writeFileSync(join(root, n), b);
        }
        return { outcome: 'ok' };
      }
      const json = rng.chance(0.6);
      const file = join(tmp.dir, `case.${json ? 'json' : 'csv'}`);
      let text = json ? d.splitJson : d.splitCsv;
      if (json && rng.chance(0.5)) {
        // Structural damage: a key dropped or given another type.
        const o = JSON.parse(text) as Record<string, unknown>;
        const keys = Object.keys(o);
        const k = keys[rng.int(keys.length)]!;
        const odd = [null, 1, 'x', [], {}, [1, 2], { patients: 'no' }, -1];
        if (rng.chance(0.5)) delete o[k];
        else o[k] = odd[rng.int(odd.length)];
        text = JSON.stringify(o);
      }
      writeFileSync(file, mutateText(rng, text));
      loadSplit(file, d.dataset);
      return { outcome: 'ok' };
    }
    servers ??= startServers();
    const s = await servers;
    const mark = s.log.length;
    if (target === 'multipart') {
      const c = multipartCase(seed, index, await (bases ??= makeBases()));
      const head = httpRequest('POST', '/v1/predict', s.openPort, { 'content-type': c.contentType, 'content-length': String(c.declaredLength ?? c.body.length) });
      const r = await rawRequest(s.openPort, Buffer.concat([head, c.body]), { timeoutMs: 8000 }).catch((e: Error) => e);
      if (r instanceof Error) return /no response within/.test(r.message) ? { outcome: 'hang', detail: r.message } : { outcome: 'crash', detail: `no answer: ${r.message}` };
      return judgeAnswer(r.status, r.body, s.log, mark);
    }
    const p = pathCase(seed, index, s.guardedPort);
    const headers: Record<string, string> = p.withToken ? { authorization: `Bearer ${FUZZ_TOKEN}` } : {};
    const body = p.method === 'POST' ? Buffer.from([0x89, 0x50, 0x4e, 0x47]) : undefined;
    if (body) headers['content-type'] = 'application/octet-stream';
    const r = await rawRequest(s.guardedPort, httpRequest(p.method, p.target, s.guardedPort, headers, body), { timeoutMs: 8000 }).catch((e: Error) => e);
    if (r instanceof Error) return /no response within/.test(r.message) ? { outcome: 'hang', detail: r.message } : { outcome: 'crash', detail: `no answer to ${p.method} ${JSON.stringify(p.target)}: ${r.message}` };
    if (!p.withToken && r.status < 400) return { outcome: 'bypass', detail: `${p.method} ${JSON.stringify(p.target)} answered ${r.status} without the token` };
    const judged = judgeAnswer(r.status, p.method === 'HEAD' ? Buffer.from('{}') : r.body, s.log, mark);
    return judged.outcome === 'crash' ? { ...judged, detail: `${p.method} ${JSON.stringify(p.target)}: ${judged.detail}` } : judged;
  } catch (err) {
    if (err instanceof ImageError || err instanceof DicomError) return { outcome: 'clean' };
    return classify(err);
  }
}

// The worker loop, when started by the campaign (fork with this flag).
if (process.argv.includes('--fuzz-child') && process.send) {
  process.on('disconnect', () => process.exit(0));
  process.on('message', (req: CaseRequest) => {
    void runCase(req).then((r) => process.send!(r));
  });
  process.send({ outcome: 'ok', detail: 'ready' } satisfies CaseResult);
}

/** Copies a case's input out for a bug report (`npm run fuzz -- --save DIR`). */
export async function caseInput(req: CaseRequest): Promise<{ name: string; bytes: Uint8Array } | undefined> {
  if (req.target === 'selftest') return undefined;
  if (req.target === 'png' || req.target === 'jpeg' || req.target === 'dicom') {
    const ext = req.target === 'dicom' ? 'dcm' : req.target === 'jpeg' ? 'jpg' : 'png';
    return { name: `${req.target}-${req.seed}-${req.index}.${ext}`, bytes: imageCase(req.target, req.seed, req.index, await (bases ??= makeBases())) };
  }
  if (req.target === 'multipart') {
    const c = multipartCase(req.seed, req.index, await (bases ??= makeBases()));
    return { name: `multipart-${req.seed}-${req.index}.body`, bytes: c.body };
  }
  return undefined;
}

