/**
 * The "Adapt to this site" panel (index.html #adapt): pick a folder of labelled studies, see the progress, the
 * held-out before/after table and the caveat; the adopted head is kept in IndexedDB and used by every prediction
 * (engine.ts's site hook) until reset; it can be exported and imported as the small head file. The logic is
 * adapt.ts; this is display.
 */
import { formatThreshold } from './card.js';
import type { PageModel } from './engine.js';
import { forgetHead, importHead, keepHead, runAdaptation, storedHead, type AdaptRun } from './adapt.js';
import type { adaptation } from 'nextray/browser';

type LoadedHead = adaptation.LoadedHead;

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const e = document.getElementById(id);
  if (!e) throw new Error(`#${id} missing from index.html`);
  return e as T;
};

const METRICS: [key: string, label: string][] = [
  ['auc', 'Study AUC'],
  ['sensitivity', 'Sensitivity'],
  ['specificity', 'Specificity'],
  ['kappa', "Cohen's kappa"],
  ['ece', 'ECE (calibration error)'],
  ['log_loss', 'Log loss'],
  ['threshold', 'Decision threshold'],
];

const fmt = (v: number | null | undefined): string => (v === null || v === undefined ? '—' : v.toFixed(3));
const ci = (v: [number, number] | null | undefined): string => (v ? ` (${v[0].toFixed(3)} to ${v[1].toFixed(3)})` : '');

function cell(tag: 'td' | 'th', text: string, value?: number | null, testid?: string): HTMLElement {
  const c = document.createElement(tag);
  c.textContent = text;
  if (value !== undefined && value !== null) c.dataset.value = String(value);
  if (testid) c.dataset.testid = testid;
  return c;
}

function renderTable(run: AdaptRun): void {
  const h = run.record.held_out;
  const head = document.createElement('tr');
  head.append(cell('th', 'Held-out studies'), cell('th', 'Deployed model'), cell('th', 'Adapted head'));
  const rows = METRICS.map(([key, label]) => {
    const tr = document.createElement('tr');
    tr.dataset.metric = key;
    tr.append(
      cell('th', label),
      cell('td', fmt(h.before[key]) + (key === 'threshold' ? '' : ci(h.intervals_95.before[key])), h.before[key], 'before'),
      cell('td', fmt(h.after[key]) + (key === 'threshold' ? '' : ci(h.intervals_95.after[key])), h.after[key], 'after'),
    );
    return tr;
  });
  $('adapt-table').replaceChildren(head, ...rows);
  $('adapt-table').hidden = false;
  const r = run.record;
  const d = r.data;
  $('adapt-caveat').textContent =
    `${r.decision === 'adapted' ? 'Adopted' : 'Not adopted'}: ${r.reason}. ` +
    `${r.improvement_claimed ? 'The 95% interval of the log-loss difference lies below zero: an improvement on these studies. ' : 'No improvement is claimed: the 95% interval of the log-loss difference does not lie below zero. '}` +
    `Measured on ${h.studies} held-out studies (${h.abnormal} abnormal) of ${d.studies} (${d.images} images, ${d.patients} patients), ` +
    `patient-disjoint from the ${d.fit.studies} studies the head was fitted on; intervals are 95% bootstrap over the held-out studies. ` +
    `This is a check on your own studies, not a clinical validation: their labels decide what "better" means, and a small set gives wide intervals.` +
    (run.images.failed.length ? ` ${run.images.failed.length} image(s) could not be read and were left out.` : '') +
    (run.images.problems.length ? ` ${run.images.problems.length} file(s) had no label and were left out.` : '');
  $('adapt-caveat').hidden = false;
}

export interface AdaptPanel {
  /** Puts the head kept for this model in use (at start). */
  restore(): Promise<void>;
}

/** Wires the panel to the loaded model; `changed` is called when the head in use changes (re-render, re-predict). */
export function setupAdaptPanel(model: PageModel, changed: () => void): AdaptPanel {
  const site = model.site;
  const sha = site.base.sha256;
  const panel = $('adapt');
  panel.hidden = false;
  const error = $('adapt-error');
  const say = (text: string): void => {
    $('adapt-status').textContent = text;
  };
  const fail = (err: unknown): void => {
    error.textContent = (err as Error).message;
    error.hidden = false;
  };
  let headText: string | null = null;
  const hook = window as unknown as { nextray: Record<string, unknown> };

  const showActive = (): void => {
    const h = site.head;
    const a = $('adapt-active');
    a.dataset.active = String(h !== null);
    if (h) {
      const r = h.file.adaptation;
      a.textContent = `Adapted head in use: fitted on ${r.data.studies} studies from "${r.source}" on ${r.date.slice(0, 10)} for this model (SHA-256 ${h.file.base_model.sha256.slice(0, 12)}…); threshold ${formatThreshold(h.file.head.threshold)}, temperature ${+h.file.head.temperature.toFixed(3)}. Every result on this page uses it until you reset.`;
    } else a.textContent = "The model's own head is in use (not adapted to this site).";
    $<HTMLButtonElement>('adapt-export').disabled = h === null;
    $<HTMLButtonElement>('adapt-reset').disabled = h === null;
    document.body.dataset.adapted = String(h !== null);
    hook.nextray.adaptedHead = h ? { baseSha256: h.file.base_model.sha256, threshold: h.file.head.threshold, temperature: h.file.head.temperature } : null;
  };
  const use = async (head: LoadedHead | null, text: string | null): Promise<void> => {
    site.setHead(head);
    headText = text;
    if (text) await keepHead(sha, text);
    else await forgetHead(sha);
    showActive();
    changed();
  };

  if (!site.hasFeatures) {
    say("This model file has no 'features' output, so it cannot be adapted here: export it with 'nextray export --features'.");
    $<HTMLInputElement>('adapt-folder').disabled = true;
  }

  $<HTMLInputElement>('adapt-folder').addEventListener('change', (e) => {
    const input = e.target as HTMLInputElement;
    const files = [...(input.files ?? [])];
    input.value = '';
    if (!files.length) return;
    void (async () => {
      error.hidden = true;
      panel.dataset.state = 'busy';
      const progress = $<HTMLProgressElement>('adapt-progress');
      progress.hidden = false;
      const source = (files[0] as File & { webkitRelativePath?: string }).webkitRelativePath?.split('/')[0] || 'picked files';
      try {
        const min = $<HTMLInputElement>('adapt-min').valueAsNumber;
        const sens = $<HTMLInputElement>('adapt-sensitivity').valueAsNumber;
        const run = await runAdaptation(site, files, {
          source,
          ...(Number.isFinite(min) ? { minStudiesPerClass: min } : {}),
          ...(Number.isFinite(sens) ? { targetSensitivity: sens } : {}),
          onProgress: (text, done, total) => {
            say(`${text}…`);
            progress.max = total;
            progress.value = done;
          },
        });
        hook.nextray.adaptation = { record: run.record, images: run.images };
        renderTable(run);
        if (run.headText) {
          await use(importHead(run.headText, 'adapted head', sha), run.headText);
          say(`Done: the adapted head is in use (${run.images.used} images read).`);
        } else say(`Done: the model's own head is kept (${run.images.used} images read).`);
        panel.dataset.state = 'done';
      } catch (err) {
        fail(err);
        say('Adaptation stopped.');
        panel.dataset.state = 'error';
      } finally {
        progress.hidden = true;
      }
    })();
  });

  $('adapt-export').addEventListener('click', () => {
    if (!headText) return;
    const a = document.createElement('a');
    a.href = URL.createObjectURL(new Blob([headText], { type: 'application/json' }));
    a.download = `adapted-head-${sha.slice(0, 12)}.json`;
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 1000);
  });

  $<HTMLInputElement>('adapt-import').addEventListener('change', (e) => {
    const input = e.target as HTMLInputElement;
    const f = input.files?.[0];
    input.value = '';
    if (!f) return;
    void (async () => {
      error.hidden = true;
      try {
        const text = await f.text();
        await use(importHead(text, f.name, sha), text);
        say(`Imported ${f.name}: the adapted head is in use.`);
        panel.dataset.state = 'imported';
      } catch (err) {
        fail(err);
        say(`Not imported: ${f.name}.`);
        panel.dataset.state = 'refused';
      }
    })();
  });

  $('adapt-reset').addEventListener('click', () => {
    void use(null, null).then(() => {
      say("Reset: the model's own head is in use again.");
      panel.dataset.state = 'reset';
    }, fail);
  });

  showActive();
  return {
    async restore() {
      try {
        const text = await storedHead(sha);
        if (text) {
          site.setHead(importHead(text, 'the kept adapted head', sha));
          headText = text;
          showActive();
        }
      } catch (err) {
        fail(err);
      }
    },
  };
}
