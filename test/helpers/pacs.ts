/**
 * Real servers for the PACS tests, started by the test itself: Debian's Orthanc (with its DICOMweb plugin) and
 * redis-server, each on 127.0.0.1 with random free ports, a temporary config and storage folder, and stopped after.
 * Images reach Orthanc as from a modality: dcmtk's storescu over C-STORE. Study files are written with
 * test/helpers/dicom-writer.ts from the synthetic generator's renderer (the pixels of its PNGs).
 *
 * A missing binary skips the test with the reason; NEXTRAY_REQUIRE_PACS=1 (set by .ci/run, which installs them)
 * turns that into a failure.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { designStudy, renderImage } from '../../src/data/synth/index.js';
import { readDicomHeader } from '../../src/data/dicom/index.js';
import { writeDicom, type DicomElement } from './dicom-writer.js';

export const ORTHANC_BIN = '/usr/sbin/Orthanc';
const DICOMWEB_PLUGINS = ['/usr/share/orthanc/plugins/libOrthancDicomWeb.so', '/usr/lib/orthanc/libOrthancDicomWeb.so.1.7'];

function has(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

export function dicomwebPlugin(): string | null {
  return DICOMWEB_PLUGINS.find((p) => existsSync(p)) ?? null;
}

/** false when everything is there, else why the test skips (or throws under NEXTRAY_REQUIRE_PACS=1). */
export function pacsSkip(needs: ReadonlyArray<'orthanc' | 'dicomweb' | 'storescu' | 'redis' | 'dciodvfy' | 'dcmcjpeg' | 'gdcmconv'>): string | false {
  const missing = needs.filter((n) =>
    n === 'orthanc' ? !existsSync(ORTHANC_BIN) : n === 'dicomweb' ? !dicomwebPlugin() : n === 'redis' ? !has('redis-server') : !has(n),
  );
  if (!missing.length) return false;
  const why = `needs ${missing.join(', ')} (Debian: orthanc, orthanc-dicomweb, dcmtk, redis-server, dicom3tools, libgdcm-tools)`;
  if (process.env.NEXTRAY_REQUIRE_PACS === '1') throw new Error(`NEXTRAY_REQUIRE_PACS=1 but a test ${why}`);
  return why;
}

/** A port that was free a moment ago (the OS picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what: string, ok: () => Promise<boolean>, child: ChildProcess, log: () => string, ms = 60_000): Promise<void> {
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    if (child.exitCode !== null) throw new Error(`${what} exited (${child.exitCode}) before it was ready:\n${log().slice(-3000)}`);
    if (await ok().catch(() => false)) return;
    await sleep(200);
  }
  throw new Error(`${what} not ready after ${ms} ms:\n${log().slice(-3000)}`);
}

export interface OrthancServer {
  url: string;
  dicomweb: string;
  dicomPort: number;
  aet: string;
  user: string;
  password: string;
  /** GET/POST with the credentials; JSON answers parsed. */
  get<T>(path: string): Promise<T>;
  stop(): Promise<void>;
  log(): string;
}

export async function startOrthanc(dir: string, opts: { stableAge?: number } = {}): Promise<OrthancServer> {
  const plugin = dicomwebPlugin();
  const user = 'nextray';
  const password = `pw-${Math.random().toString(36).slice(2)}`;
  let lastError = '';
  for (let tries = 0; tries < 3; tries++) {
    const httpPort = await freePort();
    const dicomPort = await freePort();
    const storage = join(dir, `orthanc-${httpPort}`);
    mkdirSync(storage, { recursive: true });
    const config = {
      Name: 'nextray-test',
      StorageDirectory: storage,
      IndexDirectory: storage,
      HttpPort: httpPort,
      DicomPort: dicomPort,
      DicomAet: 'ORTHANC',
      RemoteAccessAllowed: false,
      AuthenticationEnabled: true,
      RegisteredUsers: { [user]: password },
      StableAge: opts.stableAge ?? 1,
      DicomAlwaysAllowStore: true,
      DicomCheckCalledAet: false,
      SaveJobs: false,
      ConcurrentJobs: 1,
      HttpThreadsCount: 8,
      Plugins: plugin ? [plugin] : [],
      DicomWeb: { Enable: true, Root: '/dicom-web/', EnableWado: false },
    };
    const file = join(storage, 'config.json');
    writeFileSync(file, JSON.stringify(config, null, 2));
    const child = spawn(ORTHANC_BIN, [file], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const url = `http://127.0.0.1:${httpPort}/`;
    const auth = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
    const get = async <T>(path: string): Promise<T> => {
      const r = await fetch(url + path, { headers: { authorization: auth } });
      if (!r.ok) throw new Error(`GET ${path}: HTTP ${r.status}`);
      return (await r.json()) as T;
    };
    try {
      await waitFor('Orthanc', async () => (await get<{ Version?: string }>('system')).Version !== undefined, child, () => out);
    } catch (err) {
      lastError = (err as Error).message;
      child.kill('SIGKILL');
      continue;
    }
    return {
      url,
      dicomweb: `${url}dicom-web/`,
      dicomPort,
      aet: 'ORTHANC',
      user,
      password,
      get,
      log: () => out,
      stop: () =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null) return resolve();
          child.once('exit', () => resolve());
          child.kill('SIGTERM');
          setTimeout(() => child.kill('SIGKILL'), 10_000).unref();
        }),
    };
  }
  throw new Error(`Orthanc did not start: ${lastError}`);
}

export interface RedisServer {
  url: string;
  port: number;
  stop(): Promise<void>;
}

/** redis-server on a random port, no persistence (no RDB snapshots, no AOF), its folder a temporary one. */
export async function startRedis(dir: string): Promise<RedisServer> {
  let lastError = '';
  for (let tries = 0; tries < 3; tries++) {
    const port = await freePort();
    const d = join(dir, `redis-${port}`);
    mkdirSync(d, { recursive: true });
    const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', d, '--save', '', '--appendonly', 'no', '--protected-mode', 'yes', '--maxmemory-policy', 'noeviction'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr!.on('data', (b: Buffer) => (out += b.toString()));
    try {
      await waitFor('redis-server', async () => /Ready to accept connections/.test(out), child, () => out, 30_000);
    } catch (err) {
      lastError = (err as Error).message;
      child.kill('SIGKILL');
      continue;
    }
    return {
      url: `redis://127.0.0.1:${port}`,
      port,
      stop: () =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null) return resolve();
          child.once('exit', () => resolve());
          child.kill('SIGTERM');
          setTimeout(() => child.kill('SIGKILL'), 10_000).unref();
        }),
    };
  }
  throw new Error(`redis-server did not start: ${lastError}`);
}

/** storescu's option proposing each compressed transfer syntax (it proposes only uncompressed ones unless told). */
const PROPOSE: Readonly<Record<string, string>> = {
  '1.2.840.10008.1.2.4.70': '-xs',
  '1.2.840.10008.1.2.4.50': '-xy',
  '1.2.840.10008.1.2.4.51': '-xx',
  '1.2.840.10008.1.2.4.80': '-xt',
  '1.2.840.10008.1.2.4.81': '-xu',
  '1.2.840.10008.1.2.4.90': '-xv',
  '1.2.840.10008.1.2.4.91': '-xw',
  '1.2.840.10008.1.2.4.100': '-xm',
};

/** A file's Transfer Syntax UID, from its File Meta group (0002,0010). */
function transferSyntaxOf(file: string): string {
  return readDicomHeader(new Uint8Array(readFileSync(file)), { source: file }).transferSyntax;
}

/**
 * Sends files to Orthanc over C-STORE, as a modality does (dcmtk's storescu), each in its own transfer syntax: one
 * association per syntax, proposing it.
 */
export function storescu(server: Pick<OrthancServer, 'dicomPort' | 'aet'>, files: readonly string[]): void {
  const bySyntax = new Map<string, string[]>();
  for (const f of files) {
    const ts = transferSyntaxOf(f);
    bySyntax.set(ts, [...(bySyntax.get(ts) ?? []), f]);
  }
  for (const [ts, group] of bySyntax) {
    const propose = PROPOSE[ts] ? [PROPOSE[ts]!] : [];
    const r = spawnSync('storescu', ['-aet', 'MODALITY', '-aec', server.aet, ...propose, '127.0.0.1', String(server.dicomPort), ...group], { encoding: 'utf8' });
    if (r.status !== 0 || /E: /.test(r.stderr)) throw new Error(`storescu failed (${r.status}, ${ts}): ${r.stderr}${r.stdout}`);
  }
}

const el = (group: number, element: number, vr: DicomElement['vr'], value: DicomElement['value']): DicomElement => ({ group, element, vr, value });

export interface StudyFiles {
  studyUid: string;
  files: string[];
  sopUids: string[];
}

/**
 * A radiograph study of `views` DX views, written as DICOM (explicit VR LE) from the synthetic generator's renderer:
 * `size` x `size` 8-bit pixels, upper-extremity body part, PA/LAT views, one series.
 */
export function writeStudy(dir: string, n: number, opts: { views?: number; size?: number; seed?: number; prefix?: string } = {}): StudyFiles {
  const views = opts.views ?? 2;
  const size = opts.size ?? 48;
  const root = `1.2.826.0.1.3680043.9.7.7${opts.prefix ?? ''}`;
  const studyUid = `${root}.${n}`;
  const seriesUid = `${studyUid}.1`;
  const design = designStudy(opts.seed ?? 11, `study${n}`, 'XR_WRIST', n % 2 === 0 ? 1 : 0, views);
  mkdirSync(dir, { recursive: true });
  const files: string[] = [];
  const sopUids: string[] = [];
  for (let v = 0; v < views; v++) {
    const img = renderImage(opts.seed ?? 11, design, v, `study${n}/image${v + 1}.png`, size);
    const sop = `${seriesUid}.${v + 1}`;
    const file = join(dir, `s${n}-v${v + 1}.dcm`);
    writeFileSync(
      file,
      writeDicom({
        rows: size,
        columns: size,
        bitsAllocated: 8,
        pixels: img.pixels,
        studyUid,
        extra: [
          el(0x0008, 0x0018, 'UI', sop),
          el(0x0008, 0x0060, 'CS', 'DX'),
          el(0x0020, 0x000e, 'UI', seriesUid),
          el(0x0018, 0x0015, 'CS', 'WRIST'),
          el(0x0018, 0x5101, 'CS', v === 0 ? 'PA' : 'LL'),
          el(0x0020, 0x0062, 'CS', 'L'),
          el(0x0010, 0x0010, 'PN', `Synth^Patient${n}`),
          el(0x0010, 0x0020, 'LO', `P${n}`),
          el(0x0020, 0x0010, 'SH', `S${n}`),
          el(0x0020, 0x0011, 'IS', '1'),
          el(0x0020, 0x0013, 'IS', String(v + 1)),
        ],
      }),
    );
    files.push(file);
    sopUids.push(sop);
  }
  return { studyUid, files, sopUids };
}

/** Orthanc: the SR instances (Modality SR series) of a study, by Study Instance UID. */
export async function orthancReports(o: OrthancServer, studyUid: string): Promise<string[]> {
  const found = await (await fetch(`${o.url}tools/lookup`, { method: 'POST', body: studyUid, headers: { authorization: `Basic ${Buffer.from(`${o.user}:${o.password}`).toString('base64')}` } })).json() as Array<{ ID: string; Type: string }>;
  const id = found.find((f) => f.Type === 'Study')?.ID;
  if (!id) return [];
  const series = await o.get<Array<{ MainDicomTags: { Modality?: string }; Instances: string[] }>>(`studies/${id}/series`);
  return series.filter((s) => s.MainDicomTags.Modality === 'SR').flatMap((s) => s.Instances);
}

/** Waits until Orthanc has announced every study (by Study Instance UID) as stable (a StableStudy change). */
export async function waitStable(o: OrthancServer, studyUids: readonly string[], ms = 90_000): Promise<void> {
  const t0 = Date.now();
  for (;;) {
    const studies = await o.get<string[]>('studies');
    const uids = new Map<string, boolean>();
    for (const id of studies) {
      const s = await o.get<{ MainDicomTags: { StudyInstanceUID: string }; IsStable: boolean }>(`studies/${id}`);
      uids.set(s.MainDicomTags.StudyInstanceUID, s.IsStable);
    }
    if (studyUids.every((u) => uids.get(u) === true)) return;
    if (Date.now() - t0 > ms) throw new Error(`studies not stable after ${ms} ms: ${studyUids.filter((u) => uids.get(u) !== true).join(', ')}`);
    await sleep(300);
  }
}

export interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  killed: boolean;
}

/**
 * Runs `nextray ARGS` (the compiled CLI) in a child process; with `killWhen`, sends SIGKILL as soon as its stderr
 * matches (the worker's fault hold, NEXTRAY_PACS_FAULT_HOLD, keeps it at that point until then).
 */
export function runNextray(repoRoot: string, args: string[], opts: { env?: NodeJS.ProcessEnv; killWhen?: RegExp; timeoutMs?: number } = {}): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(repoRoot, 'bin', 'nextray.js'), ...args], { env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let killed = false;
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (opts.killWhen && !killed && opts.killWhen.test(stderr)) {
        killed = true;
        child.kill('SIGKILL');
      }
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, killed });
    });
  });
}
