/**
 * multipart/related parsing and building (RFC 2046 5.1, as DICOMweb's WADO-RS and STOW-RS use it), checked on bodies
 * written by hand from the RFC's grammar: a preamble and an epilogue to ignore, transport padding after a delimiter,
 * a quoted boundary, binary content that holds CR LF and "--" runs, a part with no headers, and a body cut short.
 * Also the credentials rules: a URL with a password is refused, a credentials file others can read is refused.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildMultipart, contentTypeParameter, parseMultipart } from '../../src/pacs/multipart.js';
import { baseUrl } from '../../src/pacs/http.js';
import { pacsAuth, redisTarget } from '../../src/pacs/credentials.js';
import { tempDir } from '../helpers/paths.js';

const bytes = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0));
const text = (b: Uint8Array): string => String.fromCharCode(...b);

test('parses a body written by hand: preamble, padding, quoted boundary, binary content, epilogue', () => {
  const binary = '\x00\x01\r\n--not-the-boundary\r\n\xff\xd9';
  const body = bytes(
    'This is the preamble, to be ignored.\r\n' +
      '--simple boundary  \t\r\n' + // transport padding after the delimiter
      'Content-Type: application/dicom\r\n' +
      'Content-Location: /studies/1\r\n' +
      '\r\n' +
      binary +
      '\r\n--simple boundary\r\n' +
      '\r\n' + // no headers at all
      'second part\r\n' +
      '\r\n--simple boundary--\r\n' +
      'This is the epilogue, to be ignored.\r\n',
  );
  const parts = parseMultipart(body, 'multipart/related; type="application/dicom"; boundary="simple boundary"');
  assert.equal(parts.length, 2);
  assert.deepEqual(parts[0]!.headers, { 'content-type': 'application/dicom', 'content-location': '/studies/1' });
  assert.equal(text(parts[0]!.body), binary);
  assert.deepEqual(parts[1]!.headers, {});
  assert.equal(text(parts[1]!.body), 'second part\r\n');
});

test('a body without its closing delimiter, or without the boundary, is an error', () => {
  assert.throws(() => parseMultipart(bytes('--b\r\nContent-Type: a/b\r\n\r\nhalf a file'), 'multipart/related; boundary=b'), /not closed by a boundary: the body was cut short/);
  assert.throws(() => parseMultipart(bytes('nothing here'), 'multipart/related; boundary=b'), /does not occur in the body/);
  assert.throws(() => parseMultipart(bytes(''), 'application/dicom'), /not a multipart body/);
  assert.throws(() => parseMultipart(bytes(''), 'multipart/related'), /without a boundary/);
});

test('build then parse gives the parts back, with a boundary that occurs in none of them', () => {
  const parts = [bytes('DICM\r\n--x\r\n'), new Uint8Array(1000).map((_, i) => (i * 7) & 0xff), new Uint8Array(0)];
  const { body, contentType } = buildMultipart(parts);
  assert.match(contentType, /^multipart\/related; type="application\/dicom"; boundary=nextray-[0-9a-f]{24}$/);
  const back = parseMultipart(body, contentType);
  assert.equal(back.length, 3);
  back.forEach((p, i) => {
    assert.deepEqual([...p.body], [...parts[i]!]);
    assert.equal(p.headers['content-type'], 'application/dicom');
  });
  assert.equal(contentTypeParameter('multipart/related; TYPE="a/b"; boundary=x', 'type'), 'a/b');
});

test('credentials: never in a URL; a credentials file must be private; environment variables otherwise', () => {
  assert.throws(() => baseUrl('http://u:secret@127.0.0.1:8042', '--orthanc'), /the URL holds credentials/);
  assert.equal(baseUrl('http://127.0.0.1:8042', '--orthanc'), 'http://127.0.0.1:8042/');
  assert.throws(() => redisTarget('redis://:pw@127.0.0.1:6379', {}), /holds a password/);
  assert.deepEqual({ ...redisTarget(undefined, { NEXTRAY_REDIS_URL: 'redis://:pw@10.0.0.5:7000/2' }) }, { host: '10.0.0.5', port: 7000, db: 2, password: 'pw', tls: false, shown: 'redis://10.0.0.5:7000/2' });
  const tmp = tempDir();
  try {
    const f = join(tmp.dir, 'cred.json');
    writeFileSync(f, JSON.stringify({ user: 'a', password: 'b' }));
    chmodSync(f, 0o640);
    assert.throws(() => pacsAuth(f, {}), /can be read by other users \(mode 640\)/);
    chmodSync(f, 0o600);
    assert.deepEqual(pacsAuth(f, {}), { user: 'a', password: 'b' });
    assert.deepEqual(pacsAuth(undefined, { NEXTRAY_PACS_USER: 'u', NEXTRAY_PACS_PASSWORD: 'p' }), { user: 'u', password: 'p' });
    assert.deepEqual(pacsAuth(undefined, { NEXTRAY_PACS_TOKEN: 't' }), { token: 't' });
    assert.throws(() => pacsAuth(undefined, { NEXTRAY_PACS_PASSWORD: 'p' }), /set both/);
    assert.equal(pacsAuth(undefined, {}), null);
  } finally {
    tmp.cleanup();
  }
});
