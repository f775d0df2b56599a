/**
 * A .onnx file's ModelProto without its weights: every field as in the file, except that the graph's nodes (field 1)
 * and initializers (field 5) are kept as empty entries (so they are still counted). `readModelInfo` reads it as it
 * reads the whole file. It is a few kilobytes, read with positional reads, so checking a 230 MB model's metadata
 * before ONNX Runtime opens the file never holds the file in JavaScript memory (holding it cost ~500 MB of peak
 * RSS for ResNet-152: the bytes, plus ONNX Runtime's own copy made from them). Node only.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { ProtoDecodeError, WIRE_I32, WIRE_I64, WIRE_LEN, WIRE_VARINT } from './proto.js';

const GRAPH = 7;
const GRAPH_NODE = 1;
const GRAPH_INITIALIZER = 5;

/** What the field walker reads: one byte, a varint, a range of bytes (a copy). */
interface Cursor {
  readonly size: number;
  byte(pos: number): number;
  varint(pos: number): { value: number; next: number };
  bytes(pos: number, n: number): Uint8Array;
}

/** Positional reads through a 64 KB window. */
class FileCursor implements Cursor {
  private readonly buf = Buffer.alloc(1 << 16);
  private start = 0;
  private len = 0;

  constructor(
    private readonly fd: number,
    readonly size: number,
  ) {}

  byte(pos: number): number {
    if (pos >= this.size) throw new ProtoDecodeError(`truncated message at byte ${pos}`);
    if (pos < this.start || pos >= this.start + this.len) {
      this.len = readSync(this.fd, this.buf, 0, this.buf.length, pos);
      this.start = pos;
      if (this.len <= 0) throw new ProtoDecodeError(`cannot read byte ${pos}`);
    }
    return this.buf[pos - this.start]!;
  }

  /** A varint (below 2^53, which every length and tag in a file that fits on disk is). */
  varint(pos: number): { value: number; next: number } {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      const b = this.byte(pos++);
      value += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) return { value, next: pos };
      scale *= 128;
    }
    throw new ProtoDecodeError(`varint longer than 10 bytes at byte ${pos}`);
  }

  bytes(pos: number, n: number): Uint8Array {
    const out = Buffer.alloc(n);
    let done = 0;
    while (done < n) {
      const r = readSync(this.fd, out, done, n - done, pos + done);
      if (r <= 0) throw new ProtoDecodeError(`truncated message at byte ${pos + done}`);
      done += r;
    }
    return out;
  }
}

function encodeVarint(v: number): Uint8Array {
  const out: number[] = [];
  do {
    let b = v % 128;
    v = Math.floor(v / 128);
    if (v > 0) b |= 0x80;
    out.push(b);
  } while (v > 0);
  return Uint8Array.from(out);
}

interface FieldSpan {
  field: number;
  wire: number;
  /** Where the tag starts and ends, where the payload starts, where the field ends. */
  tagPos: number;
  tagEnd: number;
  payloadPos: number;
  end: number;
}

function* fields(c: Cursor, start: number, end: number): Generator<FieldSpan> {
  let pos = start;
  while (pos < end) {
    const tagPos = pos;
    const k = c.varint(pos);
    const field = Math.floor(k.value / 8);
    const wire = k.value % 8;
    if (field < 1) throw new ProtoDecodeError(`invalid field number 0 at byte ${tagPos}`);
    let payloadPos = k.next;
    let fieldEnd: number;
    if (wire === WIRE_VARINT) fieldEnd = c.varint(payloadPos).next;
    else if (wire === WIRE_I64) fieldEnd = payloadPos + 8;
    else if (wire === WIRE_I32) fieldEnd = payloadPos + 4;
    else if (wire === WIRE_LEN) {
      const n = c.varint(payloadPos);
      payloadPos = n.next;
      fieldEnd = payloadPos + n.value;
    } else throw new ProtoDecodeError(`unsupported wire type ${wire} (field ${field}) at byte ${tagPos}`);
    if (fieldEnd > end) throw new ProtoDecodeError(`field ${field} at byte ${tagPos} runs past the end of its message (${fieldEnd} > ${end})`);
    yield { field, wire, tagPos, tagEnd: k.next, payloadPos, end: fieldEnd };
    pos = fieldEnd;
  }
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.byteLength;
  }
  return out;
}

/** An encoded model already in memory (an export's bytes). */
class BytesCursor implements Cursor {
  constructor(private readonly buf: Uint8Array) {}

  get size(): number {
    return this.buf.byteLength;
  }

  byte(pos: number): number {
    if (pos >= this.buf.byteLength) throw new ProtoDecodeError(`truncated message at byte ${pos}`);
    return this.buf[pos]!;
  }

  varint(pos: number): { value: number; next: number } {
    return FileCursor.prototype.varint.call(this, pos) as { value: number; next: number };
  }

  bytes(pos: number, n: number): Uint8Array {
    if (pos + n > this.buf.byteLength) throw new ProtoDecodeError(`truncated message at byte ${this.buf.byteLength}`);
    return this.buf.slice(pos, pos + n);
  }
}

function skeletonOf(c: Cursor): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const f of fields(c, 0, c.size)) {
    if (f.field !== GRAPH || f.wire !== WIRE_LEN) {
      parts.push(c.bytes(f.tagPos, f.end - f.tagPos));
      continue;
    }
    const graph: Uint8Array[] = [];
    for (const g of fields(c, f.payloadPos, f.end)) {
      const heavy = (g.field === GRAPH_NODE || g.field === GRAPH_INITIALIZER) && g.wire === WIRE_LEN;
      graph.push(heavy ? concat([c.bytes(g.tagPos, g.tagEnd - g.tagPos), Uint8Array.of(0)]) : c.bytes(g.tagPos, g.end - g.tagPos));
    }
    const body = concat(graph);
    parts.push(c.bytes(f.tagPos, f.tagEnd - f.tagPos), encodeVarint(body.byteLength), body);
  }
  return concat(parts);
}

/** The skeleton of the ModelProto in `path` (see the file comment). Throws ProtoDecodeError for a malformed file. */
export function readModelSkeleton(path: string): Uint8Array {
  const fd = openSync(path, 'r');
  try {
    return skeletonOf(new FileCursor(fd, fstatSync(fd).size));
  } finally {
    closeSync(fd);
  }
}

/** The skeleton of an encoded ModelProto in memory (what readModelSkeleton gives for the same bytes in a file). */
export function modelSkeleton(bytes: Uint8Array): Uint8Array {
  return skeletonOf(new BytesCursor(bytes));
}
