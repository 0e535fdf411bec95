/**
 * report.ts: one self-contained HTML page of a run (`pstal report`): no network, no external file;
 * the pictures are inline SVG (lib/plot/metrics.ts's learning curves, lib/plot/timeline.ts's
 * per-video timelines) and a few lines of inline JavaScript switch the timeline shown by the video
 * picker. The timelines are stored as SVG strings in a JSON block and only the chosen one is put
 * into the page, so a test set of hundreds of videos stays quick to open.
 */
import type { EvalResult } from '../eval/detection';

export interface ReportStageTable {
  title: string;
  tiou: number[];
  /** mAP per threshold in [0, 1] */
  map: number[];
  averages: Record<string, number | undefined>;
}

export interface ReportTimeline {
  video: string;
  /** a few words shown in the picker after the name (split, counts) */
  note: string;
  svg: string;
}

export interface ReportInput {
  title: string;
  run: string;
  data?: string;
  generated: string;
  version: string;
  /** key facts: label -> value */
  facts: [string, string][];
  /** the run's configuration files, shown as JSON */
  configs: { name: string; json: unknown }[];
  curvesSvg: string | null;
  tables: ReportStageTable[];
  /** the final evaluation (per-class AP) when the ground truth was at hand */
  evaluation: EvalResult | null;
  evaluationOf: string;
  proposals: { PP: number; RP: number; NP: number; videos: number; perClass: Record<string, { PP: number; RP: number }> } | null;
  timelines: ReportTimeline[];
  /** why there are no timelines, when there are none */
  timelinesNote?: string;
  warnings: string[];
}

export const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

const pct = (x: number | undefined): string => (x === undefined || !Number.isFinite(x) ? '–' : (100 * x).toFixed(2));
const tiouName = (t: number): string => `@${Math.round(t * 1e9) / 1e9}`;

/** JSON that is safe inside a <script> element. */
function scriptJson(v: unknown): string {
  return JSON.stringify(v).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}

function mapTable(t: ReportStageTable): string {
  const avgKeys = Object.keys(t.averages).filter((k) => k !== 'all' && t.averages[k] !== undefined);
  const head = [...t.tiou.map(tiouName), ...avgKeys.map((k) => `avg(${k})`)].map((h) => `<th>${esc(h)}</th>`).join('');
  const row = [...t.map.map(pct), ...avgKeys.map((k) => pct(t.averages[k]))].map((v) => `<td>${v}</td>`).join('');
  return `<h3>${esc(t.title)}</h3><table class="num"><thead><tr>${head}</tr></thead><tbody><tr>${row}</tr></tbody></table>`;
}

function perClassTable(r: EvalResult): string {
  const classes = Object.keys(r.apPerClass).sort();
  const head = `<tr><th>class</th>${r.tiou.map((t) => `<th>${tiouName(t)}</th>`).join('')}<th>mean</th></tr>`;
  const rows = classes.map((c) => {
    const ap = r.apPerClass[c];
    const mean = ap.reduce((a, b) => a + b, 0) / Math.max(1, ap.length);
    return `<tr><th class="cls">${esc(c)}</th>${ap.map((x) => `<td>${pct(x)}</td>`).join('')}<td>${pct(mean)}</td></tr>`;
  });
  const mean = `<tr class="total"><th class="cls">mAP</th>${r.map.map((x) => `<td>${pct(x)}</td>`).join('')}<td>${pct(r.averages.all)}</td></tr>`;
  return `<table class="num" id="per-class-ap"><thead>${head}</thead><tbody>${rows.join('')}${mean}</tbody></table>`;
}

/** The report's styles: shared by the pages pstal writes or serves (lib/serve/page.ts). */
export const PAGE_CSS = `body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px auto; max-width: 1180px; padding: 0 16px; color: #222; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 18px; margin-top: 32px; border-bottom: 1px solid #ddd; } h3 { font-size: 15px; }
table { border-collapse: collapse; margin: 6px 0 12px; } th, td { padding: 3px 9px; border: 1px solid #ddd; }
table.num td { text-align: right; font-variant-numeric: tabular-nums; } th.cls { text-align: left; font-weight: normal; }
tr.total th, tr.total td { font-weight: bold; background: #f6f6f6; }
.facts th { text-align: left; background: #f6f6f6; font-weight: normal; }
.note { color: #666; } .warn { background: #fff4e5; border: 1px solid #f0c36d; padding: 4px 12px; }
.svg svg { max-width: 100%; height: auto; } pre { background: #f6f6f6; padding: 8px; overflow: auto; max-height: 400px; }
select { font-size: 14px; padding: 2px; } button { margin-left: 4px; }
`;

export function reportHtml(p: ReportInput): string {
  const facts = p.facts.map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(v)}</td></tr>`).join('');
  const configs = p.configs.map((c) => `<details><summary>${esc(c.name)}</summary><pre>${esc(JSON.stringify(c.json, null, 2))}</pre></details>`).join('');
  const curves = p.curvesSvg ? `<div class="svg">${p.curvesSvg}</div>` : '<p class="note">No metrics files (stage1_metrics.jsonl, stage2_metrics.jsonl) in the run folder.</p>';
  const tables = p.tables.length ? p.tables.map(mapTable).join('') : '<p class="note">No test results in the metrics files.</p>';
  const perClass = p.evaluation
    ? `<h3>Per-class AP (%): ${esc(p.evaluationOf)}</h3><p class="note">${p.evaluation.numGroundTruth} ground-truth instances, ${p.evaluation.numDetections} detections scored.</p>${perClassTable(p.evaluation)}`
    : `<p class="note">${esc(p.evaluationOf)}</p>`;
  let proposals = '<p class="note">No proposals.json in the run folder (stage 1 without ranking).</p>';
  if (p.proposals) {
    const q = p.proposals;
    const rows = Object.entries(q.perClass).map(([c, n]) => `<tr><th class="cls">${esc(c)}</th><td>${n.PP}</td><td>${n.RP}</td></tr>`).join('');
    proposals =
      `<table class="num" id="proposal-counts"><thead><tr><th></th><th>PP</th><th>RP</th><th>NP</th></tr></thead><tbody><tr><th>${q.videos} training videos</th><td>${q.PP}</td><td>${q.RP}</td><td>${q.NP}</td></tr></tbody></table>` +
      `<p class="note">PP: every stage-1 candidate; RP: reliable proposals (matched to a point label); NP: negative (background) spans. SPEC §3.</p>` +
      `<details><summary>per class</summary><table class="num"><thead><tr><th>class</th><th>PP</th><th>RP</th></tr></thead><tbody>${rows}</tbody></table></details>`;
  }
  const options = p.timelines.map((t, i) => `<option value="${i}">${esc(t.video)}${t.note ? ` (${esc(t.note)})` : ''}</option>`).join('');
  const timelines = p.timelines.length
    ? `<label for="video-picker">video </label><select id="video-picker">${options}</select> <button id="prev" type="button">&lsaquo;</button><button id="next" type="button">&rsaquo;</button>` +
      `<div id="timeline" class="svg"></div><script type="application/json" id="timeline-data">${scriptJson(p.timelines.map((t) => t.svg))}</script>`
    : `<p class="note">${esc(p.timelinesNote ?? 'No timelines.')}</p>`;
  const warnings = p.warnings.length ? `<div class="warn">${p.warnings.map((w) => `<p>${esc(w)}</p>`).join('')}</div>` : '';
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(p.title)}</title>
<style>
${PAGE_CSS}</style></head>
<body>
<h1>${esc(p.title)}</h1>
<p class="note">pstal ${esc(p.version)} &middot; generated ${esc(p.generated)} &middot; run <code>${esc(p.run)}</code>${p.data ? ` &middot; data <code>${esc(p.data)}</code>` : ''}</p>
${warnings}
<h2 id="overview">Overview</h2>
<table class="facts">${facts}</table>
<h2 id="curves">Learning curves</h2>
${curves}
<h2 id="results">Results</h2>
${tables}
${perClass}
<h2 id="ranking">Reliability ranking (proposals for stage 2)</h2>
${proposals}
<h2 id="timelines">Timelines</h2>
${timelines}
<h2 id="configuration">Configuration</h2>
${configs}
<script>
(function () {
  var data = document.getElementById('timeline-data');
  if (!data) return;
  var svgs = JSON.parse(data.textContent);
  var picker = document.getElementById('video-picker');
  var box = document.getElementById('timeline');
  function show() { box.innerHTML = svgs[Number(picker.value)] || ''; }
  function step(d) { var n = picker.options.length; picker.selectedIndex = (picker.selectedIndex + d + n) % n; show(); }
  picker.addEventListener('change', show);
  document.getElementById('prev').addEventListener('click', function () { step(-1); });
  document.getElementById('next').addEventListener('click', function () { step(1); });
  show();
})();
</script>
</body></html>
`;
}
