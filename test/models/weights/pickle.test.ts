/**
 * The pickle VM on the same plain data pickled by Python at protocols 0 to 5 (make.py), and on hostile input:
 * every non-whitelisted global is refused before anything else happens.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BASIC_GLOBALS, PickleError, PyDict, Unpickler } from '../../../src/models/weights/pickle.js';
import { EXPECTED, fixture } from './expected.js';

function load(bytes: Uint8Array): unknown {
  return new Unpickler(bytes, { globals: BASIC_GLOBALS }).load();
}

describe('pickle protocols 0-5', () => {
  for (let proto = 0; proto <= 5; proto++) {
    it(`protocol ${proto} gives the same values Python pickled`, () => {
      const root = load(fixture(`plain_p${proto}.pkl`));
      assert.ok(root instanceof PyDict, 'OrderedDict -> PyDict');
      assert.deepEqual([...root.keys()], ['int', 'float', 'str', 'bytes', 'tuple', 'nested', 'shared']);
      const want = EXPECTED['pickle'];
      assert.deepEqual((root.get('int') as Array<number | bigint>).map(String), want.int);
      const ints = root.get('int') as Array<number | bigint>;
      assert.equal(typeof ints[ints.length - 1], 'bigint', '2**70 stays exact as a bigint');
      assert.deepEqual(root.get('float'), want.float);
      assert.deepEqual(root.get('str'), want.str);
      assert.deepEqual(Array.from(root.get('bytes') as Uint8Array), want.bytes);
      assert.deepEqual(root.get('tuple'), [1, [2, 3], []]);
      const nested = root.get('nested') as Map<string, unknown>;
      assert.deepEqual(nested.get('a'), [null, true, false]);
      assert.equal((nested.get('b') as Map<string, unknown>).get('c'), 'd');
      const shared = root.get('shared') as unknown[][];
      assert.deepEqual(shared[0], [1, 2]);
      assert.equal(shared[0], shared[1], 'memo keeps shared references shared');
    });
  }
});

describe('Python 2 era pickles (tar/legacy torch files)', () => {
  it("OrderedDict rebuilt from Python 2's [[key, value], ...] reduce args, with py2 byte strings", () => {
    const enc = (x: string): Uint8Array => Uint8Array.from(x, (c) => c.charCodeAt(0));
    // OrderedDict(([['a', 1], ['b', 2]],)) as Python 2 pickled it: SHORT_BINSTRING keys, APPENDS, TUPLE, REDUCE
    const bytes = enc('\x80\x02ccollections\nOrderedDict\n(](](U\x01aK\x01e](U\x01bK\x02eetR.');
    const d = new Unpickler(bytes, { globals: BASIC_GLOBALS }).load();
    assert.ok(d instanceof PyDict);
    assert.deepEqual([...d.entries()], [['a', 1], ['b', 2]]);
  });
});

describe('hostile and broken pickles', () => {
  const enc = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0));

  it('refuses GLOBAL os.system (protocol 0 style) before calling anything', () => {
    // cos\nsystem\n(S'echo pwned'\ntR.
    const evil = enc("cos\nsystem\n(S'echo pwned'\ntR.");
    assert.throws(() => load(evil), (e: Error) => {
      assert.ok(e instanceof PickleError);
      assert.match(e.message, /refusing to load global 'os\.system': it is not on the whitelist/);
      return true;
    });
  });

  it('refuses STACK_GLOBAL builtins.eval (protocol 4 style)', () => {
    const evil = enc('\x80\x04\x8c\x08builtins\x8c\x04eval\x93\x8c\x041+1\x85R.');
    assert.throws(() => load(evil), /refusing to load global 'builtins\.eval'/);
  });

  it('REDUCE on a non-callable value is refused', () => {
    assert.throws(() => load(enc('\x80\x02K\x01)R.')), /REDUCE on a value that is not a whitelisted global/);
  });

  it('truncation, stack underflow and bad memo references are errors, not crashes', () => {
    const p2 = fixture('plain_p2.pkl');
    assert.throws(() => load(p2.subarray(0, p2.length - 5)), PickleError);
    assert.throws(() => load(enc('\x80\x020.')), /stack underflow/);
    assert.throws(() => load(enc('\x80\x02h\x05.')), /memo key 5 missing/);
    assert.throws(() => load(enc('\x80\x02K\x01K\x02.')), /2 values left at STOP/);
    assert.throws(() => load(enc('\x80\x02Q.')), /stack underflow/);
  });
});
