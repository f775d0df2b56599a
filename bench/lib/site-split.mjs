// The site-adaptation benches' TEST part: whole patients, in a seeded order per site, until `testStudies` studies are
// set aside. bench/site-adaptation.mjs judges on them and bench/site-filter-pool.mjs leaves exactly them out, so the
// two must share this one rule. `Rng` is the package's seeded RNG (dist/src/util/rng.js), passed in because the
// benches import the build.

/** Patients of the test part, each patient's studies, and every patient in the seeded order. */
export function siteTestPart(images, site, testStudies, Rng) {
  const patients = [...new Set(images.map((im) => im.patient))].sort();
  new Rng(`site-adaptation/${site}/test`).shuffle(patients);
  const studiesOf = new Map();
  for (const im of images) {
    if (!studiesOf.has(im.patient)) studiesOf.set(im.patient, new Set());
    studiesOf.get(im.patient).add(im.study);
  }
  const test = new Set();
  let n = 0;
  for (const p of patients) {
    if (n >= testStudies) break;
    test.add(p);
    n += studiesOf.get(p).size;
  }
  return { test, studiesOf, patients };
}
