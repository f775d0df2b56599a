/**
 * Writes an adapted model: the deployed .onnx file with its head replaced by an adapted one (site adaptation,
 * src/calibrate/adapt/), at the protobuf level, so fp32, fp16 and int8 files are handled alike and the trunk's
 * bytes are copied, never decoded. Browser-safe (bytes in, chunks out).
 *
 * The deployed graph computes z = Gemm(features) (its raw logit), `logits` = z / T, `probability` = sigmoid, and
 * `cam` = Squeeze(Relu(Conv(F, cam.weight))). The adapted head is in offset form, z' = z + features . dw + db, so:
 *
 *   adaptK.delta  = Gemm(features, adaptK.delta_weight [C, 1], adaptK.delta_bias [1])
 *   adaptK.raw    = Add(z, adaptK.delta)
 *   logits        = Div(adaptK.raw, adaptK.temperature)          probability = Sigmoid(logits)
 *   cam           = Squeeze(Relu(Conv(F, Add(cam.weight, adaptK.cam_delta))))   (the CAM of the adapted weights)
 *
 * The old nodes that computed `logits`, `probability` and `cam` become unused and are removed (with initializers no
 * longer read), so the file runs exactly the adapted head. Graph outputs keep their names and shapes; the metadata
 * gets the new `decision_threshold` and `temperature`, and whatever `metadata` adds (e.g. `adaptation`).
 * The deployed file must have the `features` output (`nextray export --features`).
 */
import { ProtoDecodeError, ProtoWriter, WIRE_I32, WIRE_I64, WIRE_LEN, WIRE_VARINT, decodeString, readFields, type ProtoField } from './proto.js';
import { writeNode, writeTensor, type OnnxInitializer, type OnnxNode } from './graph.js';
import { ONNX_FEATURES, ONNX_LOGITS, ONNX_PROBABILITY } from './format.js';
import { ONNX_CAM } from './extras.js';
import { OnnxModelError } from './info.js';

export interface HeadReplacement {
  /** dw [C]. */
  deltaWeight: Float32Array;
  deltaBias: number;
  /** The adapted temperature T' (logits = z' / T'). */
  temperature: number;
  threshold: number;
  /** metadata_props to add or replace (strings). */
  metadata?: Record<string, string>;
}

interface DecodedNode {
  inputs: string[];
  outputs: string[];
  name: string | null;
  opType: string;
  /** Other fields (attributes, domain, doc string), as read. */
  rest: ProtoField[];
}

function rawField(w: ProtoWriter, f: ProtoField): void {
  if (f.wire === WIRE_VARINT) w.varint(f.field, f.value);
  else if (f.wire === WIRE_LEN) w.bytes(f.field, f.value);
  else if (f.wire === WIRE_I32 || f.wire === WIRE_I64) {
    // ProtoWriter has no raw fixed-width writer: floats (attribute f) are the only I32 fields ONNX uses.
    if (f.wire === WIRE_I32) w.float(f.field, new DataView(f.value.buffer, f.value.byteOffset, 4).getFloat32(0, true));
    else throw new ProtoDecodeError(`unexpected 64-bit fixed field ${f.field} in an ONNX message`);
  }
}

function decodeNode(bytes: Uint8Array): DecodedNode {
  const n: DecodedNode = { inputs: [], outputs: [], name: null, opType: '', rest: [] };
  for (const f of readFields(bytes)) {
    if (f.wire === WIRE_LEN && f.field === 1) n.inputs.push(decodeString(f.value));
    else if (f.wire === WIRE_LEN && f.field === 2) n.outputs.push(decodeString(f.value));
    else if (f.wire === WIRE_LEN && f.field === 3) n.name = decodeString(f.value);
    else if (f.wire === WIRE_LEN && f.field === 4) n.opType = decodeString(f.value);
    else n.rest.push(f);
  }
  return n;
}

function encodeDecoded(w: ProtoWriter, n: DecodedNode): void {
  for (const i of n.inputs) w.string(1, i);
  for (const o of n.outputs) w.string(2, o);
  if (n.name !== null) w.string(3, n.name);
  w.string(4, n.opType);
  for (const f of n.rest) rawField(w, f);
}

function tensorName(bytes: Uint8Array): string {
  for (const f of readFields(bytes)) if (f.field === 8 && f.wire === WIRE_LEN) return decodeString(f.value);
  return '';
}

function valueInfoName(bytes: Uint8Array): string {
  for (const f of readFields(bytes)) if (f.field === 1 && f.wire === WIRE_LEN) return decodeString(f.value);
  return '';
}

type GraphItem = { kind: 'node'; node: DecodedNode } | { kind: 'init'; name: string; field: ProtoField } | { kind: 'other'; field: ProtoField };

/** The adapted model's bytes (as chunks, large ones views of `bytes`): see the module comment. */
export function replaceHead(bytes: Uint8Array, h: HeadReplacement): Uint8Array[] {
  if (!(h.temperature > 0) || !Number.isFinite(h.temperature)) throw new RangeError(`temperature must be a positive number, got ${h.temperature}`);
  if (!(h.threshold >= 0 && h.threshold <= 1)) throw new RangeError(`threshold must be in [0, 1], got ${h.threshold}`);
  const top: ProtoField[] = [];
  let graphField: (ProtoField & { wire: typeof WIRE_LEN }) | null = null;
  const metadata: [string, string][] = [];
  for (const f of readFields(bytes)) {
    if (f.field === 7 && f.wire === WIRE_LEN) graphField = f;
    else if (f.field === 14 && f.wire === WIRE_LEN) {
      let k = '';
      let v = '';
      for (const e of readFields(f.value)) {
        if (e.field === 1 && e.wire === WIRE_LEN) k = decodeString(e.value);
        else if (e.field === 2 && e.wire === WIRE_LEN) v = decodeString(e.value);
      }
      metadata.push([k, v]);
    } else top.push(f);
  }
  if (!graphField) throw new ProtoDecodeError('not an ONNX model (no graph)');

  const items: GraphItem[] = [];
  const outputs: string[] = [];
  const names = new Set<string>();
  for (const f of readFields(graphField.value)) {
    if (f.field === 1 && f.wire === WIRE_LEN) {
      const node = decodeNode(f.value);
      items.push({ kind: 'node', node });
      for (const o of node.outputs) names.add(o);
    } else if (f.field === 5 && f.wire === WIRE_LEN) {
      const name = tensorName(f.value);
      names.add(name);
      items.push({ kind: 'init', name, field: f });
    } else {
      if (f.field === 12 && f.wire === WIRE_LEN) outputs.push(valueInfoName(f.value));
      if (f.field === 11 && f.wire === WIRE_LEN) names.add(valueInfoName(f.value));
      items.push({ kind: 'other', field: f });
    }
  }
  if (!outputs.includes(ONNX_FEATURES)) throw new OnnxModelError(`the model has no '${ONNX_FEATURES}' output; export it with 'nextray export --features'`);
  if (!outputs.includes(ONNX_LOGITS) || !outputs.includes(ONNX_PROBABILITY)) throw new OnnxModelError("the model has no binary head (outputs logits and probability); export it with 'nextray export --head binary --features'");
  const nodes = items.filter((i): i is { kind: 'node'; node: DecodedNode } => i.kind === 'node').map((i) => i.node);
  const producer = new Map<string, DecodedNode>();
  for (const n of nodes) for (const o of n.outputs) producer.set(o, n);
  const features = producer.get(ONNX_FEATURES);
  const d = h.deltaWeight.length;
  if (!features) throw new OnnxModelError(`no node computes '${ONNX_FEATURES}'; give the .onnx file that 'nextray export --features' wrote`);

  // The deployed raw logit: the Div's numerator when the graph divides by a temperature, else `logits` itself.
  const logitsNode = producer.get(ONNX_LOGITS)!;
  const dividesByTemperature = logitsNode.opType === 'Div' && /^(temperature|adapt\d+\.temperature)$/.test(logitsNode.inputs[1] ?? '');
  let raw = dividesByTemperature ? logitsNode.inputs[0]! : ONNX_LOGITS;
  // The names the old head computed move aside (and die below); a fresh prefix for what is added.
  const moved = new Map<string, string>();
  let k = 1;
  while ([...names].some((nm) => nm.startsWith(`adapt${k}.`) || nm === `base${k}.${ONNX_LOGITS}`)) k++;
  const pre = `adapt${k}.`;
  for (const o of [ONNX_LOGITS, ONNX_PROBABILITY, ONNX_CAM]) moved.set(o, `base${k}.${o}`);
  for (const n of nodes) {
    n.inputs = n.inputs.map((i) => moved.get(i) ?? i);
    n.outputs = n.outputs.map((o) => moved.get(o) ?? o);
  }
  raw = moved.get(raw) ?? raw;

  const added: OnnxNode[] = [];
  const inits: OnnxInitializer[] = [];
  inits.push({ name: `${pre}delta_weight`, dims: [d, 1], data: Float32Array.from(h.deltaWeight) });
  inits.push({ name: `${pre}delta_bias`, dims: [1], data: Float32Array.of(h.deltaBias) });
  inits.push({ name: `${pre}temperature`, dims: [1], data: Float32Array.of(h.temperature) });
  added.push({ opType: 'Gemm', inputs: [ONNX_FEATURES, `${pre}delta_weight`, `${pre}delta_bias`], outputs: [`${pre}delta`], name: `${pre}delta`, attrs: { alpha: { float: 1 }, beta: { float: 1 }, transA: 0, transB: 0 } });
  added.push({ opType: 'Add', inputs: [raw, `${pre}delta`], outputs: [`${pre}raw`], name: `${pre}raw` });
  added.push({ opType: 'Div', inputs: [`${pre}raw`, `${pre}temperature`], outputs: [ONNX_LOGITS], name: `${pre}logits` });
  added.push({ opType: 'Sigmoid', inputs: [ONNX_LOGITS], outputs: [ONNX_PROBABILITY], name: `${pre}probability` });
  if (outputs.includes(ONNX_CAM)) {
    // Back from the Squeeze through Relu (and an int8 file's Quantize/Dequantize pair) to the 1x1 Conv: its
    // input is the feature map, its weight the current CAM weights (the export's, or a previous adaptation's).
    const squeeze = producer.get(ONNX_CAM);
    let conv = squeeze?.opType === 'Squeeze' ? producer.get(squeeze.inputs[0]!) : undefined;
    for (let hops = 0; conv && conv.opType !== 'Conv' && hops < 4; hops++) {
      conv = ['Relu', 'QuantizeLinear', 'DequantizeLinear'].includes(conv.opType) ? producer.get(conv.inputs[0]!) : undefined;
    }
    if (!conv || conv.opType !== 'Conv' || !squeeze) throw new OnnxModelError("cannot find the CAM branch (Conv ... Relu ... Squeeze) in the model; give the .onnx file that 'nextray export --features' wrote");
    inits.push({ name: `${pre}cam_delta`, dims: [1, d, 1, 1], data: Float32Array.from(h.deltaWeight) });
    added.push({ opType: 'Add', inputs: [conv.inputs[1]!, `${pre}cam_delta`], outputs: [`${pre}cam_weight`], name: `${pre}cam_weight` });
    added.push({ opType: 'Conv', inputs: [conv.inputs[0]!, `${pre}cam_weight`], outputs: [`${pre}cam_conv`], name: `${pre}cam_conv`, attrs: { kernel_shape: [1, 1], strides: [1, 1], pads: [0, 0, 0, 0], dilations: [1, 1], group: 1 } });
    added.push({ opType: 'Relu', inputs: [`${pre}cam_conv`], outputs: [`${pre}cam_relu`], name: `${pre}cam_relu` });
    added.push({ opType: 'Squeeze', inputs: [`${pre}cam_relu`, squeeze.inputs[1]!], outputs: [ONNX_CAM], name: `${pre}cam` });
  }

  // Keep only what the outputs need (the old head's nodes and their initializers drop out).
  const needed = new Set(outputs);
  for (let i = added.length - 1; i >= 0; i--) for (const x of added[i]!.inputs) needed.add(x);
  const keepNode = new Set<DecodedNode>();
  for (let i = nodes.length - 1; i >= 0; i--) {
    const n = nodes[i]!;
    if (!n.outputs.some((o) => needed.has(o))) continue;
    keepNode.add(n);
    for (const x of n.inputs) if (x) needed.add(x);
  }

  const w = new ProtoWriter();
  for (const f of top) rawField(w, f);
  w.message(7, (g) => {
    for (const it of items) {
      if (it.kind === 'node') {
        if (keepNode.has(it.node)) g.message(1, (nw) => encodeDecoded(nw, it.node));
      } else if (it.kind === 'init') {
        if (needed.has(it.name)) rawField(g, it.field);
      }
    }
    for (const n of added) g.message(1, (nw) => writeNode(nw, n));
    for (const t of inits) g.message(5, (tw) => writeTensor(tw, t));
    for (const it of items) if (it.kind === 'other') rawField(g, it.field);
  });
  const meta = new Map(metadata);
  meta.set('decision_threshold', String(h.threshold));
  meta.set('temperature', String(h.temperature));
  for (const [key, v] of Object.entries(h.metadata ?? {})) meta.set(key, v);
  for (const [key, v] of meta) w.message(14, (e) => e.string(1, key).string(2, v));
  return w.finishChunks();
}

/** The same model with metadata_props added or replaced (everything else copied as read). */
export function setMetadata(bytes: Uint8Array, metadata: Record<string, string>): Uint8Array[] {
  const w = new ProtoWriter();
  const meta = new Map<string, string>();
  let sawGraph = false;
  for (const f of readFields(bytes)) {
    if (f.field === 14 && f.wire === WIRE_LEN) {
      let k = '';
      let v = '';
      for (const e of readFields(f.value)) {
        if (e.field === 1 && e.wire === WIRE_LEN) k = decodeString(e.value);
        else if (e.field === 2 && e.wire === WIRE_LEN) v = decodeString(e.value);
      }
      meta.set(k, v);
    } else {
      if (f.field === 7) sawGraph = true;
      rawField(w, f);
    }
  }
  if (!sawGraph) throw new ProtoDecodeError('not an ONNX model (no graph)');
  for (const [k, v] of Object.entries(metadata)) meta.set(k, v);
  for (const [k, v] of meta) w.message(14, (e) => e.string(1, k).string(2, v));
  return w.finishChunks();
}
