/**
 * page.ts: the page `pstal serve` answers GET / with: drop a .npy file of a video's features on it
 * and it posts the file to /v1/detect?timeline=true and shows the answer: the timeline picture
 * `pstal report` and `pstal detect --plot` draw (lib/plot/timeline.ts, drawn by the server's
 * worker) and the detections as a table. Self-contained: inline styles (the report's) and script,
 * nothing fetched but the API.
 */
import { PAGE_CSS, esc } from '../plot/report';
import type { ModelInfo } from './protocol';

export function servePage(info: ModelInfo, limits: { maxBodyBytes: number; maxSnippets: number }): string {
  const what = `${info.method === 'hrpro' ? 'HR-Pro' : 'TSPNet'} (${info.stages.join(' + ')}), ${info.classNames.length} classes, D = ${info.featureDim}`;
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>pstal serve</title>
<style>
${PAGE_CSS}
#drop { border: 2px dashed #999; border-radius: 8px; padding: 28px; text-align: center; color: #555; margin: 12px 0; }
#drop.over { border-color: #1f77b4; background: #eef5fb; }
#status.error { color: #b00020; }
#list { max-height: 420px; overflow-y: auto; display: inline-block; } /* a long list scrolls beside a fixed page */
</style></head>
<body>
<h1>pstal serve</h1>
<p class="note">pstal ${esc(info.version)} &middot; model: ${esc(what)} &middot; a video of at most ${limits.maxSnippets} snippets, ${(limits.maxBodyBytes / 2 ** 20).toFixed(0)} MiB</p>
<div id="drop">Drop a video's features here: a .npy file of shape [T, ${info.featureDim}]<br><input type="file" id="file" accept=".npy"></div>
<p id="status" class="note">No video yet.</p>
<div id="timeline" class="svg"></div>
<div id="list"><table class="num" id="detections" hidden><thead><tr><th>#</th><th>class</th><th>start (s)</th><th>end (s)</th><th>score</th></tr></thead><tbody></tbody></table></div>
<script>
(function () {
  var drop = document.getElementById('drop');
  var input = document.getElementById('file');
  var status = document.getElementById('status');
  var box = document.getElementById('timeline');
  var table = document.getElementById('detections');
  function say(text, bad) { status.textContent = text; status.className = bad ? 'error' : 'note'; }
  function cell(row, text, cls) { var td = document.createElement(row.parentNode && row.parentNode.tagName === 'THEAD' ? 'th' : 'td'); td.textContent = text; if (cls) td.className = cls; row.appendChild(td); }
  function show(r) {
    box.innerHTML = r.timelineSvg || '';
    var body = table.tBodies[0];
    body.textContent = '';
    r.detections.forEach(function (d, i) {
      var tr = body.insertRow();
      cell(tr, String(i + 1)); cell(tr, d.class); cell(tr, d.start.toFixed(2)); cell(tr, d.end.toFixed(2)); cell(tr, d.score.toFixed(3));
    });
    table.hidden = false;
    say(r.video + ': ' + r.T + ' snippets, ' + r.detections.length + ' detection(s)');
  }
  function send(file) {
    var name = file.name.replace(/\\.npy$/, '').replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 200) || 'video';
    say('Detecting in ' + file.name + '...');
    file.arrayBuffer().then(function (bytes) {
      return fetch('/v1/detect?timeline=true&name=' + encodeURIComponent(name), { method: 'POST', headers: { 'content-type': 'application/x-npy' }, body: bytes });
    }).then(function (res) {
      return res.json().then(function (j) {
        if (!res.ok) throw new Error(j.error || res.statusText);
        show(j);
      });
    }).catch(function (e) { box.innerHTML = ''; table.hidden = true; say(file.name + ': ' + e.message, true); });
  }
  drop.addEventListener('dragover', function (e) { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', function () { drop.classList.remove('over'); });
  drop.addEventListener('drop', function (e) {
    e.preventDefault();
    drop.classList.remove('over');
    if (e.dataTransfer.files.length) send(e.dataTransfer.files[0]);
  });
  input.addEventListener('change', function () { if (input.files.length) send(input.files[0]); });
})();
</script>
</body></html>
`;
}
