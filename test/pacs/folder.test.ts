/**
 * `pacs --folder` reads its archive with the shared folder walk: a symlink back to an enclosing folder does not list
 * the study's files again (nor loop), a second link to a folder already walked is not walked twice, a dangling link
 * is named, a linked file is read, and a file whose name is not UTF-8 is found, shown with \xHH and fetched by its
 * bytes. Expected files and UIDs are the ones written here; problems are matched by the path they name.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FolderSource } from '../../src/pacs/folder.js';
import { writeDicom } from '../helpers/dicom-writer.js';
import { tempDir } from '../helpers/paths.js';

const tmp = tempDir('nextray-pacs-folder-');
after(() => tmp.cleanup());

const STUDY = '1.2.826.0.1.3680043.9.7.55.1';
const OTHER = '1.2.826.0.1.3680043.9.7.55.2';

function instance(study: string, sop: string): Uint8Array {
  return writeDicom({
    rows: 4,
    columns: 4,
    bitsAllocated: 8,
    pixels: Array.from({ length: 16 }, (_, i) => i * 9),
    studyUid: study,
    extra: [
      { group: 0x0008, element: 0x0018, vr: 'UI', value: sop },
      { group: 0x0020, element: 0x000e, vr: 'UI', value: `${study}.1` },
    ],
  });
}

test('folder source: loops end, repeats and dangling links are named, linked and non-UTF-8 files are read', async () => {
  const root = join(tmp.dir, 'archive');
  const outside = join(tmp.dir, 'outside');
  mkdirSync(join(root, 'p1', 's1'), { recursive: true });
  mkdirSync(outside);
  const a = instance(STUDY, `${STUDY}.1.1`);
  const b = instance(STUDY, `${STUDY}.1.2`);
  const c = instance(OTHER, `${OTHER}.1.1`);
  writeFileSync(join(root, 'p1', 's1', 'a.dcm'), a);
  // A Latin-1 name ('é' as the single byte E9): not UTF-8.
  writeFileSync(Buffer.concat([Buffer.from(join(root, 'p1', 's1', 'caf')), Buffer.from([0xe9]), Buffer.from('.dcm')]), b);
  writeFileSync(join(outside, 'c.dcm'), c);
  symlinkSync('..', join(root, 'p1', 's1', 'up')); // a loop back to p1
  symlinkSync(join(root, 'p1'), join(root, 'z-again')); // the same folder a second time (after p1 in byte order)
  symlinkSync(outside, join(root, 'linked')); // a folder outside, walked once through the link
  symlinkSync(join(tmp.dir, 'gone'), join(root, 'dangling'));

  const problems: { path: string; problem: string }[] = [];
  const src = new FolderSource([root], { onProblem: (path, problem) => problems.push({ path, problem }) });
  const studies = new Map<string, string[]>();
  for await (const s of src.studies()) studies.set(s.studyInstanceUid!, [...(s.files ?? [])].sort());

  assert.deepEqual([...studies.keys()].sort(), [STUDY, OTHER]);
  assert.deepEqual(studies.get(STUDY), [`${root}/p1/s1/a.dcm`, `${root}/p1/s1/caf\\xE9.dcm`]);
  assert.deepEqual(studies.get(OTHER), [`${root}/linked/c.dcm`]);
  const named = (p: string): string | undefined => problems.find((x) => x.path === p)?.problem;
  assert.match(named(`${root}/p1/s1/up`) ?? '', /loop/);
  assert.match(named(`${root}/z-again`) ?? '', /already walked/);
  assert.match(named(`${root}/dangling`) ?? '', /dangling/);

  // The non-UTF-8 file is indexed and fetched by its bytes, also by a fresh source (another worker process).
  for (const s of [src, new FolderSource([root])]) {
    const idx = await s.index({ studyInstanceUid: STUDY, files: studies.get(STUDY)! });
    const inst = idx.series[0]!.instances.find((i) => i.sopInstanceUid === `${STUDY}.1.2`)!;
    assert.deepEqual(Buffer.from(await s.fetch(idx, idx.series[0]!, inst)), Buffer.from(b));
  }
});

test('folder source: a missing folder is named, the other folders go on', async () => {
  const root = join(tmp.dir, 'one');
  mkdirSync(root);
  writeFileSync(join(root, 'x.dcm'), instance(STUDY, `${STUDY}.9.1`));
  const problems: string[] = [];
  const src = new FolderSource([join(tmp.dir, 'nosuch'), root], { onProblem: (path, problem) => problems.push(`${path}: ${problem}`) });
  const uids: string[] = [];
  for await (const s of src.studies()) uids.push(s.studyInstanceUid!);
  assert.deepEqual(uids, [STUDY]);
  assert.deepEqual(problems, [`${join(tmp.dir, 'nosuch')}: folder not found`]);
});
