/**
 * The independent DICOM tools the codec and SR tests check against — dcmtk (dcmcjpeg/dcmdjpeg, dcmcjpls/dcmdjpls,
 * dcmcrle/dcmdrle, dsrdump), gdcm (gdcmconv), dicom3tools (dciodvfy) and pydicom (Debian's python3-pydicom, whose
 * numpy handler reads the uncompressed references). Used only by tests, never by the product.
 *
 * A test that needs a missing tool skips with the reason; with NEXTRAY_REQUIRE_DICOM_TOOLS=1 (set by .ci/run, which
 * installs them) it fails instead, so CI cannot pass by skipping.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const found = new Map<string, boolean>();

export function hasTool(name: string): boolean {
  let ok = found.get(name);
  if (ok === undefined) {
    ok = spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0;
    found.set(name, ok);
  }
  return ok;
}

let python: string | null | undefined;
/** A python3 that can import pydicom and numpy (Debian's /usr/bin/python3 first: a pyenv shim may lack them). */
export function pydicomPython(): string | null {
  if (python !== undefined) return python;
  python = null;
  for (const p of ['/usr/bin/python3', 'python3']) {
    if (spawnSync(p, ['-c', 'import pydicom, numpy'], { stdio: 'ignore' }).status === 0) {
      python = p;
      break;
    }
  }
  return python;
}

/**
 * `false` when every tool is there (use as `test(name, { skip: toolsSkip([...]) })`), else the reason to skip.
 * Throws instead when NEXTRAY_REQUIRE_DICOM_TOOLS=1.
 */
export function toolsSkip(tools: readonly string[]): string | false {
  const missing = tools.filter((t) => (t === 'pydicom' ? pydicomPython() === null : !hasTool(t)));
  if (!missing.length) return false;
  const why = `needs ${missing.join(', ')} (Debian: dcmtk, libgdcm-tools, dicom3tools, python3-pydicom)`;
  if (process.env.NEXTRAY_REQUIRE_DICOM_TOOLS === '1') throw new Error(`NEXTRAY_REQUIRE_DICOM_TOOLS=1 but a test ${why}`);
  return why;
}

/** Runs a tool; throws with its stderr when it fails. Returns stdout. */
export function tool(cmd: string, args: readonly string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 });
  } catch (err) {
    const e = err as { stderr?: string; stdout?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${e.stderr || e.stdout || e.message}`);
  }
}

/** What pydicom makes of a file's pixels: every frame's stored values (masked to Bits Stored, sign-extended), interleaved. */
export interface PydicomPixels {
  values: Int32Array;
  frames: number;
  rows: number;
  columns: number;
  samplesPerPixel: number;
  photometric: string;
  transferSyntax: string;
}

const PIXELS_PY = `
import json, sys
import numpy as np
import pydicom
out = []
for path, raw in zip(sys.argv[1::2], sys.argv[2::2]):
    ds = pydicom.dcmread(path)
    a = ds.pixel_array.astype(np.int64)
    frames = int(getattr(ds, 'NumberOfFrames', 1) or 1)
    bits = int(ds.BitsStored)
    a &= (1 << bits) - 1
    if int(ds.PixelRepresentation) == 1:
        a = np.where(a >= (1 << (bits - 1)), a - (1 << bits), a)
    a.astype('<i4').tofile(raw)
    out.append(dict(frames=frames, rows=int(ds.Rows), columns=int(ds.Columns), spp=int(ds.SamplesPerPixel),
                    photometric=str(ds.PhotometricInterpretation), ts=str(ds.file_meta.TransferSyntaxUID)))
print(json.dumps(out))
`;

/** Reads files with pydicom (one python process for all of them); `scratch` is a folder for the raw dumps. */
export function pydicomPixels(files: readonly string[], scratch: string): PydicomPixels[] {
  const py = pydicomPython();
  if (!py) throw new Error('pydicom not available');
  const raws = files.map((_, i) => join(scratch, `pydicom-${i}.raw`));
  const script = join(scratch, 'pixels.py');
  writeFileSync(script, PIXELS_PY);
  const info = JSON.parse(tool(py, [script, ...files.flatMap((f, i) => [f, raws[i]!])])) as Array<{ frames: number; rows: number; columns: number; spp: number; photometric: string; ts: string }>;
  return info.map((m, i) => {
    const b = readFileSync(raws[i]!);
    return {
      values: new Int32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)),
      frames: m.frames,
      rows: m.rows,
      columns: m.columns,
      samplesPerPixel: m.spp,
      photometric: m.photometric,
      transferSyntax: m.ts,
    };
  });
}
