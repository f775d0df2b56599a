/**
 * The one CSV helper (src/util/csv.ts) against RFC 4180's rules. Expected values are what Python's csv module
 * (QUOTE_MINIMAL, `strict=True` for the reader) gives for the same input:
 *   csv.writer(f).writerow(['plain', 'a,b', 'say "hi"', 'cr\rhere', 'two\nlines', '', 42, ' padded '])
 *   list(csv.reader([line], strict=True))
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { csvField, csvFields, parseCsvLine } from '../../src/util/csv.js';

test('csvField quotes what RFC 4180 says must be quoted, as Python csv.writer does', () => {
  const row = ['plain', 'a,b', 'say "hi"', 'cr\rhere', 'two\nlines', '', 42, ' padded '].map(csvField).join(',');
  assert.equal(row, 'plain,"a,b","say ""hi""","cr\rhere","two\nlines",,42, padded ');
  assert.equal(csvField(null), '');
  assert.equal(csvField(undefined), '');
});

test('parseCsvLine reads RFC 4180 lines as Python csv.reader (strict) does', () => {
  const cases: [string, string[]][] = [
    ['aaa,bbb,ccc', ['aaa', 'bbb', 'ccc']],
    ['"aaa","b""bb","ccc"', ['aaa', 'b"bb', 'ccc']],
    ['"aaa","b,bb","ccc"', ['aaa', 'b,bb', 'ccc']],
    ['a,,c', ['a', '', 'c']],
    ['a,b,', ['a', 'b', '']],
    ['""', ['']],
    ['"a""",b', ['a"', 'b']],
  ];
  for (const [line, want] of cases) assert.deepEqual(parseCsvLine(line), want, line);
});

test('malformed quoting is null (Python strict: "unexpected end of data", "\',\' expected after \'\\"\'")', () => {
  assert.equal(parseCsvLine('"abc'), null);
  assert.equal(parseCsvLine('"a"b,c'), null);
});

test('what csvField writes, parseCsvLine reads back', () => {
  const values = ['MURA-v1.1/valid/XR_WRIST/patient1/study1_positive/', 'my,data', 'say "hi"', '', 'x'];
  assert.deepEqual(parseCsvLine(values.map(csvField).join(',')), values);
});

test('csvFields trims every field and gives a malformed line as one field', () => {
  assert.deepEqual(csvFields(' image ,"label "'), ['image', 'label']);
  assert.deepEqual(csvFields('"a"b,c'), ['"a"b,c']);
});
