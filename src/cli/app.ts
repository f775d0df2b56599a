/**
 * `nextray app build --model M --out site/`: the offline web app as a static folder — the page, onnxruntime-web's
 * wasm runtime and the model (model.onnx) — for any static web host. The folder is built next to the target and
 * renamed into place, so a half-written site never appears.
 *
 * Static hosts rarely send COOP/COEP, so there the page runs onnxruntime-web on one thread; `_headers` asks hosts
 * that read it (Netlify, Cloudflare Pages) for cross-origin isolation, which enables threads.
 */
import type { Command } from 'commander';
import { cpSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { CliError, printJson } from './common.js';
import { defaultAppDir } from '../serve/server.js';
import { readModelSkeleton } from '../models/onnx/skeleton.js';
import { parseClassifierInfo } from '../models/onnx/info.js';
import { ProtoDecodeError } from '../models/onnx/proto.js';

interface AppBuildFlags {
  model: string;
  out: string;
  force?: boolean;
  json?: boolean;
}

const HEADERS = `/*
  Cross-Origin-Opener-Policy: same-origin
  Cross-Origin-Embedder-Policy: require-corp
  X-Content-Type-Options: nosniff
`;

const README = `neXt-Ray offline page. Serve this folder over HTTP from any static web server, e.g.
  npx http-server .            or   python3 -m http.server 8000
and open the address in a browser. Nothing is fetched from the internet. Browsers do not run module scripts
or fetch files from file:// pages, so opening index.html directly from disk does not work; 'nextray serve'
also serves the page, with the headers that let it use several CPU threads.
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

export function buildSite(modelPath: string, out: string, opts: { force?: boolean; appDir?: string } = {}): { out: string; files: number; bytes: number; arch: string } {
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
  const target = resolve(out);
  if (existsSync(target) && readdirSync(target).length > 0 && !opts.force) {
    throw new CliError(`${out} exists and is not empty; give --force to replace it`);
  }
  mkdirSync(dirname(target), { recursive: true });
  const tmp = join(dirname(target), `.${basename(target)}.${process.pid}.tmp`);
  rmSync(tmp, { recursive: true, force: true });
  try {
    cpSync(appDir, tmp, { recursive: true });
    cpSync(modelPath, join(tmp, 'model.onnx'));
    writeFileSync(join(tmp, '_headers'), HEADERS);
    writeFileSync(join(tmp, 'README.txt'), README);
    rmSync(target, { recursive: true, force: true });
    renameSync(tmp, target);
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
  return { out: target, ...folderBytes(target), arch: info.arch };
}

export function registerApp(program: Command): void {
  const app = program.command('app').description('the offline web app');
  app
    .command('build')
    .description('write the web app with a model as a static folder (page + onnxruntime-web wasm + model.onnx) for any static host')
    .requiredOption('--model <file>', 'exported model (.onnx from nextray export)')
    .requiredOption('--out <dir>', 'folder to write (replaced with --force)')
    .option('--force', 'replace a non-empty --out folder')
    .option('--json', 'print what was written as JSON')
    .addHelpText(
      'after',
      `
Example:
  nextray app build --model runs/demo/model.onnx --out site/
  cd site && python3 -m http.server 8000   # then open http://127.0.0.1:8000/`,
    )
    .action((flags: AppBuildFlags) => {
      const r = buildSite(flags.model, flags.out, flags.force ? { force: true } : {});
      if (flags.json) printJson(r);
      else process.stdout.write(`wrote ${r.out}: ${r.files} files, ${(r.bytes / 1e6).toFixed(1)} MB (${r.arch}); serve it with any static web server\n`);
    });
}
