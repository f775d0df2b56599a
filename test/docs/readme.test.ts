/**
 * The README and docs/*.md are user documentation: every `nextray ...` / `npx nextray ...` command line in their code
 * blocks names a command (and subcommand) that exists and only options that command's `--help` lists, as printed by
 * the built CLI (`node bin/nextray.js <command> --help`). The README stays short (<= 350 lines) and speaks to users:
 * no tracker references, no paths of the machine it was written on.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../helpers/paths.js';

const BIN = join(REPO_ROOT, 'bin', 'nextray.js');

interface Help {
  ok: boolean;
  options: Set<string>;
  commands: Set<string>;
}

const helpCache = new Map<string, Help>();

/** `nextray <path> --help` from the built CLI: the options its Options section lists and its subcommands. */
function help(path: string[]): Help {
  const key = path.join(' ');
  const cached = helpCache.get(key);
  if (cached) return cached;
  const r = spawnSync(process.execPath, [BIN, ...path, '--help'], { encoding: 'utf8' });
  const text = r.stdout ?? '';
  const options = new Set<string>();
  const commands = new Set<string>();
  let section = '';
  for (const line of text.split('\n')) {
    if (/^[A-Z][A-Za-z ]*:\s*$/.test(line)) section = line.trim();
    else if (section === 'Options:' && /^\s+-/.test(line)) {
      for (const m of line.trimStart().replace(/\s{2,}.*$/, '').matchAll(/--[a-z][a-z0-9-]*/g)) options.add(m[0]);
    } else if (section === 'Commands:') {
      const m = /^ {2}([a-z][a-z-]*)\b/.exec(line);
      if (m) commands.add(m[1]!);
    }
  }
  const out = { ok: r.status === 0 && text.startsWith('Usage:'), options, commands };
  helpCache.set(key, out);
  return out;
}

/** The lines inside fenced code blocks, backslash continuations joined. */
export function codeLines(markdown: string): string[] {
  const out: string[] = [];
  let inside = false;
  let pending = '';
  for (const line of markdown.split('\n')) {
    if (/^\s*```/.test(line)) {
      inside = !inside;
      continue;
    }
    if (!inside) continue;
    if (line.endsWith('\\')) {
      pending += line.slice(0, -1) + ' ';
      continue;
    }
    out.push(pending + line);
    pending = '';
  }
  return out;
}

export interface Problem {
  where: string;
  line: string;
  why: string;
}

/** Checks every `nextray <command> ...` on the code lines of one document against the CLI's --help. */
export function checkCommands(markdown: string, where: string): { problems: Problem[]; checked: number } {
  const problems: Problem[] = [];
  let checked = 0;
  const top = help([]);
  assert.ok(top.ok && top.commands.size > 5, `nextray --help must work (built CLI at ${BIN})`);
  for (const raw of codeLines(markdown)) {
    for (const m of raw.matchAll(/(?:^|[\s;&|(`$])(?:npx )?nextray ([a-z][a-z-]*)(?=\s|$)/g)) {
      // The command line runs to a shell comment, a pipe, `&&` or `;`.
      const rest = raw.slice(m.index! + m[0].length).split(/\s#|&&|\|\||[|;`)]/)[0]!;
      const path = [m[1]!];
      if (!top.commands.has(path[0]!)) {
        problems.push({ where, line: raw.trim(), why: `no command 'nextray ${path[0]}'` });
        continue;
      }
      const group = help(path);
      if (group.commands.size > 0) {
        const sub = /^\s+([a-z][a-z-]*)\b/.exec(rest)?.[1];
        if (!sub || !group.commands.has(sub)) {
          problems.push({ where, line: raw.trim(), why: `'nextray ${path[0]}' has no subcommand '${sub ?? ''}'` });
          continue;
        }
        path.push(sub);
      }
      const h = help(path);
      if (!h.ok) {
        problems.push({ where, line: raw.trim(), why: `'nextray ${path.join(' ')} --help' failed` });
        continue;
      }
      checked++;
      for (const o of rest.matchAll(/(?<![\w-])(--[a-z][a-z0-9-]*)/g)) {
        if (o[1] === '--help') continue;
        if (!h.options.has(o[1]!)) problems.push({ where, line: raw.trim(), why: `'nextray ${path.join(' ')} --help' lists no ${o[1]}` });
      }
    }
  }
  return { problems, checked };
}

/** A line that shows what the CLI printed (`nextray: ...`, `hint: ...`), not a command to type. */
function isOutput(line: string): boolean {
  return /^\s*(?:nextray(?: [a-z-]+)?|hint):/.test(line);
}

/** `nextray <command> <rest>` on each code line: the command and its arguments up to a comment, pipe, `&&` or `;`. */
function commandLines(markdown: string): { line: string; npx: boolean; command: string; args: string[] }[] {
  const out: { line: string; npx: boolean; command: string; args: string[] }[] = [];
  for (const raw of codeLines(markdown)) {
    if (isOutput(raw)) continue;
    for (const m of raw.matchAll(/(?:^|[\s;&|(`$])(npx )?nextray ([a-z][a-z-]*)(?=\s|$)/g)) {
      const rest = raw.slice(m.index! + m[0].length).split(/\s#|&&|\|\||[|;`)]/)[0]!;
      out.push({ line: raw.trim(), npx: !!m[1], command: m[2]!, args: rest.trim().split(/\s+/).filter(Boolean) });
    }
  }
  return out;
}

/** The README's convention: `nextray` runs as `npx nextray` in the clone; every command line says so. */
export function bareCommands(markdown: string, where: string): Problem[] {
  return commandLines(markdown)
    .filter((c) => !c.npx)
    .map((c) => ({ where, line: c.line, why: `'nextray ${c.command}' without npx (the README's convention: npx nextray)` }));
}

/** Options whose value is a file or folder the command writes. */
const WRITES = new Set(['--out', '--output', '--head-out', '--studies-out', '--heatmaps', '--dicom-out', '--ood-eval', '--state']);
/** Options whose value must already exist: a model, run or split the tool makes. */
const READS = new Set(['--model', '--checkpoint', '--resume', '--split', '--onnx']);

/** Paths a user brings (their folders, downloaded weights, images, URLs), or a split named by subset ('test'). */
function brought(value: string): boolean {
  return /^(?:~\/|\/|\$|<|https?:)/.test(value) || /\.(?:pth|safetensors|npy|png|jpe?g|dcm)$/i.test(value) || !/[./]/.test(value);
}

/**
 * Every model, run or split file an example reads is one that a command of the same document (or of the README,
 * which the docs follow) writes: a path nothing creates cannot work as written. `created` collects what is written.
 */
export function uncreatedPaths(markdown: string, where: string, created: Set<string> = new Set()): Problem[] {
  const cmds = commandLines(markdown);
  const norm = (p: string): string => p.replace(/\/+$/, '');
  for (const c of cmds) {
    if (c.command === 'demo' && !c.args.includes('--out')) created.add('demo-output');
    c.args.forEach((a, i) => {
      const v = c.args[i + 1];
      if (WRITES.has(a) && v !== undefined) created.add(norm(v));
    });
  }
  const isCreated = (v: string): boolean => [...created].some((c) => norm(v) === c || norm(v).startsWith(`${c}/`));
  const problems: Problem[] = [];
  for (const c of cmds) {
    const reads: string[] = [];
    c.args.forEach((a, i) => {
      const v = c.args[i + 1];
      if (READS.has(a) && v !== undefined && !v.startsWith('-')) reads.push(v);
    });
    if (c.command === 'app' && c.args[0] === 'serve' && c.args[1] !== undefined) reads.push(c.args[1]);
    for (const v of reads) {
      if (!brought(v) && !isCreated(v)) problems.push({ where, line: c.line, why: `${v}: no example creates it` });
    }
  }
  return problems;
}

/** What the README must not contain: tracker references and paths of the machine it was written on. */
export function readmeProblems(readme: string): string[] {
  const problems: string[] = [];
  const lines = readme.split('\n');
  const count = readme.endsWith('\n') ? lines.length - 1 : lines.length;
  if (count > 350) problems.push(`${count} lines (at most 350)`);
  lines.forEach((l, i) => {
    if (/(?<![\w&/=-])#\d+\b/.test(l)) problems.push(`line ${i + 1}: an issue reference: ${l.trim()}`);
    if (/\bissues?\s+(?:#\s*)?\d+/i.test(l)) problems.push(`line ${i + 1}: an issue reference: ${l.trim()}`);
    if (l.includes('/work/')) problems.push(`line ${i + 1}: a machine path: ${l.trim()}`);
    if (/\b\d{2}:\d{2}(?:-\d{2}:\d{2})? UTC\b/.test(l)) problems.push(`line ${i + 1}: a dated diary entry: ${l.trim()}`);
    if (/load average/i.test(l)) problems.push(`line ${i + 1}: a load average (belongs in docs/performance.md): ${l.trim()}`);
  });
  return problems;
}

function documents(): [string, string][] {
  const docs = readdirSync(join(REPO_ROOT, 'docs')).filter((n) => n.endsWith('.md')).sort();
  return [['README.md', join(REPO_ROOT, 'README.md')], ...docs.map((n): [string, string] => [`docs/${n}`, join(REPO_ROOT, 'docs', n)])];
}

test('the checkers catch what they are for (the stubs they must fail on)', () => {
  const stub = '# x\n\n```sh\nnpx nextray export --checkpoint runs/r1 --out m.onnx --cam\nnextray view site/\nnextray pacs listen --model m.onnx\n```\n';
  const { problems } = checkCommands(stub, 'stub');
  assert.deepEqual(problems.map((p) => p.why), [
    "'nextray export --help' lists no --cam",
    "no command 'nextray view'",
    "'nextray pacs' has no subcommand 'listen'",
  ]);
  // Options of another command, and a flag in a comment or after a pipe, are told apart.
  assert.equal(checkCommands('```\nnextray app serve site/ --token x\n```\n', 'stub').problems.length, 1);
  assert.equal(checkCommands('```\nnextray serve --model m.onnx   # not --cam\nnextray predict --model m x.png | grep --count a\n```\n', 'stub').problems.length, 0);
  // Prose outside code blocks is not a command line.
  assert.equal(checkCommands('Run nextray export --cam someday.\n', 'stub').checked, 0);
  assert.equal(readmeProblems('a\n'.repeat(351)).length, 1);
  assert.equal(readmeProblems('see #25 and issue 14\n').length, 2);
  assert.equal(readmeProblems('open /#token=T, read the [Limits](#limits) and `#1f2933`\n').length, 0);
  assert.equal(readmeProblems('ran in /work/demo at 04:53 UTC, load average 2\n').length, 3);
});

test('every nextray command line in README.md and docs/*.md uses commands and options that exist (checked against --help)', () => {
  const problems: Problem[] = [];
  let checked = 0;
  for (const [name, path] of documents()) {
    const r = checkCommands(readFileSync(path, 'utf8'), name);
    problems.push(...r.problems);
    checked += r.checked;
  }
  assert.ok(checked >= 30, `checked ${checked} command lines`);
  assert.deepEqual(problems, []);
});

test('every command line in README.md and docs/*.md is written npx nextray, and reads only paths a step creates', () => {
  const problems: Problem[] = [];
  let readmeCreated: Set<string> | undefined;
  for (const [name, path] of documents()) {
    const text = readFileSync(path, 'utf8');
    problems.push(...bareCommands(text, name));
    const created = new Set(readmeCreated ?? []);
    problems.push(...uncreatedPaths(text, name, created));
    if (name === 'README.md') readmeCreated = created;
  }
  assert.deepEqual(problems, []);
});

/** The `Examples:` lines of `nextray <path> --help` that run nextray, as a code block (`$ ` prompts removed). */
function helpExamples(path: string[]): string {
  const r = spawnSync(process.execPath, [BIN, ...path, '--help'], { encoding: 'utf8' });
  const lines: string[] = [];
  let inside = false;
  for (const line of (r.stdout ?? '').split('\n')) {
    if (/^[A-Z][A-Za-z ]*:\s*$/.test(line)) inside = line.trim() === 'Examples:';
    else if (inside && /\bnextray [a-z]/.test(line)) lines.push(line.trim().replace(/^\$\s+/, ''));
  }
  return '```\n' + lines.join('\n') + '\n```\n';
}

test('every --help example reads only models, runs and splits that some example (or the docs) creates', () => {
  const paths: string[][] = [];
  for (const c of help([]).commands) {
    if (c === 'help') continue;
    const sub = help([c]).commands;
    if (sub.size) for (const s of sub) paths.push([c, s]);
    else paths.push([c]);
  }
  const texts: [string, string][] = [
    ...paths.map((p): [string, string] => [`nextray ${p.join(' ')} --help`, helpExamples(p)]),
    ...documents().map(([name, path]): [string, string] => [name, readFileSync(path, 'utf8')]),
  ];
  // What any of them writes counts: a help text shows one step, the docs the steps before it.
  const created = new Set<string>();
  for (const [name, text] of texts) uncreatedPaths(text, name, created);
  const problems = texts.filter(([name]) => name.endsWith('--help')).flatMap(([name, text]) => uncreatedPaths(text, name, created));
  assert.ok(paths.length >= 15, `read ${paths.length} --help texts`);
  assert.deepEqual(problems, []);
});

test('stub check: a bare nextray and a model nothing writes are found; output lines and brought paths are not', () => {
  const stub =
    '```sh\nnextray predict --model m.onnx x.png\nnpx nextray export --checkpoint runs/r1 --out r1.onnx\n' +
    'npx nextray predict --model r1.onnx ~/scans/ --out p.csv\nnpx nextray evaluate --predictions p.csv --split test\n```\n' +
    '```\nhint: continue with nextray train --resume runs/r9\nnextray pacs: study 1.2.3: nextray predict --model gone.onnx\n```\n';
  assert.deepEqual(bareCommands(stub, 'stub').map((p) => p.line), ['nextray predict --model m.onnx x.png']);
  assert.deepEqual(uncreatedPaths(stub, 'stub').map((p) => p.why), [
    'm.onnx: no example creates it',
    'runs/r1: no example creates it',
  ]);
  // The demo's default folder and a folder under a written one count as created.
  assert.deepEqual(uncreatedPaths('```\nnpx nextray demo\nnpx nextray export --checkpoint demo-output/run --out d.onnx\n```\n', 'stub'), []);
});

/** Files under `dir` (recursively) whose names end with one of `exts`. */
function sourceFiles(dir: string, exts: readonly string[]): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...sourceFiles(p, exts));
    else if (exts.some((x) => e.name.endsWith(x))) out.push(p);
  }
  return out;
}

/** Lines that cite a tracker issue ('issue 13', '#25'); a colour or an anchor in a string is not one. */
export function issueReferences(text: string): number[] {
  const lines: number[] = [];
  text.split('\n').forEach((l, i) => {
    if (/(?<![\w&/='"`-])#\d+\b/.test(l) || /\bissues?\s+(?:#\s*)?\d+/i.test(l)) lines.push(i + 1);
  });
  return lines;
}

test('comments in src/ and scripts/ explain the code and cite no tracker issue numbers', () => {
  assert.deepEqual(issueReferences('// the cache (issue 10, item 5)\n/* see #13 */\nconst c = "#1f2933"; // colour\nlink(\'#2\')\n'), [1, 2]);
  const found: string[] = [];
  for (const f of [...sourceFiles(join(REPO_ROOT, 'src'), ['.ts']), ...sourceFiles(join(REPO_ROOT, 'scripts'), ['.mjs', '.ts'])]) {
    for (const n of issueReferences(readFileSync(f, 'utf8'))) found.push(`${f.slice(REPO_ROOT.length + 1)}:${n}`);
  }
  assert.deepEqual(found, []);
});

test('README.md is user documentation: at most 350 lines, no issue references, machine paths, diary times or load averages', () => {
  assert.deepEqual(readmeProblems(readFileSync(join(REPO_ROOT, 'README.md'), 'utf8')), []);
});

test('README.md: the quick start is two commands, the second the one CI runs', () => {
  const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  const quick = /## Quick start[\s\S]*?```sh\n([\s\S]*?)```/.exec(readme)?.[1]?.trim().split('\n') ?? [];
  assert.equal(quick.length, 2, `quick start: ${quick.join(' / ')}`);
  const ci = readFileSync(join(REPO_ROOT, '.ci', 'run'), 'utf8');
  assert.ok(ci.split('\n').includes(quick[1]!.trim()), `.ci/run runs '${quick[1]}'`);
  assert.match(quick[0]!, /^npm ci && npx nextray demo\b/);
  const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string> };
  assert.ok(pkg.bin.nextray, 'package.json bin names nextray, so npx nextray runs it after npm ci');
});
