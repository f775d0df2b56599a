/**
 * A safe, minimal Python pickle interpreter for reading `torch.save` files. Unlike Python's own unpickler it
 * never imports or runs anything named by the file: every GLOBAL must be on a caller-supplied whitelist of plain
 * TypeScript handlers, and anything else is refused (or, only when asked for, kept as an inert placeholder).
 * Opcodes of protocols 0-5 that plain data needs are supported; out-of-band buffers are refused.
 *
 * Python values map to: None -> null, bool -> boolean, int -> number (bigint beyond 2^53), float -> number,
 * str -> string, bytes -> Uint8Array, list/tuple -> array, dict -> PyDict (a Map that also carries instance
 * attributes set by BUILD, e.g. torchvision's `_metadata`), set -> Set.
 */
import { EXIT_USAGE, NextrayError, type NextrayErrorOptions } from '../../util/errors.js';

/** A Python dict (or OrderedDict): a Map in insertion order, plus the attributes BUILD gave it. */
export class PyDict extends Map<unknown, unknown> {
  /** Instance attributes (`__dict__`), e.g. `_metadata` on a torchvision state_dict. */
  attrs: Record<string, unknown> = {};
}

/** A placeholder for an object of a non-whitelisted class, kept only in `unknownGlobals: 'opaque'` mode. */
export class PyOpaque {
  constructor(
    readonly module: string,
    readonly name: string,
    /** Arguments it was constructed with (REDUCE / NEWOBJ), if any. */
    public args: unknown[] | null = null,
    /** State set by BUILD, if any. */
    public state: unknown = undefined,
  ) {}
  get qualifiedName(): string {
    return `${this.module}.${this.name}`;
  }
}

/** What a whitelisted global does when the pickle calls it (REDUCE, NEWOBJ) or BUILDs an object it made. */
export interface GlobalHandler {
  /** Called with the argument tuple; returns the constructed value. */
  call(args: unknown[]): unknown;
}

export class PickleError extends NextrayError {
  constructor(message: string, opts: NextrayErrorOptions = {}) {
    super(message, { code: 'ERR_PICKLE', exitStatus: EXIT_USAGE, ...opts });
    this.name = 'PickleError';
  }
}

export interface UnpicklerOptions {
  /** Whitelisted globals by `module.name`. */
  globals: Record<string, GlobalHandler>;
  /** Resolves BINPERSID / PERSID references (torch storages). Without it, persistent ids are refused. */
  persistentLoad?: (pid: unknown) => unknown;
  /**
   * What to do with a global not on the whitelist: 'refuse' (default) throws; 'opaque' keeps inert PyOpaque
   * placeholders, which is safe (nothing is ever imported or run) and lets a caller pull the state_dict out of a
   * training checkpoint that also pickled, say, an argparse.Namespace.
   */
  unknownGlobals?: 'refuse' | 'opaque';
}

/** Reference to a whitelisted global (class or function) as pushed by GLOBAL / STACK_GLOBAL. */
export class GlobalRef {
  constructor(
    readonly module: string,
    readonly name: string,
    readonly handler: GlobalHandler | null,
  ) {}
}

const MARK = Symbol('mark');

/**
 * Runs pickles from `bytes` starting at `pos`; `load()` returns the next pickled value and leaves `pos` after
 * its STOP (the legacy torch format is several pickles back to back).
 */
export class Unpickler {
  pos: number;
  private readonly dv: DataView;
  private readonly utf8 = new TextDecoder('utf-8');

  constructor(
    private readonly bytes: Uint8Array,
    private readonly opts: UnpicklerOptions,
    start = 0,
  ) {
    this.pos = start;
    this.dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  private need(n: number): void {
    if (this.pos + n > this.bytes.byteLength) throw new PickleError(`pickle truncated at byte ${this.pos}`);
  }
  private u8(): number {
    this.need(1);
    return this.bytes[this.pos++] as number;
  }
  private u16(): number {
    this.need(2);
    const v = this.dv.getUint16(this.pos, true);
    this.pos += 2;
    return v;
  }
  private u32(): number {
    this.need(4);
    const v = this.dv.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }
  private i32(): number {
    this.need(4);
    const v = this.dv.getInt32(this.pos, true);
    this.pos += 4;
    return v;
  }
  private u64(): number {
    this.need(8);
    const v = this.dv.getBigUint64(this.pos, true);
    this.pos += 8;
    if (v > BigInt(this.bytes.byteLength)) throw new PickleError(`length ${v} at byte ${this.pos - 8} exceeds the pickle`);
    return Number(v);
  }
  private take(n: number): Uint8Array {
    this.need(n);
    const b = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
  private line(encoding: 'utf8' | 'latin1' = 'utf8'): string {
    const end = this.bytes.indexOf(0x0a, this.pos);
    if (end < 0) throw new PickleError(`pickle truncated: no newline after byte ${this.pos}`);
    const raw = this.bytes.subarray(this.pos, end);
    const s = encoding === 'utf8' ? this.utf8.decode(raw) : latin1(raw);
    this.pos = end + 1;
    return s;
  }

  private resolveGlobal(module: string, name: string): GlobalRef {
    const key = `${module}.${name}`;
    const handler = Object.prototype.hasOwnProperty.call(this.opts.globals, key) ? this.opts.globals[key]! : null;
    if (!handler && this.opts.unknownGlobals !== 'opaque') {
      throw new PickleError(
        `refusing to load global '${key}': it is not on the whitelist of plain tensor/state_dict types, and ` +
          'running it could execute arbitrary code. Only load pickles you trust; re-save the weights as a plain ' +
          'state_dict (torch.save(model.state_dict(), path)) or as safetensors',
      );
    }
    return new GlobalRef(module, name, handler);
  }

  private callGlobal(fn: unknown, args: unknown, how: string): unknown {
    if (!Array.isArray(args)) throw new PickleError(`${how}: argument is not a tuple`);
    if (fn instanceof GlobalRef) {
      if (fn.handler) return fn.handler.call(args);
      return new PyOpaque(fn.module, fn.name, args);
    }
    if (fn instanceof PyOpaque) return new PyOpaque(fn.module, fn.name, args);
    throw new PickleError(`${how} on a value that is not a whitelisted global (${describe(fn)})`);
  }

  /** Run until STOP and return the value. */
  load(): unknown {
    const stack: unknown[] = [];
    const marks: number[] = [];
    const memo = new Map<number, unknown>();
    const pop = (): unknown => {
      if (stack.length === 0 || (marks.length && stack.length <= marks[marks.length - 1]!)) {
        throw new PickleError(`stack underflow at byte ${this.pos - 1}`);
      }
      return stack.pop();
    };
    const top = (): unknown => {
      if (stack.length === 0) throw new PickleError(`stack underflow at byte ${this.pos - 1}`);
      return stack[stack.length - 1];
    };
    const popMark = (): unknown[] => {
      const m = marks.pop();
      if (m === undefined) throw new PickleError(`no MARK on the stack at byte ${this.pos - 1}`);
      return stack.splice(m);
    };
    const setItems = (d: unknown, kv: unknown[]): void => {
      if (!(d instanceof Map)) throw new PickleError(`SETITEM(S) on ${describe(d)}, expected a dict`);
      for (let i = 0; i + 1 < kv.length; i += 2) d.set(dictKey(kv[i]), kv[i + 1]);
    };
    const appendAll = (l: unknown, items: unknown[]): void => {
      if (Array.isArray(l)) for (const it of items) l.push(it); // no spread: lists can exceed the argument limit
      else if (l instanceof Set) for (const it of items) l.add(it);
      else throw new PickleError(`APPEND(S) on ${describe(l)}, expected a list`);
    };

    for (;;) {
      const at = this.pos;
      const op = this.u8();
      switch (op) {
        case 0x80: // PROTO
          if (this.u8() > 5) throw new PickleError(`unsupported pickle protocol at byte ${at}`);
          break;
        case 0x95: // FRAME: a length prefix only; frames are contiguous in memory here.
          this.u64();
          break;
        case 0x2e: // STOP
          if (stack.length !== 1 || marks.length) throw new PickleError(`malformed pickle: ${stack.length} values left at STOP`);
          return stack[0];
        // --- constants
        case 0x4e: stack.push(null); break; // NONE
        case 0x88: stack.push(true); break; // NEWTRUE
        case 0x89: stack.push(false); break; // NEWFALSE
        case 0x4a: stack.push(this.i32()); break; // BININT
        case 0x4b: stack.push(this.u8()); break; // BININT1
        case 0x4d: stack.push(this.u16()); break; // BININT2
        case 0x8a: stack.push(decodeLong(this.take(this.u8()))); break; // LONG1
        case 0x8b: { // LONG4
          const n = this.i32();
          if (n < 0) throw new PickleError(`negative LONG4 length at byte ${at}`);
          stack.push(decodeLong(this.take(n)));
          break;
        }
        case 0x47: { // BINFLOAT (big-endian double)
          this.need(8);
          stack.push(this.dv.getFloat64(this.pos, false));
          this.pos += 8;
          break;
        }
        case 0x49: { // INT (text): also encodes True/False as I01/I00 in protocol 0
          const s = this.line();
          if (s === '01') stack.push(true);
          else if (s === '00') stack.push(false);
          else stack.push(parseIntText(s, at));
          break;
        }
        case 0x4c: stack.push(parseIntText(this.line().replace(/L$/, ''), at)); break; // LONG (text)
        case 0x46: stack.push(Number.parseFloat(this.line())); break; // FLOAT (text)
        // --- strings and bytes
        case 0x58: stack.push(this.utf8.decode(this.take(this.u32()))); break; // BINUNICODE
        case 0x8c: stack.push(this.utf8.decode(this.take(this.u8()))); break; // SHORT_BINUNICODE
        case 0x8d: stack.push(this.utf8.decode(this.take(this.u64()))); break; // BINUNICODE8
        case 0x56: stack.push(unescapeRawUnicode(this.line('latin1'))); break; // UNICODE (text, raw-unicode-escape)
        case 0x54: stack.push(latin1(this.take(this.i32nn(at)))); break; // BINSTRING (py2 str)
        case 0x55: stack.push(latin1(this.take(this.u8()))); break; // SHORT_BINSTRING
        case 0x53: stack.push(parseStringLiteral(this.line('latin1'), at)); break; // STRING (text)
        case 0x42: stack.push(this.take(this.u32()).slice()); break; // BINBYTES
        case 0x43: stack.push(this.take(this.u8()).slice()); break; // SHORT_BINBYTES
        case 0x8e: stack.push(this.take(this.u64()).slice()); break; // BINBYTES8
        case 0x96: stack.push(this.take(this.u64()).slice()); break; // BYTEARRAY8
        case 0x97: // NEXT_BUFFER
        case 0x98: // READONLY_BUFFER
          throw new PickleError(`out-of-band pickle buffers are not supported (byte ${at})`);
        // --- containers
        case 0x28: marks.push(stack.length); break; // MARK
        case 0x29: stack.push([]); break; // EMPTY_TUPLE
        case 0x5d: stack.push([]); break; // EMPTY_LIST
        case 0x7d: stack.push(new PyDict()); break; // EMPTY_DICT
        case 0x8f: stack.push(new Set()); break; // EMPTY_SET
        case 0x85: stack.push([pop()]); break; // TUPLE1
        case 0x86: { const b = pop(); const a = pop(); stack.push([a, b]); break; } // TUPLE2
        case 0x87: { const c = pop(); const b = pop(); const a = pop(); stack.push([a, b, c]); break; } // TUPLE3
        case 0x74: stack.push(popMark()); break; // TUPLE
        case 0x6c: stack.push(popMark()); break; // LIST
        case 0x64: { const d = new PyDict(); setItems(d, popMark()); stack.push(d); break; } // DICT
        case 0x91: stack.push(new Set(popMark())); break; // FROZENSET
        case 0x61: { const v = pop(); appendAll(top(), [v]); break; } // APPEND
        case 0x65: { const items = popMark(); appendAll(top(), items); break; } // APPENDS
        case 0x90: { const items = popMark(); appendAll(top(), items); break; } // ADDITEMS
        case 0x73: { const v = pop(); const k = pop(); setItems(top(), [k, v]); break; } // SETITEM
        case 0x75: { const kv = popMark(); setItems(top(), kv); break; } // SETITEMS
        // --- stack and memo
        case 0x30: pop(); break; // POP
        case 0x31: popMark(); break; // POP_MARK
        case 0x32: stack.push(top()); break; // DUP
        case 0x71: memo.set(this.u8(), top()); break; // BINPUT
        case 0x72: memo.set(this.u32(), top()); break; // LONG_BINPUT
        case 0x70: memo.set(parseIntText(this.line(), at) as number, top()); break; // PUT
        case 0x94: memo.set(memo.size, top()); break; // MEMOIZE
        case 0x68: stack.push(this.memoGet(memo, this.u8(), at)); break; // BINGET
        case 0x6a: stack.push(this.memoGet(memo, this.u32(), at)); break; // LONG_BINGET
        case 0x67: stack.push(this.memoGet(memo, parseIntText(this.line(), at) as number, at)); break; // GET
        // --- globals and objects
        case 0x63: { // GLOBAL "module\nname\n"
          const module = this.line();
          const name = this.line();
          stack.push(this.resolveGlobal(module, name));
          break;
        }
        case 0x93: { // STACK_GLOBAL
          const name = pop();
          const module = pop();
          if (typeof module !== 'string' || typeof name !== 'string') throw new PickleError(`STACK_GLOBAL needs two strings (byte ${at})`);
          stack.push(this.resolveGlobal(module, name));
          break;
        }
        case 0x52: { const args = pop(); const fn = pop(); stack.push(this.callGlobal(fn, args, 'REDUCE')); break; } // REDUCE
        case 0x81: { const args = pop(); const cls = pop(); stack.push(this.callGlobal(cls, args, 'NEWOBJ')); break; } // NEWOBJ
        case 0x92: { // NEWOBJ_EX
          const kwargs = pop();
          const args = pop();
          const cls = pop();
          if (kwargs instanceof Map && kwargs.size) throw new PickleError(`NEWOBJ_EX with keyword arguments is not supported (byte ${at})`);
          stack.push(this.callGlobal(cls, args, 'NEWOBJ_EX'));
          break;
        }
        case 0x69: { // INST "module\nname\n" with MARKed args
          const module = this.line();
          const name = this.line();
          const args = popMark();
          stack.push(this.callGlobal(this.resolveGlobal(module, name), args, 'INST'));
          break;
        }
        case 0x6f: { // OBJ: MARK cls args...
          const items = popMark();
          stack.push(this.callGlobal(items[0], items.slice(1), 'OBJ'));
          break;
        }
        case 0x62: { const state = pop(); build(top(), state, at); break; } // BUILD
        case 0x51: { // BINPERSID
          const pid = pop();
          stack.push(this.persistent(pid, at));
          break;
        }
        case 0x50: stack.push(this.persistent(this.line(), at)); break; // PERSID
        default:
          throw new PickleError(`unsupported or invalid pickle opcode 0x${op.toString(16).padStart(2, '0')} at byte ${at}`);
      }
    }
  }

  private i32nn(at: number): number {
    const n = this.i32();
    if (n < 0) throw new PickleError(`negative length at byte ${at}`);
    return n;
  }

  private memoGet(memo: Map<number, unknown>, k: number, at: number): unknown {
    if (!memo.has(k)) throw new PickleError(`memo key ${k} missing at byte ${at}`);
    return memo.get(k);
  }

  private persistent(pid: unknown, at: number): unknown {
    if (!this.opts.persistentLoad) throw new PickleError(`persistent id at byte ${at} but no loader for it`);
    return this.opts.persistentLoad(pid);
  }
}

/** Apply BUILD state the way object.__setstate__ would, without running code. */
function build(obj: unknown, state: unknown, at: number): void {
  if (obj instanceof PyOpaque) {
    obj.state = state;
    return;
  }
  // State may be a dict, or (dict | None, slotstate dict) as copyreg writes for objects with __slots__.
  let dictState: unknown = state;
  let slotState: unknown = null;
  if (Array.isArray(state) && state.length === 2) [dictState, slotState] = state;
  const target: Record<string, unknown> | null = obj instanceof PyDict ? obj.attrs : isPlainRecord(obj) ? obj : null;
  if (!target) throw new PickleError(`BUILD on ${describe(obj)} is not supported (byte ${at})`);
  for (const s of [dictState, slotState]) {
    if (s === null || s === undefined) continue;
    if (!(s instanceof Map)) throw new PickleError(`BUILD state is ${describe(s)}, expected a dict (byte ${at})`);
    for (const [k, v] of s) target[String(k)] = v;
  }
}

function isPlainRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && Object.getPrototypeOf(v) === Object.prototype;
}

/** Python dict keys: strings, numbers, booleans and None are usable as Map keys by value; tuples are not. */
function dictKey(k: unknown): unknown {
  if (Array.isArray(k)) return JSON.stringify(k, (_key, v) => (typeof v === 'bigint' ? v.toString() : v));
  return k;
}

/** Two's-complement little-endian integer (LONG1/LONG4). */
function decodeLong(b: Uint8Array): number | bigint {
  if (b.length === 0) return 0;
  let v = 0n;
  for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i] as number);
  if ((b[b.length - 1] as number) & 0x80) v -= 1n << BigInt(8 * b.length);
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

function parseIntText(s: string, at: number): number | bigint {
  if (!/^[-+]?\d+$/.test(s.trim())) throw new PickleError(`bad integer literal '${s}' at byte ${at}`);
  const v = BigInt(s.trim());
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

function latin1(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i++) s += String.fromCharCode(b[i] as number);
  return s;
}

/** Protocol-0 STRING: a quoted Python literal with backslash escapes. */
function parseStringLiteral(s: string, at: number): string {
  const q = s[0];
  if ((q !== "'" && q !== '"') || s[s.length - 1] !== q || s.length < 2) throw new PickleError(`bad STRING literal at byte ${at}`);
  return s.slice(1, -1).replace(/\\(x[0-9a-fA-F]{2}|[\\'"nrt0])/g, (_m, e: string) => {
    if (e[0] === 'x') return String.fromCharCode(Number.parseInt(e.slice(1), 16));
    return ({ n: '\n', r: '\r', t: '\t', '0': '\0' } as Record<string, string>)[e] ?? e;
  });
}

/** Protocol-0 UNICODE: raw-unicode-escape (\uXXXX and \UXXXXXXXX only). */
function unescapeRawUnicode(s: string): string {
  return s.replace(/\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})/g, (_m, a: string | undefined, b: string | undefined) =>
    String.fromCodePoint(Number.parseInt((a ?? b)!, 16)),
  );
}

export function describe(v: unknown): string {
  if (v === null) return 'None';
  if (v instanceof PyOpaque) return `an opaque ${v.qualifiedName}`;
  if (v instanceof GlobalRef) return `global ${v.module}.${v.name}`;
  if (v instanceof PyDict || v instanceof Map) return 'a dict';
  if (Array.isArray(v)) return 'a list/tuple';
  if (v instanceof Uint8Array) return 'bytes';
  if (typeof v === 'object') return `a ${(v as object).constructor?.name ?? 'object'}`;
  return `a ${typeof v}`;
}

/** Harmless globals any pickle of plain data may use (no code runs: each is a small pure function here). */
export const BASIC_GLOBALS: Record<string, GlobalHandler> = {
  'collections.OrderedDict': {
    call(args) {
      const d = new PyDict();
      const init = args[0];
      if (Array.isArray(init)) for (const kv of init) if (Array.isArray(kv) && kv.length === 2) d.set(dictKey(kv[0]), kv[1]);
      return d;
    },
  },
  'builtins.dict': { call: () => new PyDict() },
  'builtins.list': { call: (args) => (Array.isArray(args[0]) ? [...(args[0] as unknown[])] : []) },
  'builtins.tuple': { call: (args) => (Array.isArray(args[0]) ? [...(args[0] as unknown[])] : []) },
  'builtins.set': { call: (args) => new Set(Array.isArray(args[0]) ? (args[0] as unknown[]) : []) },
  'builtins.frozenset': { call: (args) => new Set(Array.isArray(args[0]) ? (args[0] as unknown[]) : []) },
  // Protocol 2 pickles Python 3 bytes as _codecs.encode(str, 'latin1').
  '_codecs.encode': {
    call(args) {
      const [s, enc] = args;
      if (typeof s !== 'string') throw new PickleError('_codecs.encode expects a str');
      if (enc === 'latin1' || enc === 'latin-1' || enc === 'iso-8859-1') {
        const out = new Uint8Array(s.length);
        for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i) & 0xff;
        return out;
      }
      return new TextEncoder().encode(s);
    },
  },
};
