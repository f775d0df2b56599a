/**
 * The engine seam: the one module that picks and initialises the TensorFlow.js backend (and, where present,
 * native kernels). Models and training import '@tensorflow/tfjs-core' only and never care which backend runs.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';

export type EngineName = 'auto' | 'cpu';

export interface EngineInfo {
  backend: string;
  /** One line for logs, e.g. "cpu (pure JS)". */
  description: string;
}

let current: EngineInfo | null = null;

export async function initEngine(name: EngineName = 'auto'): Promise<EngineInfo> {
  if (current && (name === 'auto' || name === current.backend)) return current;
  await tf.setBackend('cpu');
  await tf.ready();
  current = { backend: 'cpu', description: 'cpu (pure JavaScript TF.js backend)' };
  return current;
}

export { tf };
