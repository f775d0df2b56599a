/**
 * Registers TF.js's gradient functions. @tensorflow/tfjs-core's Node bundle ships no gradients (the
 * @tensorflow/tfjs union package normally registers them), so without this tf.grad / optimizer.minimize fail
 * with "gradient function not found". The gradients exist only as tfjs-core's ES-module sources
 * (dist/gradients/*.js, extensionless relative imports, in a package not marked "type": "module"), so a
 * tiny resolve/load hook scoped to tfjs-core's dist/ folder lets Node import them. They register into
 * tfjs-core's global registry (shared between copies through globalThis) and run their ops on the one
 * global engine, so they serve every backend.
 *
 * This reaches into tfjs-core's file layout, which is not a public API: test/engine/gradients.test.ts fails on any
 * tfjs-core other than VERIFIED_TFJS_CORE, so an upgrade cannot pass CI until this hook is re-checked against it.
 */
import * as tf from '@tensorflow/tfjs-core';
import { createRequire, register } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { InstallError } from '../util/errors.js';

const HOOK = `
const inCore = (u) => typeof u === 'string' && u.includes('/@tensorflow/tfjs-core/dist/') && !u.includes('/tf-core.');
export async function resolve(specifier, context, next) {
  if (inCore(context.parentURL) && /^\\.\\.?\\//.test(specifier) && !specifier.endsWith('.js')) {
    return next(specifier + '.js', context);
  }
  return next(specifier, context);
}
export async function load(url, context, next) {
  if (inCore(url) && url.endsWith('.js')) return next(url, { ...context, format: 'module' });
  return next(url, context);
}
`;

/** The tfjs-core version whose dist/ layout (register_all_gradients.js, engine.js) this hook was verified on. */
export const VERIFIED_TFJS_CORE = '4.22.0';

let done: Promise<void> | null = null;

/** True when a gradient for a common op is registered (by us or by another package such as @tensorflow/tfjs). */
export function gradientsRegistered(): boolean {
  return tf.getGradient('Conv2D') !== undefined && tf.getGradient('Sum') !== undefined;
}

/** Idempotent; resolves once every tfjs-core gradient is registered. */
export function registerGradients(): Promise<void> {
  if (gradientsRegistered()) return Promise.resolve();
  done ??= (async () => {
    const require = createRequire(import.meta.url);
    const dist = dirname(require.resolve('@tensorflow/tfjs-core'));
    register(`data:text/javascript,${encodeURIComponent(HOOK)}`);
    const engine = (await import(pathToFileURL(join(dist, 'engine.js')).href)) as { getOrMakeEngine: () => unknown };
    engine.getOrMakeEngine(); // binds this ES-module copy's env() to the global engine the app already uses
    await import(pathToFileURL(join(dist, 'register_all_gradients.js')).href);
    if (!gradientsRegistered()) throw new InstallError('TF.js gradients did not register (tfjs-core layout changed?)', { hint: 'reinstall with npm ci so @tensorflow/tfjs-core is the version package-lock.json pins' });
  })();
  return done;
}
