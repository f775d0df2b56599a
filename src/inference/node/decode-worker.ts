/**
 * Worker-thread entry of the prediction decoders (./pool.ts): each message is a DecodeRequest, each reply its
 * DecodeReply with the input buffers transferred. The loop only starts inside a pool worker, so importing this
 * module has no side effects.
 */
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { decodeForPrediction, type DecodeRequest } from './decode.js';
import { PREDICT_WORKER_ROLE } from './pool.js';

if (!isMainThread && parentPort && (workerData as { role?: string } | null)?.role === PREDICT_WORKER_ROLE) {
  const port = parentPort;
  port.on('message', (req: DecodeRequest) => {
    void decodeForPrediction(req).then((r) => {
      const transfer = r.ok ? r.inputs.map((x) => x.buffer as ArrayBuffer) : [];
      port.postMessage(r, transfer);
    });
  });
}
