/**
 * The browser entry (src/browser.ts) stays browser-safe: bundled by esbuild for platform 'browser' it reaches no
 * `node:` module or Node builtin (other than ones a package's own "browser" field disables), no sharp, no
 * onnxruntime-node and not the native addon; and it type-checks without Node's types (`types: []`, DOM lib).
 * So does every other module that claims to be browser-safe (docs/ARCHITECTURE.md lists them), each bundled as its
 * own entry. A stub check: a module importing node:fs, sharp or the addon is caught by both halves (see the last
 * test).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { builtinModules } from 'node:module';
import { join } from 'node:path';
import { readdirSync, writeFileSync } from 'node:fs';
import * as esbuild from 'esbuild';
import ts from 'typescript';
import { REPO_ROOT, tempDir } from '../helpers/paths.js';

const ENTRY = join(REPO_ROOT, 'src', 'browser.ts');
const BUILTINS = new Set(builtinModules);

/** Why an import specifier may not be reached from the browser entry, or null when it may. */
function forbidden(spec: string): string | null {
  if (spec.startsWith('node:')) return 'a node: module';
  if (BUILTINS.has(spec.split('/')[0]!)) return 'a Node builtin';
  if (spec === 'sharp' || spec.startsWith('sharp/')) return 'sharp (native image library)';
  if (spec === 'onnxruntime-node' || spec.startsWith('onnxruntime-node/')) return 'onnxruntime-node';
  if (spec.endsWith('.node') || /(^|\/)native-addon(\.js)?$/.test(spec) || /(^|\/)native\/build\//.test(spec)) return 'the native addon';
  if (spec === '@tensorflow/tfjs-node' || spec === 'node-addon-api') return 'a Node-only package';
  return null;
}

interface Reached {
  spec: string;
  importer: string;
  why: string;
}

async function bundleProblems(entry: string): Promise<{ reached: Reached[]; errors: string[]; inputs: string[] }> {
  const reached: Reached[] = [];
  const result = await esbuild.build({
    entryPoints: [entry],
    bundle: true,
    platform: 'browser',
    format: 'esm',
    write: false,
    metafile: true,
    logLevel: 'silent',
    plugins: [
      {
        name: 'forbid-node',
        setup(build) {
          build.onResolve({ filter: /.*/ }, (args) => {
            const why = forbidden(args.path);
            if (!why) return undefined;
            // A package's own "browser" field may disable a builtin (seedrandom's crypto): let esbuild decide those.
            if (why === 'a Node builtin' && args.importer.includes('node_modules')) return undefined;
            reached.push({ spec: args.path, importer: args.importer.replace(REPO_ROOT + '/', ''), why });
            return { path: args.path, external: true };
          });
        },
      },
    ],
  }).catch((err: { errors?: esbuild.Message[] }) => ({ errors: err.errors ?? [], metafile: undefined }));
  const errors = (result.errors ?? []).map((e) => `${e.location?.file ?? '?'}: ${e.text}`);
  const inputs = result.metafile ? Object.keys(result.metafile.inputs) : [];
  // Builtins required from node_modules must have been disabled by the package's browser field.
  for (const i of inputs) {
    if (BUILTINS.has(i) || i.startsWith('node:')) reached.push({ spec: i, importer: '(node_modules)', why: 'a Node builtin not disabled for browsers' });
  }
  return { reached, errors, inputs };
}

function typeErrors(entry: string): { errors: string[]; nodeTypes: string[] } {
  const program = ts.createProgram([entry], {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    lib: ['lib.es2023.d.ts', 'lib.dom.d.ts'],
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    types: [],
  });
  const errors = ts.getPreEmitDiagnostics(program).map((d) => {
    const where = d.file ? `${d.file.fileName.replace(REPO_ROOT + '/', '')}:${d.file.getLineAndCharacterOfPosition(d.start ?? 0).line + 1}` : '';
    return `${where} ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
  });
  const nodeTypes = program.getSourceFiles().map((f) => f.fileName).filter((f) => f.includes('/@types/node/'));
  return { errors, nodeTypes };
}

test('the browser entry bundles for platform browser without node:, builtins, sharp, onnxruntime-node or the addon', async () => {
  const { reached, errors, inputs } = await bundleProblems(ENTRY);
  assert.deepEqual(errors, [], 'esbuild errors');
  assert.deepEqual(reached, [], 'forbidden imports reached from src/browser.ts');
  // It really is the library: the model zoo, the ONNX writer/reader and the metrics are in the bundle.
  for (const m of ['src/models/registry.ts', 'src/models/onnx/export.ts', 'src/models/onnx/graph.ts', 'src/evaluate/metrics.ts', 'src/data/preprocess.ts']) {
    assert.ok(inputs.includes(m), `${m} in the bundle`);
  }
});

/**
 * The modules that claim to be browser-safe besides src/browser.ts (docs/ARCHITECTURE.md, "Browser-safe stays
 * browser-safe"): every module of the inference core and the named entries.
 */
function browserSafeModules(): string[] {
  const core = join(REPO_ROOT, 'src', 'inference', 'core');
  const named = ['src/models/index.ts', 'src/models/onnx/index.ts', 'src/models/weights/browser.ts', 'src/evaluate/calibration.ts', 'src/calibrate/temperature.ts'];
  return [
    ...readdirSync(core).filter((f) => f.endsWith('.ts')).map((f) => join(core, f)),
    ...named.map((f) => join(REPO_ROOT, f)),
  ];
}

test('every module that claims to be browser-safe bundles for the browser on its own', async () => {
  const entries = browserSafeModules();
  assert.ok(entries.length >= 12, `${entries.length} browser-safe modules`);
  for (const entry of entries) {
    const { reached, errors } = await bundleProblems(entry);
    const name = entry.replace(REPO_ROOT + '/', '');
    assert.deepEqual(errors, [], `esbuild errors bundling ${name}`);
    assert.deepEqual(reached, [], `forbidden imports reached from ${name}`);
  }
});

test('the browser entry type-checks without Node types', () => {
  const { errors, nodeTypes } = typeErrors(ENTRY);
  assert.deepEqual(nodeTypes, [], '@types/node pulled in');
  assert.deepEqual(errors, []);
});

test('stub check: an entry that reaches node:fs, sharp and the addon fails both checks', async () => {
  const tmp = tempDir('nextray-browser-entry-');
  try {
    const bad = join(tmp.dir, 'bad-entry.ts');
    writeFileSync(
      bad,
      `import { readFileSync } from 'node:fs';\nimport sharp from 'sharp';\n` +
        `export * from '${join(REPO_ROOT, 'src', 'browser.js')}';\nexport const f = (p: string) => [readFileSync(p), sharp];\n` +
        `export { loadNativeAddon } from '${join(REPO_ROOT, 'src', 'engine', 'native-addon.js')}';\n`,
    );
    const { reached } = await bundleProblems(bad);
    const why = new Set(reached.map((r) => r.why));
    assert.ok(why.has('a node: module') && why.has('sharp (native image library)') && why.has('the native addon'), JSON.stringify(reached));
    // A browser-safe module that imports the Node host is caught the same way (what the per-module bundles check).
    const host = join(tmp.dir, 'core-importing-host.ts');
    writeFileSync(host, `export { openModel } from '${join(REPO_ROOT, 'src', 'inference', 'node', 'models.js')}';\n`);
    const hostReached = (await bundleProblems(host)).reached;
    assert.ok(hostReached.some((r) => r.why === 'a node: module'), JSON.stringify(hostReached));
    const { errors } = typeErrors(bad);
    assert.ok(errors.some((e) => /node:fs/.test(e)), errors.join('\n'));
  } finally {
    tmp.cleanup();
  }
});
