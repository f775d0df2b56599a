/**
 * `nextray app build --model M --out site/`: the offline web app as a static folder — the page (an installable web
 * app with a service worker), one onnxruntime-web runtime build (the plain wasm one; --webgpu adds the WebGPU one),
 * the model (model.onnx) and its description (model.json: SHA-256, size, runtimes). The folder is built next to the
 * target and renamed into place, so a half-written site never appears.
 *
 * `nextray app serve DIR`: serves such a folder on 127.0.0.1 with the headers that make the page cross-origin
 * isolated (COOP/COEP: wasm threads) and keep it to its own origin (the CSP of `nextray serve`). Any static server
 * works too: without COOP/COEP the page's service worker adds them from the second load on; `_headers` asks hosts
 * that read it (Netlify, Cloudflare Pages) for them directly.
 */
import type { Command } from 'commander';
import { cpSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { CliError, parseIntOption, printJson } from './common.js';
import { defaultAppDir, isLoopback, SECURITY_HEADERS } from '../serve/server.js';
import { describeModel, ORT_BUILDS, runtimesIn } from '../serve/model-description.js';
import { readModelSkeleton } from '../models/onnx/skeleton.js';
import { parseClassifierInfo } from '../models/onnx/info.js';
import { ProtoDecodeError } from '../models/onnx/proto.js';

interface AppBuildFlags {
  model: string;
  out: string;
  webgpu?: boolean;
  force?: boolean;
  json?: boolean;
}

interface AppServeFlags {
  port: number;
  json?: boolean;
}

const HEADERS = `/*
  Cross-Origin-Opener-Policy: same-origin
  Cross-Origin-Embedder-Policy: require-corp
  X-Content-Type-Options: nosniff
`;

const README = `neXt-Ray offline page. Serve this folder over HTTP and open the address in a browser:
  nextray app serve .          (127.0.0.1, with the headers that let the page use every CPU core)
or any static web server, e.g. python3 -m http.server 8000, then open http://127.0.0.1:8000/
Nothing is fetched from the internet. After one visit the page works with the network off (it is an installable
web app). Browsers do not run module scripts or fetch files from file:// pages, so opening index.html directly from
disk does not work; the page says so.
`;

function folderBytes(dir: string): { files: number; bytes: number } {
  let files = 0;
  let bytes = 0;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const st = statSync(p);
    if (st.isDirectory()) {
      const sub = folderBytes(p);
      files += sub.files;
      bytes += sub.bytes;
    } else {
      files++;
      bytes += st.size;
    }
  }
  return { files, bytes };
}

export interface SiteSummary {
  out: string;
  files: number;
  bytes: number;
  arch: string;
  sha256: string;
  runtimes: string[];
}

export async function buildSite(modelPath: string, out: string, opts: { force?: boolean; appDir?: string; webgpu?: boolean } = {}): Promise<SiteSummary> {
  const appDir = opts.appDir ?? defaultAppDir();
  if (!existsSync(join(appDir, 'index.html'))) throw new CliError(`the web app is not built (${appDir}/index.html missing); run npm run build`, 1);
  let info;
  try {
    info = parseClassifierInfo(readModelSkeleton(modelPath), modelPath);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOENT') throw new CliError(`${modelPath}: file not found`, 2, 'give the .onnx file written by `nextray export`');
    if (err instanceof ProtoDecodeError) throw new CliError(`${modelPath}: not a readable ONNX model: ${err.message}`, 2, 'give the .onnx file written by `nextray export`');
    throw err;
  }
  if (info.head.kind !== 'binary') throw new CliError(`${modelPath}: the page needs a normal/abnormal model (binary head); this one has the ${info.head.kind} head`, 1);
  const wanted: (keyof typeof ORT_BUILDS)[] = opts.webgpu ? ['wasm', 'webgpu'] : ['wasm'];
  const missing = wanted.filter((b) => !runtimesIn(appDir).includes(b));
  if (missing.length) throw new CliError(`the web app in ${appDir} lacks the ${missing.join(', ')} runtime (ort/); run npm run build`, 1);
  const target = resolve(out);
  if (existsSync(target) && readdirSync(target).length > 0 && !opts.force) {
    throw new CliError(`${out} exists and is not empty; give --force to replace it`);
  }
  mkdirSync(dirname(target), { recursive: true });
  const tmp = join(dirname(target), `.${basename(target)}.${process.pid}.tmp`);
  rmSync(tmp, { recursive: true, force: true });
  try {
    // The page and the runtime build(s) it will load; nothing else from ort/.
    cpSync(appDir, tmp, { recursive: true, filter: (src) => !src.startsWith(join(appDir, 'ort') + '/') });
    mkdirSync(join(tmp, 'ort'), { recursive: true });
    for (const b of wanted) for (const f of ORT_BUILDS[b]) cpSync(join(appDir, 'ort', f), join(tmp, 'ort', f));
    cpSync(modelPath, join(tmp, 'model.onnx'));
    const description = await describeModel({ path: join(tmp, 'model.onnx') }, tmp, basename(modelPath).replace(/\.onnx$/i, ''));
    writeFileSync(join(tmp, 'model.json'), JSON.stringify(description, null, 2) + '\n');
    writeFileSync(join(tmp, '_headers'), HEADERS);
    writeFileSync(join(tmp, 'README.txt'), README);
    rmSync(target, { recursive: true, force: true });
    renameSync(tmp, target);
    return { out: target, ...folderBytes(target), arch: info.arch, sha256: description.sha256, runtimes: description.runtimes };
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
}

/** Serves a built app folder on 127.0.0.1 (see the module comment); resolves with the address once listening. */
export async function serveSite(dir: string, port: number): Promise<{ url: string; close: () => Promise<void> }> {
  const root = resolve(dir);
  if (!existsSync(join(root, 'index.html'))) {
    throw new CliError(`${dir}: no index.html: not a web app folder`, 2, 'write one with nextray app build --model model.onnx --out DIR');
  }
  const { default: Fastify } = await import('fastify');
  const { default: fastifyStatic } = await import('@fastify/static');
  const app = Fastify({ logger: false });
  app.addHook('onRequest', async (req, reply) => {
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) reply.header(k, v);
    // Only this computer's own names: a web page elsewhere that points a DNS name at 127.0.0.1 (DNS rebinding)
    // gets nothing from it, not even the model file.
    const host = (req.headers.host ?? '').replace(/:\d+$/, '');
    if (!isLoopback(host)) return reply.code(421).send({ error: `this server answers only to 127.0.0.1 or localhost, not ${JSON.stringify(host)}` });
  });
  // The description and the model must never come from an HTTP cache: the page checks them to notice a new model.
  await app.register(fastifyStatic, {
    root,
    prefix: '/',
    index: ['index.html'],
    setHeaders: (res, path) => {
      if (/(^|\/)(model\.json|model\.onnx|sw\.js)$/.test(path)) res.header('cache-control', 'no-cache');
    },
  });
  const url = await app.listen({ host: '127.0.0.1', port });
  return { url, close: () => app.close() };
}

export function registerApp(program: Command): void {
  const app = program.command('app').description('the offline web app: write it as a static folder, or serve such a folder');
  app
    .command('build')
    .description('write the web app with a model as a static folder (installable page + one onnxruntime-web runtime + model.onnx) for any static host')
    .requiredOption('--model <file>', 'exported model (.onnx from nextray export)')
    .requiredOption('--out <dir>', 'folder to write (replaced with --force)')
    .option('--webgpu', 'also ship the WebGPU runtime build (27 MB), used where the browser offers a GPU; default: the wasm build only (14 MB)')
    .option('--force', 'replace a non-empty --out folder')
    .option('--json', 'print what was written as JSON')
    .addHelpText(
      'after',
      `
Exit status: 0 written, 1 the model or the web app cannot be used, 2 usage (e.g. --out not empty without --force).

Examples:
  nextray app build --model demo.onnx --out site/
  nextray app serve site/                   # then open the address it prints
  nextray app build --model model.onnx --out site/ --webgpu --force`,
    )
    .action(async (flags: AppBuildFlags) => {
      const r = await buildSite(flags.model, flags.out, { ...(flags.force ? { force: true } : {}), ...(flags.webgpu ? { webgpu: true } : {}) });
      if (flags.json) printJson(r);
      else process.stdout.write(`wrote ${r.out}: ${r.files} files, ${(r.bytes / 1e6).toFixed(1)} MB (${r.arch}; runtime: ${r.runtimes.join(' + ')}); serve it with nextray app serve ${flags.out}\n`);
    });
  app
    .command('serve')
    .description('serve a folder written by nextray app build on 127.0.0.1, with the headers that give the page every CPU core')
    .argument('<dir>', 'the folder (from nextray app build)')
    .option('--port <n>', 'TCP port (0 = any free port)', parseIntOption('--port', 0, 65535), 8000)
    .option('--json', 'print the address as one JSON line once listening')
    .addHelpText(
      'after',
      `
Serves only 127.0.0.1 (this computer). Ctrl-C (SIGINT) or SIGTERM stops it.
Exit status: 0 stopped, 2 usage (not an app folder, port in use).

Examples:
  nextray app serve site/
  nextray app serve site/ --port 0 --json`,
    )
    .action(async (dir: string, flags: AppServeFlags) => {
      let s: Awaited<ReturnType<typeof serveSite>>;
      try {
        s = await serveSite(dir, flags.port);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') throw new CliError(`port ${flags.port} is in use`, 2, 'give another with --port, or --port 0 for any free one');
        throw err;
      }
      if (flags.json) process.stdout.write(JSON.stringify({ url: s.url, dir: resolve(dir) }) + '\n');
      else process.stderr.write(`nextray app serve: ${resolve(dir)} on ${s.url}/  (Ctrl-C to stop)\n`);
      await new Promise<void>((done) => {
        const stop = (): void => void s.close().then(done, done);
        process.once('SIGTERM', stop);
        process.once('SIGINT', stop);
      });
    });
}
