/**
 * A bounded work queue in front of inference: at most `concurrency` jobs run, at most `maxWaiting` wait; a job
 * beyond that is refused at once (the server answers 503 with Retry-After) rather than piling up memory and
 * latency. A waiting job whose deadline passes before it starts is dropped too.
 */
import { NextrayError } from '../util/errors.js';

/** The queue is full: the server answers 503 (statusCode) with Retry-After. */
export class QueueFullError extends NextrayError {
  readonly statusCode = 503;
  constructor(readonly waiting: number) {
    super(`server busy: ${waiting} requests already waiting for the model; retry shortly`, { code: 'ERR_SERVER_BUSY' });
    this.name = 'QueueFullError';
  }
}

/** A waiting job's deadline passed before it started: 503 (statusCode) with Retry-After. */
export class QueueTimeoutError extends NextrayError {
  readonly statusCode = 503;
  constructor(ms: number) {
    super(`request waited ${ms} ms for the model without starting; the server is overloaded, retry shortly`, { code: 'ERR_QUEUE_TIMEOUT' });
    this.name = 'QueueTimeoutError';
  }
}

interface Waiter {
  start: () => void;
  timer: NodeJS.Timeout | undefined;
}

export class BoundedQueue {
  private running = 0;
  private readonly waiters: Waiter[] = [];
  private idleResolvers: (() => void)[] = [];

  constructor(
    readonly concurrency: number,
    readonly maxWaiting: number,
    /** Longest wait before a job starts (ms); 0 = no limit. */
    readonly waitTimeoutMs = 0,
  ) {
    if (!Number.isInteger(concurrency) || concurrency < 1) throw new RangeError(`concurrency must be a positive integer, got ${concurrency}`);
    if (!Number.isInteger(maxWaiting) || maxWaiting < 0) throw new RangeError(`maxWaiting must be an integer >= 0, got ${maxWaiting}`);
  }

  get stats(): { running: number; waiting: number } {
    return { running: this.running, waiting: this.waiters.length };
  }

  /** Runs `job` when a slot is free; rejects with QueueFullError / QueueTimeoutError without running it. */
  async run<T>(job: () => Promise<T>): Promise<T> {
    if (this.running >= this.concurrency) {
      if (this.waiters.length >= this.maxWaiting) throw new QueueFullError(this.waiters.length);
      await new Promise<void>((resolve, reject) => {
        const w: Waiter = { start: resolve, timer: undefined };
        if (this.waitTimeoutMs > 0) {
          w.timer = setTimeout(() => {
            const i = this.waiters.indexOf(w);
            if (i >= 0) this.waiters.splice(i, 1);
            reject(new QueueTimeoutError(this.waitTimeoutMs));
          }, this.waitTimeoutMs);
        }
        this.waiters.push(w);
      });
    } else {
      this.running++;
    }
    try {
      return await job();
    } finally {
      const next = this.waiters.shift();
      if (next) {
        if (next.timer) clearTimeout(next.timer);
        next.start(); // the slot passes straight to the next job
      } else {
        this.running--;
        if (this.running === 0) for (const r of this.idleResolvers.splice(0)) r();
      }
    }
  }

  /** Resolves when nothing runs or waits. */
  idle(): Promise<void> {
    if (this.running === 0 && this.waiters.length === 0) return Promise.resolve();
    return new Promise((r) => this.idleResolvers.push(r));
  }
}
