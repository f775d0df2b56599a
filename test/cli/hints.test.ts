/**
 * Every hint names a command and options that exist: the user-facing strings of the CLI (src/) and of the web page
 * (app/: its scripts, index.html and the file:// hint) are scanned for `nextray <command> ... --option` and for
 * bare `--option` mentions, and each is checked against the `--help` text of the command (commander's
 * helpInformation(), which is what `--help` prints). A page once told users to "export with --cam", an option
 * that never existed; `nextray models --help` said `--freeze` for train's `--frozen`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { Command } from 'commander';
import { buildProgram } from '../../src/cli/index.js';
import { REPO_ROOT } from '../helpers/paths.js';

// Every command registered (the CLI itself registers only the one it runs).
const PROGRAM = await buildProgram();

/** Command path ('' = the program, 'app build') -> the options its --help lists. */
function helpOptions(): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  const walk = (cmd: Command, path: string[]): void => {
    const help = cmd.helpInformation();
    out.set(path.join(' '), new Set([...help.matchAll(/(?:^|[\s,])(--[a-z][a-z0-9-]*)/gm)].map((m) => m[1]!)));
    for (const c of cmd.commands) walk(c, [...path, c.name()]);
  };
  walk(PROGRAM, []);
  return out;
}

/** Other programs whose options a message may quote (e.g. "gdcmconv --raw", "python3 -m http.server"). */
const FOREIGN = /\b(gdcmconv|npm|npx|python3?|node|git|curl|chromium|vite|tsc|pip|dcmodify|openssl|jq)\b/;

export interface Problem {
  where: string;
  text: string;
  why: string;
}

/** The string literals of a source file (comments removed first). */
function literals(source: string): string[] {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`\\])\/\/.*$/gm, '$1');
  return [...code.matchAll(/'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*"|`(?:[^`\\]|\\.)*`/g)].map((m) => m[0].slice(1, -1));
}

/** Checks one user-facing text; `where` names it in the report. */
export function checkText(text: string, where: string, opts: Map<string, Set<string>>): Problem[] {
  const problems: Problem[] = [];
  const all = new Set([...opts.values()].flatMap((s) => [...s]));
  // `nextray <command> [<subcommand>] ...` used as a command line: the command exists, and the options up to the end
  // of that command line belong to it.
  for (const m of text.matchAll(/(?:^|[\s'"`(:])nextray ([a-z][a-z-]*)(?= |$|[`'"),.;])/gm)) {
    const rest = text.slice(m.index! + m[0].length);
    const line = rest.split(/\n|;|\||&&|\)|`|'|"|, or |\. /)[0]!;
    const looksLikeCommand = /^( [a-z][a-z-]*)? (-|<|[A-Z]|[\w./~-]*[/.])/.test(line) || opts.has(m[1]!);
    if (!looksLikeCommand) continue;
    let path = m[1]!;
    if (!opts.has(path)) {
      problems.push({ where, text: `nextray ${path}${line}`, why: `no command 'nextray ${path}'` });
      continue;
    }
    const sub = /^ ([a-z][a-z-]*)/.exec(line)?.[1];
    if (sub && opts.has(`${path} ${sub}`)) path = `${path} ${sub}`;
    else if ([...opts.keys()].some((k) => k.startsWith(`${path} `)) && sub) {
      problems.push({ where, text: `nextray ${path}${line}`, why: `'nextray ${path}' has no subcommand '${sub}'` });
      continue;
    }
    for (const o of line.matchAll(/(?<![\w-])(--[a-z][a-z0-9-]*)/g)) {
      if (!opts.get(path)!.has(o[1]!)) problems.push({ where, text: `nextray ${path}${line}`, why: `'nextray ${path} --help' lists no ${o[1]}` });
    }
  }
  // A bare `--option` in a sentence (a hint such as "export with --cam"): an option of some nextray command. CSS
  // custom properties (--ink:, var(--ink)) and lone flag strings (a list of node's own flags) are not hints.
  if (/\s/.test(text) && !FOREIGN.test(text)) {
    for (const o of text.matchAll(/(?<![\w(-])(--[a-z][a-z0-9-]+)(?![\w:-])/g)) {
      if (!all.has(o[1]!) && !problems.some((p) => p.why.endsWith(` ${o[1]}`))) problems.push({ where, text: text.slice(Math.max(0, o.index! - 40), o.index! + 40), why: `no nextray command has ${o[1]}` });
    }
  }
  return problems;
}

function files(dir: string, ext: RegExp): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? files(p, ext) : ext.test(n) ? [p] : [];
  });
}

test('the checker catches a hint naming an option or command that does not exist (the stub it must fail on)', () => {
  const opts = helpOptions();
  assert.equal(checkText('This model file carries no heatmap output (export with --cam).', 'stub', opts).length, 1);
  assert.equal(checkText('run nextray export --checkpoint runs/x --cam --out m.onnx', 'stub', opts).length, 1);
  assert.equal(checkText('open it with nextray view site/', 'stub', opts).length, 1);
  assert.equal(checkText('serve it with nextray app serve site/ --port 0', 'stub', opts).length, 0);
  assert.equal(checkText('nextray app serve site/ --token x', 'stub', opts).length, 1, '--token is serve\'s, not app serve\'s');
  assert.equal(checkText(':root { --ink:#1f2933; } a { color: var(--ink) }', 'css', opts).length, 0);
});

test("every hint in the CLI's and the page's texts names a command and options that exist (checked against --help)", () => {
  const opts = helpOptions();
  const sources = [
    ...files(join(REPO_ROOT, 'src'), /\.ts$/),
    ...files(join(REPO_ROOT, 'app', 'src'), /\.ts$/),
    ...files(join(REPO_ROOT, 'app', 'public'), /\.js$/),
  ];
  const problems: Problem[] = [];
  let checked = 0;
  for (const f of sources) {
    for (const lit of literals(readFileSync(f, 'utf8'))) {
      checked++;
      problems.push(...checkText(lit, relative(REPO_ROOT, f), opts));
    }
  }
  // index.html: its text, tags removed.
  const html = readFileSync(join(REPO_ROOT, 'app', 'index.html'), 'utf8').replace(/<!--[\s\S]*?-->/g, '').replace(/<[^>]+>/g, ' ');
  problems.push(...checkText(html, 'app/index.html', opts));
  assert.ok(checked > 1000, `scanned ${checked} strings`);
  assert.deepEqual(problems, []);
});

test('--help itself: the examples in every command\'s help name options that exist', () => {
  const opts = helpOptions();
  const problems: Problem[] = [];
  for (const [path] of opts) {
    const r = spawnSync(process.execPath, [join(REPO_ROOT, 'bin', 'nextray.js'), ...(path ? path.split(' ') : []), '--help'], { encoding: 'utf8' });
    assert.equal(r.status, 0, `nextray ${path} --help: ${r.stderr}`);
    problems.push(...checkText(r.stdout, `nextray ${path} --help`, opts));
  }
  assert.deepEqual(problems, []);
});
