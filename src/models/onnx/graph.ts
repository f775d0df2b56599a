/**
 * The ONNX messages this project writes and reads, over the tiny protobuf codec in proto.ts: an in-memory graph
 * (`OnnxGraph`: nodes, float32 initializers, typed inputs/outputs) encoded as a ModelProto, and a reader for what a
 * consumer needs back without touching the weights (IR/opset versions, producer, metadata_props, graph inputs and
 * outputs with their shapes).
 *
 * Field numbers are those of onnx/onnx.proto (IR version 8, the one that goes with opset 17):
 *   ModelProto       ir_version 1, producer_name 2, producer_version 3, domain 4, model_version 5, doc_string 6,
 *                    graph 7, opset_import 8, metadata_props 14
 *   OperatorSetIdProto domain 1, version 2          StringStringEntryProto key 1, value 2
 *   GraphProto       node 1, name 2, initializer 5, doc_string 10, input 11, output 12
 *   NodeProto        input 1, output 2, name 3, op_type 4, attribute 5, domain 7
 *   AttributeProto   name 1, f 2, i 3, s 4, floats 7, ints 8, type 20 (FLOAT 1, INT 2, STRING 3, FLOATS 6, INTS 7)
 *   TensorProto      dims 1, data_type 2 (FLOAT 1, UINT8 2, INT8 3, INT32 6, INT64 7, FLOAT16 10), name 8,
 *                    raw_data 9 (little-endian)
 *   ValueInfoProto   name 1, type 2;  TypeProto tensor_type 1;  TypeProto.Tensor elem_type 1, shape 2;
 *   TensorShapeProto dim 1;  Dimension dim_value 1, dim_param 2
 */
import { ProtoDecodeError, ProtoWriter, WIRE_LEN, WIRE_VARINT, asInt64, decodeString, readFields } from './proto.js';

export const ONNX_IR_VERSION = 8;
export const ONNX_OPSET = 17;

const TENSOR_FLOAT = 1;
const TENSOR_UINT8 = 2;
const TENSOR_INT8 = 3;
const TENSOR_INT32 = 6;
const TENSOR_INT64 = 7;
const TENSOR_FLOAT16 = 10;

const ATTR_FLOAT = 1;
const ATTR_INT = 2;
const ATTR_STRING = 3;
const ATTR_FLOATS = 6;
const ATTR_INTS = 7;

/** A node attribute: numbers are INT when integral unless given as `{ float }`; arrays of integers are INTS. */
export type AttrValue = number | string | number[] | { float: number } | { floats: number[] };

export interface OnnxNode {
  opType: string;
  inputs: string[];
  outputs: string[];
  name?: string;
  attrs?: Record<string, AttrValue>;
}

/** A constant tensor (weights). `data` is kept by reference until the model is encoded. */
export interface OnnxInitializer {
  name: string;
  dims: number[];
  /**
   * Float32Array (FLOAT), BigInt64Array (INT64), Int8Array (INT8), Uint8Array (UINT8), Int32Array (INT32), or
   * Uint16Array holding IEEE half-precision bit patterns (FLOAT16; see quantize.ts).
   */
  data: Float32Array | BigInt64Array | Int8Array | Uint8Array | Int32Array | Uint16Array;
}

/** TensorProto.DataType of an initializer's array (onnx.proto: FLOAT 1, UINT8 2, INT8 3, INT32 6, INT64 7, FLOAT16 10). */
export function tensorDataType(data: OnnxInitializer['data']): number {
  if (data instanceof Float32Array) return TENSOR_FLOAT;
  if (data instanceof BigInt64Array) return TENSOR_INT64;
  if (data instanceof Int8Array) return TENSOR_INT8;
  if (data instanceof Uint8Array) return TENSOR_UINT8;
  if (data instanceof Int32Array) return TENSOR_INT32;
  if (data instanceof Uint16Array) return TENSOR_FLOAT16;
  throw new TypeError(`unsupported initializer array ${(data as object)?.constructor?.name}`);
}

/**
 * A graph input/output: float32 tensors here; a dimension is a number or a symbolic name (dynamic). No shape:
 * unknown rank (the extra outputs a calibration run asks for).
 */
export interface OnnxValueInfo {
  name: string;
  elemType: 'float32';
  shape?: Array<number | string>;
}

export interface OnnxGraph {
  name: string;
  nodes: OnnxNode[];
  initializers: OnnxInitializer[];
  inputs: OnnxValueInfo[];
  outputs: OnnxValueInfo[];
  docString?: string;
}

export interface OnnxModelMeta {
  producerName: string;
  producerVersion: string;
  docString?: string;
  /** metadata_props, in insertion order. */
  metadata: Record<string, string>;
  opset?: number;
}

function writeAttr(w: ProtoWriter, name: string, value: AttrValue): void {
  w.string(1, name);
  if (typeof value === 'string') {
    w.bytes(4, new TextEncoder().encode(value)).varint(20, ATTR_STRING);
  } else if (typeof value === 'number') {
    if (!Number.isInteger(value)) throw new RangeError(`attribute ${name}: ${value} is not an integer (wrap floats as { float })`);
    w.varint(3, value).varint(20, ATTR_INT);
  } else if (Array.isArray(value)) {
    if (!value.every(Number.isInteger)) throw new RangeError(`attribute ${name}: INTS must be integers, got [${value.join(', ')}]`);
    // proto2 `repeated int64` is not packed: one key per element (packed would also parse, but this is canonical).
    w.repeatedVarints(8, value).varint(20, ATTR_INTS);
  } else if ('float' in value) {
    w.float(2, value.float).varint(20, ATTR_FLOAT);
  } else {
    for (const f of value.floats) w.float(7, f);
    w.varint(20, ATTR_FLOATS);
  }
}

export function writeNode(w: ProtoWriter, n: OnnxNode): void {
  for (const i of n.inputs) w.string(1, i);
  for (const o of n.outputs) w.string(2, o);
  if (n.name) w.string(3, n.name);
  w.string(4, n.opType);
  for (const [k, v] of Object.entries(n.attrs ?? {})) w.message(5, (a) => writeAttr(a, k, v));
}

export function writeTensor(w: ProtoWriter, t: OnnxInitializer): void {
  let count = 1;
  for (const d of t.dims) {
    if (!Number.isInteger(d) || d < 0) throw new RangeError(`initializer ${t.name}: bad dimension ${d}`);
    count *= d;
  }
  if (count !== t.data.length) {
    throw new RangeError(`initializer ${t.name}: dims [${t.dims.join(', ')}] need ${count} values, got ${t.data.length}`);
  }
  w.repeatedVarints(1, t.dims);
  w.varint(2, tensorDataType(t.data));
  w.string(8, t.name);
  // raw_data is little-endian; typed arrays use the host's order, which is little-endian on every platform
  // Node and browsers run on (checked once below).
  w.bytes(9, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
}

function writeValueInfo(w: ProtoWriter, v: OnnxValueInfo): void {
  w.string(1, v.name);
  w.message(2, (type) =>
    type.message(1, (tensor) => {
      tensor.varint(1, TENSOR_FLOAT);
      if (v.shape) {
        const dims = v.shape;
        tensor.message(2, (shape) => {
          for (const d of dims) {
            shape.message(1, (dim) => (typeof d === 'number' ? dim.varint(1, d) : dim.string(2, d)));
          }
        });
      }
    }),
  );
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * Encode a ModelProto. Returns chunks whose large members are views of the initializers' arrays (no copy): write
 * them out in order, or concatenate. Checks the graph's wiring first (every node input produced earlier, by an
 * initializer or a graph input; unique outputs) so a bad graph fails here with the node's name, not in a runtime.
 */
export function encodeModel(graph: OnnxGraph, meta: OnnxModelMeta): Uint8Array[] {
  if (!LITTLE_ENDIAN) throw new Error('ONNX export needs a little-endian host (raw_data is little-endian)');
  checkGraph(graph);
  const model = new ProtoWriter();
  model.varint(1, ONNX_IR_VERSION);
  model.string(2, meta.producerName);
  model.string(3, meta.producerVersion);
  if (meta.docString) model.string(6, meta.docString);
  model.message(7, (g) => {
    for (const n of graph.nodes) g.message(1, (w) => writeNode(w, n));
    g.string(2, graph.name);
    for (const t of graph.initializers) g.message(5, (w) => writeTensor(w, t));
    if (graph.docString) g.string(10, graph.docString);
    for (const v of graph.inputs) g.message(11, (w) => writeValueInfo(w, v));
    for (const v of graph.outputs) g.message(12, (w) => writeValueInfo(w, v));
  });
  model.message(8, (o) => o.string(1, '').varint(2, meta.opset ?? ONNX_OPSET));
  for (const [k, v] of Object.entries(meta.metadata)) model.message(14, (e) => e.string(1, k).string(2, v));
  return model.finishChunks();
}

function checkGraph(g: OnnxGraph): void {
  const known = new Set<string>();
  const add = (name: string, what: string): void => {
    if (!name) throw new Error(`ONNX graph ${g.name}: ${what} has an empty name`);
    if (known.has(name)) throw new Error(`ONNX graph ${g.name}: value '${name}' is defined twice (${what})`);
    known.add(name);
  };
  for (const i of g.inputs) add(i.name, 'graph input');
  for (const t of g.initializers) add(t.name, 'initializer');
  g.nodes.forEach((n, idx) => {
    for (const i of n.inputs) {
      if (i !== '' && !known.has(i)) {
        throw new Error(`ONNX graph ${g.name}: node ${n.name ?? idx} (${n.opType}) reads '${i}' before anything defines it`);
      }
    }
    for (const o of n.outputs) add(o, `output of node ${n.name ?? idx}`);
  });
  for (const o of g.outputs) if (!known.has(o.name)) throw new Error(`ONNX graph ${g.name}: graph output '${o.name}' is never computed`);
}

/** What `readModelInfo` finds in an ONNX file without decoding the weights. */
export interface OnnxModelInfo {
  irVersion: number;
  opsets: Array<{ domain: string; version: number }>;
  producerName: string;
  producerVersion: string;
  metadata: Record<string, string>;
  inputs: Array<{ name: string; elemType: number; shape: Array<number | string | null> }>;
  outputs: Array<{ name: string; elemType: number; shape: Array<number | string | null> }>;
  nodeCount: number;
  initializerCount: number;
}

function readValueInfo(bytes: Uint8Array): OnnxModelInfo['inputs'][number] {
  let name = '';
  let elemType = 0;
  const shape: Array<number | string | null> = [];
  for (const f of readFields(bytes)) {
    if (f.field === 1 && f.wire === WIRE_LEN) name = decodeString(f.value);
    else if (f.field === 2 && f.wire === WIRE_LEN) {
      for (const t of readFields(f.value)) {
        if (t.field !== 1 || t.wire !== WIRE_LEN) continue; // only tensor types
        for (const tf of readFields(t.value)) {
          if (tf.field === 1 && tf.wire === WIRE_VARINT) elemType = Number(tf.value);
          else if (tf.field === 2 && tf.wire === WIRE_LEN) {
            for (const d of readFields(tf.value)) {
              if (d.field !== 1 || d.wire !== WIRE_LEN) continue;
              let dim: number | string | null = null;
              for (const x of readFields(d.value)) {
                if (x.field === 1 && x.wire === WIRE_VARINT) dim = Number(asInt64(x.value));
                else if (x.field === 2 && x.wire === WIRE_LEN) dim = decodeString(x.value);
              }
              shape.push(dim);
            }
          }
        }
      }
    }
  }
  return { name, elemType, shape };
}

/**
 * Read an ONNX ModelProto's header facts and metadata_props. Weights are skipped (only views are taken), so this
 * costs microseconds even for a 230 MB file. Throws `ProtoDecodeError` for bytes that are not a ModelProto.
 */
export function readModelInfo(bytes: Uint8Array): OnnxModelInfo {
  const info: OnnxModelInfo = {
    irVersion: 0,
    opsets: [],
    producerName: '',
    producerVersion: '',
    metadata: {},
    inputs: [],
    outputs: [],
    nodeCount: 0,
    initializerCount: 0,
  };
  let sawGraph = false;
  for (const f of readFields(bytes)) {
    if (f.field === 1 && f.wire === WIRE_VARINT) info.irVersion = Number(f.value);
    else if (f.field === 2 && f.wire === WIRE_LEN) info.producerName = decodeString(f.value);
    else if (f.field === 3 && f.wire === WIRE_LEN) info.producerVersion = decodeString(f.value);
    else if (f.field === 7 && f.wire === WIRE_LEN) {
      sawGraph = true;
      for (const g of readFields(f.value, f.offset)) {
        if (g.field === 1) info.nodeCount++;
        else if (g.field === 5) info.initializerCount++;
        else if (g.field === 11 && g.wire === WIRE_LEN) info.inputs.push(readValueInfo(g.value));
        else if (g.field === 12 && g.wire === WIRE_LEN) info.outputs.push(readValueInfo(g.value));
      }
    } else if (f.field === 8 && f.wire === WIRE_LEN) {
      let domain = '';
      let version = 0;
      for (const o of readFields(f.value)) {
        if (o.field === 1 && o.wire === WIRE_LEN) domain = decodeString(o.value);
        else if (o.field === 2 && o.wire === WIRE_VARINT) version = Number(o.value);
      }
      info.opsets.push({ domain, version });
    } else if (f.field === 14 && f.wire === WIRE_LEN) {
      let key = '';
      let value = '';
      for (const e of readFields(f.value)) {
        if (e.field === 1 && e.wire === WIRE_LEN) key = decodeString(e.value);
        else if (e.field === 2 && e.wire === WIRE_LEN) value = decodeString(e.value);
      }
      info.metadata[key] = value;
    }
  }
  if (!sawGraph || info.irVersion === 0) {
    throw new ProtoDecodeError(`not an ONNX model (${sawGraph ? 'no ir_version' : 'no graph'} in the ModelProto)`);
  }
  return info;
}

/**
 * `concatChunks` without a second copy of the weights, for chunks whose large parts are views of one buffer the
 * caller gives up (an export that consumed the weights it was read for): the model is written from the start of
 * that buffer, each view moved down to its place. Safe only when every view lies at or after its place in the
 * output (then no write reaches a view not yet moved); otherwise, or when the buffer is too small, it copies like
 * `concatChunks`. `chunks` is replaced by the one result, since the views it held are overwritten. For ResNet-152
 * this saves a fresh 240 MB array, whose first touch alone took 0.6 s on a 2-core VM.
 */
export function concatChunksInPlace(chunks: Uint8Array[]): Uint8Array {
  let total = 0;
  let host: ArrayBufferLike | undefined;
  let largest = 0;
  for (const c of chunks) {
    total += c.byteLength;
    if (c.byteLength > largest) {
      largest = c.byteLength;
      host = c.buffer;
    }
  }
  let fits = host !== undefined && !(host instanceof SharedArrayBuffer) && host.byteLength >= total;
  if (fits) {
    let at = 0;
    for (const c of chunks) {
      if (c.buffer === host && c.byteOffset < at) {
        fits = false;
        break;
      }
      at += c.byteLength;
    }
  }
  const out = fits ? new Uint8Array(host!, 0, total) : concatChunks(chunks);
  if (fits) {
    // Views may lie past the model's end: move them within the whole buffer (copyWithin clamps to the view).
    const all = new Uint8Array(host!);
    let at = 0;
    for (const c of chunks) {
      if (c.buffer === host) {
        if (c.byteOffset !== at) all.copyWithin(at, c.byteOffset, c.byteOffset + c.byteLength);
      } else {
        out.set(c, at);
      }
      at += c.byteLength;
    }
  }
  chunks.splice(0, chunks.length, out);
  return out;
}

/** Concatenate encoded chunks into one array (what onnxruntime's `InferenceSession.create(bytes)` takes). */
export function concatChunks(chunks: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const c of chunks) n += c.byteLength;
  const out = new Uint8Array(n);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.byteLength;
  }
  return out;
}

export { TENSOR_FLOAT, TENSOR_INT64, TENSOR_INT8, TENSOR_UINT8, TENSOR_INT32, TENSOR_FLOAT16 };
