/**
 * Starting a worker thread on a module that sits beside the caller: `startSiblingWorker(import.meta.url,
 * 'decode-worker', { workerData })` runs decode-worker.js next to the calling module in dist/. When the caller runs
 * from TypeScript source under tsx (dev, `npx tsx --test`), workers do not inherit tsx's module hooks (tsx registers
 * them in the main thread only), so the worker is a small bootstrap that registers tsx's ESM hooks and then imports
 * the .ts module. Node-only. The worker gets the parent's Node options minus those it refuses (see workerExecArgv).
 */
import { Worker, type WorkerOptions } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { InstallError } from './errors.js';

export function startSiblingWorker(callerUrl: string, name: string, opts: Pick<WorkerOptions, 'workerData'> = {}): Worker {
  const execArgv = workerExecArgv();
  if (!callerUrl.endsWith('.ts')) return new Worker(fileURLToPath(new URL(`./${name}.js`, callerUrl)), { ...opts, execArgv });
  let tsxApi: string;
  try {
    tsxApi = import.meta.resolve('tsx/esm/api');
  } catch {
    throw new InstallError(
      `${name}: running from TypeScript source but tsx cannot be found to start the worker; ` +
        'run the compiled build (npm run build) or use no workers',
    );
  }
  const entry = new URL(`./${name}.ts`, callerUrl).href;
  const bootstrap = `import(${JSON.stringify(tsxApi)}).then((api) => { api.register(); return import(${JSON.stringify(entry)}); });`;
  return new Worker(bootstrap, { ...opts, eval: true, execArgv });
}

/**
 * The parent's Node options minus those a worker refuses or must not repeat: `node --input-type=module -e ...`
 * would otherwise make every worker fail to start ("--input-type can only be used with string input").
 */
export function workerExecArgv(): string[] {
  const out: string[] = [];
  const args = process.execArgv;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a.startsWith('--input-type')) continue;
    if (a === '-e' || a === '--eval' || a === '-p' || a === '--print') {
      i++; // and its script
      continue;
    }
    if (a.startsWith('--eval=') || a.startsWith('--print=')) continue;
    out.push(a);
  }
  return out;
}
