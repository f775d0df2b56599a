/**
 * The dependency rules of docs/ARCHITECTURE.md hold for every import in src/: the "may import" table is read from
 * the page itself (so the page and the code cannot disagree), every import, `export ... from`, `import()`,
 * `import type`, `typeof import()` and `require()` of every src/ module is parsed with the TypeScript parser, and each
 * is checked against the table and the further rules (no re-exports across stages, inference/core never imports
 * inference/node, only src/inference imports onnxruntime-node/-web, only src/engine imports a TF.js backend or the
 * native addon); the web page (app/src) imports the library only through the package's browser entry. Stub checks: a
 * tree with one broken import of each kind fails with that import named.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, posix, relative } from 'node:path';
import ts from 'typescript';
import { REPO_ROOT } from './helpers/paths.js';

/** One import of a module: what it names and how. */
interface ImportRef {
  spec: string;
  /** `export ... from` (a re-export). */
  reexport: boolean;
  line: number;
}

/** Every module specifier a TypeScript source names. */
export function importsOf(file: string, source: string): ImportRef[] {
  const sf = ts.createSourceFile(file, source, ts.ScriptTarget.ES2022, true, ts.ScriptKind.TS);
  const out: ImportRef[] = [];
  const add = (lit: ts.Node, reexport: boolean): void => {
    if (ts.isStringLiteralLike(lit)) out.push({ spec: lit.text, reexport, line: sf.getLineAndCharacterOfPosition(lit.getStart()).line + 1 });
  };
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node)) add(node.moduleSpecifier, false);
    else if (ts.isExportDeclaration(node) && node.moduleSpecifier) add(node.moduleSpecifier, true);
    else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) add(node.moduleReference.expression, false);
    else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) add(node.argument.literal, false);
    else if (ts.isCallExpression(node) && node.arguments.length >= 1) {
      const callee = node.expression;
      const isImport = callee.kind === ts.SyntaxKind.ImportKeyword;
      const isRequire = ts.isIdentifier(callee) && callee.text === 'require';
      if (isImport || isRequire) add(node.arguments[0]!, false);
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return out;
}

/** The "may import" table of docs/ARCHITECTURE.md's "Dependency rules" section: folder -> allowed stages. */
export function readRules(markdown: string): Map<string, Set<string>> {
  const section = markdown.split(/^## /m).find((s) => s.startsWith('Dependency rules'));
  if (!section) throw new Error('docs/ARCHITECTURE.md has no "## Dependency rules" section');
  const rules = new Map<string, Set<string>>();
  for (const line of section.split('\n')) {
    const m = /^\|\s*`src\/([a-z-]+)\/`\s*\|\s*([^|]*)\|\s*$/.exec(line);
    if (!m) continue;
    const allowed = m[2]!.trim() === '—' ? [] : m[2]!.split(',').map((s) => s.trim()).filter(Boolean);
    rules.set(m[1]!, new Set(allowed));
  }
  if (rules.size < 5) throw new Error(`docs/ARCHITECTURE.md: the dependency table has ${rules.size} rows`);
  return rules;
}

/** The package entries: they may import any library stage. */
const ENTRIES = new Set(['index.ts', 'browser.ts']);
const FACES = new Set(['cli', 'serve', 'pacs']);

/** Re-exports across stages kept for now, each with its reason (empty when every rule holds without exceptions). */
const REEXPORT_EXCEPTIONS = new Map<string, string>([]);

/** The stage of a module: its top folder under src/ (or the entry's file name). */
function stageOf(relPath: string): string {
  return relPath.split('/')[0]!;
}

/**
 * Every broken rule in `files` (paths relative to src/, posix separators -> source), as one line each:
 * `<file>:<line> imports '<spec>': <why>`.
 */
export function brokenRules(files: ReadonlyMap<string, string>, rules: Map<string, Set<string>>): string[] {
  const problems: string[] = [];
  for (const [file, source] of files) {
    const stage = stageOf(file);
    const isEntry = ENTRIES.has(file);
    if (!isEntry && !rules.has(stage)) {
      problems.push(`${file}: folder src/${stage}/ has no row in docs/ARCHITECTURE.md's dependency table`);
      continue;
    }
    for (const ref of importsOf(file, source)) {
      const where = `${file}:${ref.line} imports '${ref.spec}'`;
      const spec = ref.spec;
      if (spec.startsWith('.')) {
        const target = posix.normalize(posix.join(posix.dirname(file), spec));
        if (target.startsWith('..')) continue; // outside src/ (package.json and the like)
        const to = stageOf(target);
        if (to === stage && !isEntry) {
          if (file.startsWith('inference/core/') && target.startsWith('inference/node/')) problems.push(`${where}: the browser-safe core must not import the Node host`);
          continue;
        }
        if (isEntry) {
          if (FACES.has(to)) problems.push(`${where}: the package entry must not import a face`);
          continue;
        }
        if (!rules.get(stage)!.has(to)) problems.push(`${where}: src/${stage}/ may not import src/${to}/ (docs/ARCHITECTURE.md)`);
        else if (ref.reexport && !REEXPORT_EXCEPTIONS.has(`${file} -> ${to}`)) problems.push(`${where}: re-exports another stage's code; import it from src/${to}/ where it is used`);
        continue;
      }
      const pkg = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!;
      if ((pkg === 'onnxruntime-node' || pkg === 'onnxruntime-web') && stage !== 'inference') {
        problems.push(`${where}: only src/inference/ picks an ONNX Runtime (types come from onnxruntime-common)`);
      }
      if (pkg.startsWith('@tensorflow/tfjs-backend') && stage !== 'engine') problems.push(`${where}: only src/engine/ chooses a TF.js backend`);
      if (/(^|\/)native-addon(\.js)?$/.test(spec) && stage !== 'engine') problems.push(`${where}: only src/engine/ loads the native addon`);
      if (file.startsWith('inference/core/') && (spec.startsWith('node:') || pkg === 'sharp' || pkg === 'onnxruntime-node')) {
        problems.push(`${where}: the browser-safe core must not import Node-only modules`);
      }
    }
  }
  return problems;
}

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (p.endsWith('.ts') && !p.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

function sourceTree(): Map<string, string> {
  const src = join(REPO_ROOT, 'src');
  const files = new Map<string, string>();
  for (const f of walk(src)) files.set(relative(src, f).split('\\').join('/'), readFileSync(f, 'utf8'));
  return files;
}

const RULES = readRules(readFileSync(join(REPO_ROOT, 'docs', 'ARCHITECTURE.md'), 'utf8'));

test('every import in src/ keeps the dependency rules of docs/ARCHITECTURE.md', () => {
  const files = sourceTree();
  assert.ok(files.size > 100, `read ${files.size} modules`);
  // Every stage folder has a row, and the table names only folders that are stages.
  const stages = new Set([...files.keys()].filter((f) => f.includes('/')).map(stageOf));
  for (const s of stages) assert.ok(RULES.has(s), `src/${s}/ has a row in the dependency table`);
  assert.deepEqual(brokenRules(files, RULES), []);
});

test('the parser sees every kind of import', () => {
  const src = [
    "import a from './a.js';",
    "import type { B } from '../b/b.js';",
    "export { c } from '../c/c.js';",
    "export * from './d.js';",
    "const e = await import('../e/e.js');",
    "type F = typeof import('../f/f.js');",
    "const g = require('onnxruntime-node/package.json');",
    "import './side-effect.js';",
    "// import { no } from '../comment/no.js';",
    "const s = \"import x from '../string/no.js'\";",
  ].join('\n');
  assert.deepEqual(
    importsOf('x/y.ts', src).map((r) => [r.spec, r.reexport]),
    [
      ['./a.js', false],
      ['../b/b.js', false],
      ['../c/c.js', true],
      ['./d.js', true],
      ['../e/e.js', false],
      ['../f/f.js', false],
      ['onnxruntime-node/package.json', false],
      ['./side-effect.js', false],
    ],
  );
});

test('stub check: each kind of broken import is found and named', () => {
  const tree = new Map<string, string>([
    ['train/trainer.ts', "import { predictSplit } from '../inference/node/records.js';"],
    ['models/onnx/precision.ts', "import { loadMuraDataset } from '../../data/mura.js';\nimport * as ort from 'onnxruntime-node';"],
    ['evaluate/x.ts', "export { fitTemperature } from '../calibrate/temperature.js';"],
    ['train/y.ts', "export { trustExportOptions } from '../inference/core/trust.js';"],
    ['inference/core/z.ts', "import { openModel } from '../node/models.js';\nimport { readFileSync } from 'node:fs';"],
    ['data/w.ts', "import '@tensorflow/tfjs-backend-cpu';\ntype T = typeof import('../serve/server.js');"],
    ['newstage/v.ts', "export const v = 1;"],
  ]);
  const problems = brokenRules(tree, RULES);
  const has = (re: RegExp): boolean => problems.some((p) => re.test(p));
  assert.ok(has(/^train\/trainer\.ts:1 imports '\.\.\/inference\/node\/records\.js': src\/train\/ may not import src\/inference\//), problems.join('\n'));
  // models/onnx may import data in general (preprocessing), but not a runtime.
  assert.ok(has(/^models\/onnx\/precision\.ts:2 .*only src\/inference\/ picks an ONNX Runtime/), problems.join('\n'));
  assert.ok(has(/^evaluate\/x\.ts:1 .*may not import src\/calibrate\//), problems.join('\n'));
  assert.ok(has(/^train\/y\.ts:1 .*may not import src\/inference\//), problems.join('\n'));
  assert.ok(has(/^inference\/core\/z\.ts:1 .*must not import the Node host/), problems.join('\n'));
  assert.ok(has(/^inference\/core\/z\.ts:2 .*Node-only/), problems.join('\n'));
  assert.ok(has(/^data\/w\.ts:1 .*only src\/engine\/ chooses a TF\.js backend/), problems.join('\n'));
  assert.ok(has(/^data\/w\.ts:2 .*may not import src\/serve\//), problems.join('\n'));
  assert.ok(has(/^newstage\/v\.ts: folder src\/newstage\/ has no row/), problems.join('\n'));
  // A re-export within the allowed direction is still refused: the function belongs to its own stage.
  const reexport = brokenRules(new Map([['calibrate/r.ts', "export { mahalanobisScores } from '../inference/core/ood.js';"]]), RULES);
  assert.match(reexport.join('\n'), /re-exports another stage's code/);
  // The real rules hold for a correct tree of the same shape.
  assert.deepEqual(brokenRules(new Map([['train/ok.ts', "import { runPaths } from '../runs/run-dir.js';\nimport * as tf from '@tensorflow/tfjs-core';"]]), RULES), []);
});

test('the dependency table is read from docs/ARCHITECTURE.md as written', () => {
  assert.deepEqual([...RULES.get('util')!], []);
  assert.ok(RULES.get('calibrate')!.has('inference') && !RULES.get('inference')!.has('calibrate'), 'calibrate uses inference, never the reverse');
  assert.ok(!RULES.get('train')!.has('inference') && !RULES.get('train')!.has('calibrate'), 'train holds only training');
});

/** The specifier the web page (app/src) imports the library by: the package's browser entry. */
const PAGE_ENTRY = 'nextray/browser';

/**
 * Every import of the web page's sources (paths relative to app/src -> source) that does not go through the
 * package's browser entry: a path out of app/src (a deep import of the library's src/), or another specifier of
 * the package. One line each: `<file>:<line> imports '<spec>': <why>`.
 */
export function pageImportProblems(files: ReadonlyMap<string, string>): string[] {
  const problems: string[] = [];
  for (const [file, source] of files) {
    for (const ref of importsOf(file, source)) {
      const where = `app/src/${file}:${ref.line} imports '${ref.spec}'`;
      if (ref.spec.startsWith('.')) {
        const target = posix.normalize(posix.join(posix.dirname(file), ref.spec));
        if (target.startsWith('..')) problems.push(`${where}: the page imports the library only through '${PAGE_ENTRY}', never by path`);
      } else if (/^nextray($|\/)/.test(ref.spec) && ref.spec !== PAGE_ENTRY) {
        problems.push(`${where}: the page imports the library only through '${PAGE_ENTRY}'`);
      }
    }
  }
  return problems;
}

test("the web page (app/src) imports the library only through the package's browser entry", () => {
  const dir = join(REPO_ROOT, 'app', 'src');
  const files = new Map<string, string>();
  for (const f of walk(dir)) files.set(relative(dir, f).split('\\').join('/'), readFileSync(f, 'utf8'));
  assert.ok(files.has('main.ts') && files.has('engine.ts'), `read ${[...files.keys()].join(', ')}`);
  assert.deepEqual(pageImportProblems(files), []);
  assert.ok([...files.values()].some((s) => importsOf('x.ts', s).some((r) => r.spec === PAGE_ENTRY)), `the page imports ${PAGE_ENTRY}`);
  // The specifier is the package's own browser entry: package.json exports it, and the page's build maps it to the
  // source of that same file.
  const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { exports: Record<string, { default: string }> };
  assert.equal(pkg.exports['./browser']!.default, './dist/src/browser.js');
  const tsconfig = JSON.parse(readFileSync(join(REPO_ROOT, 'app', 'tsconfig.json'), 'utf8')) as { compilerOptions: { paths: Record<string, string[]> } };
  assert.deepEqual(tsconfig.compilerOptions.paths[PAGE_ENTRY], ['../src/browser.ts']);
});

test('stub check: a page that deep-imports src/ or another package path is refused, naming the import', () => {
  const problems = pageImportProblems(
    new Map([
      ['engine.ts', "import { Ensemble } from '../../src/inference/core/index.js';\nimport { load } from 'nextray/browser';"],
      ['viewer.ts', "import type { Preprocessing } from '../../src/data/preprocess.js';\nimport { x } from './card.js';"],
      ['card.ts', "import { cardFromInfo } from 'nextray/node';\nconst m = await import('../../src/models/card.js');"],
    ]),
  );
  assert.deepEqual(problems.map((p) => /^\S+:\d+/.exec(p)?.[0]), ['app/src/engine.ts:1', 'app/src/viewer.ts:1', 'app/src/card.ts:1', 'app/src/card.ts:2']);
  assert.match(problems[0]!, /imports '\.\.\/\.\.\/src\/inference\/core\/index\.js': the page imports the library only through 'nextray\/browser', never by path/);
});
