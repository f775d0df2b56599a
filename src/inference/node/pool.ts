/**
 * Decoding ahead of inference: a fixed pool of worker threads running ./decode.ts, so PNG/JPEG/DICOM decoding and
 * resizing overlap ONNX Runtime's work on the previous batch. `workers: 0` decodes in this thread (tests, tiny jobs).
 *
 * Workers are started from decode-worker.js beside this module (dist/); under tsx (TypeScript source) a small
 * bootstrap registers tsx's hooks first, as the training loader does (src/data/loader.ts).
 */
import { Worker } from 'node:worker_threads';
import { startSiblingWorker } from '../../util/worker.js';
import type { DecodeReply, DecodeRequest } from './decode.js';

/** Marker in workerData so only pool workers start decode-worker.ts's message loop. */
export const PREDICT_WORKER_ROLE = 'nextray-predict-decoder';

export interface Decoder {
  decode(req: DecodeRequest): Promise<DecodeReply>;
  close(): Promise<void>;
}

/** A decode worker (decode-worker.js beside this module), started the project's one way (src/util/worker.ts). */
function startWorker(): Worker {
  return startSiblingWorker(import.meta.url, 'decode-worker', { workerData: { role: PREDICT_WORKER_ROLE } });
}

class InProcessDecoder implements Decoder {
  async decode(req: DecodeRequest): Promise<DecodeReply> {
    // Loaded on first use: with workers, sharp and the DICOM reader load in the worker threads only.
    const { decodeForPrediction } = await import('./decode.js');
    return decodeForPrediction(req);
  }
  async close(): Promise<void> {}
}

interface Slot {
  worker: Worker;
  pending: Map<number, (r: DecodeReply) => void>;
}

class WorkerPool implements Decoder {
  private readonly slots: Slot[] = [];
  private closed = false;
  private failure: Error | null = null;
  private rejecters = new Set<(e: Error) => void>();

  constructor(count: number) {
    for (let i = 0; i < count; i++) {
      const worker = startWorker();
      const slot: Slot = { worker, pending: new Map() };
      worker.on('message', (r: DecodeReply) => {
        const done = slot.pending.get(r.id);
        slot.pending.delete(r.id);
        done?.(r);
        if (!slot.pending.size) worker.unref();
      });
      worker.on('error', (err) => this.fail(new Error(`decode worker ${i} failed: ${err.message}`)));
      worker.on('exit', (code) => {
        if (!this.closed) this.fail(new Error(`decode worker ${i} exited unexpectedly (code ${code})`));
      });
      worker.unref();
      this.slots.push(slot);
    }
  }

  private fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    for (const r of this.rejecters) r(err);
    this.rejecters.clear();
  }

  decode(req: DecodeRequest): Promise<DecodeReply> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.closed) return Promise.reject(new Error('the decoder pool is closed'));
    let slot = this.slots[0]!;
    for (const s of this.slots) if (s.pending.size < slot.pending.size) slot = s;
    return new Promise((resolve, reject) => {
      const rej = (e: Error) => reject(e);
      this.rejecters.add(rej);
      slot.pending.set(req.id, (r) => {
        this.rejecters.delete(rej);
        resolve(r);
      });
      slot.worker.ref();
      slot.worker.postMessage(req);
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }
}

/** `workers` threads (0: in this thread). */
export function createDecoder(workers: number): Decoder {
  return workers > 0 ? new WorkerPool(workers) : new InProcessDecoder();
}
