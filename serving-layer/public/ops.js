// The operator view: with the admin key (kept in sessionStorage, gone with the tab), the hours of a
// day or of the last 24 hours by state with their revisions and why an hour is not final
// (GET /v1/admin/hours), and the operations status (GET /v1/admin/ops): hours not final, late files,
// the latest reconciliation, consumer lag per partition, the click processes' spools, recent
// backfills linked to the Temporal UI, free disk. Refreshes itself every few seconds.
/* global document, sessionStorage, fetch, setTimeout, clearTimeout, URLSearchParams, Node */

const REFRESH_MS = 10_000;
const KEY_STORAGE = 'adclick.adminKey';
const HOUR_MS = 3_600_000;

const $ = (id) => document.getElementById(id);
const state = { key: sessionStorage.getItem(KEY_STORAGE) ?? '', timer: undefined, seq: 0 };

class ApiError extends Error {}

async function api(path) {
  const res = await fetch(path, { headers: { authorization: `Bearer ${state.key}` } });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new ApiError(body?.error?.message ?? `HTTP ${res.status}`);
  return body;
}

function setStatus(text, isError = false) {
  $('status').textContent = text;
  $('status').classList.toggle('error', isError);
}

const iso = (ms) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
const shortTime = (s) => (s ? s.replace('T', ' ').replace(/:\d\d(\.\d+)?Z$/, ' UTC') : '–');
const num = (n) => (n === null || n === undefined ? '–' : Number(n).toLocaleString('en-US'));

/** A table cell: text, or a node. */
function cell(content, cls) {
  const td = document.createElement('td');
  if (cls) td.className = cls;
  if (content instanceof Node) td.append(content);
  else td.textContent = content;
  return td;
}

function link(href, text) {
  const a = document.createElement('a');
  a.href = href;
  a.textContent = text;
  a.target = '_blank';
  a.rel = 'noopener';
  return a;
}

function fillTable(id, rows) {
  const body = $(id).tBodies[0];
  body.replaceChildren(...rows);
}

function row(cells, cls) {
  const tr = document.createElement('tr');
  if (cls) tr.className = cls;
  tr.append(...cells);
  return tr;
}

/** What an hour that is not final waits for or failed on, as the API says it. */
function reasonOf(h) {
  const waiting = h.waiting ?? h.waitingFor;
  if (waiting) return typeof waiting === 'string' ? waiting : (waiting.reason ?? JSON.stringify(waiting));
  if (h.failure) return h.failure.reason;
  return '';
}

function hoursRange() {
  const day = $('day').value;
  if (day) {
    const from = Date.parse(`${day}T00:00:00Z`);
    return { from, to: from + 24 * HOUR_MS };
  }
  const to = Math.floor(Date.now() / HOUR_MS) * HOUR_MS + HOUR_MS;
  return { from: to - 24 * HOUR_MS, to };
}

function renderHours(body) {
  fillTable(
    'hours',
    body.hours.map((h) => {
      const badge = document.createElement('span');
      badge.className = `state state-${h.state}`;
      badge.textContent = h.state;
      const revisions = (h.revisions ?? []).map((r) => `r${r.revision}: ${num(r.validClicks)}`).join(' · ');
      const tr = row([
        cell(shortTime(h.hour)),
        cell(badge),
        cell(h.revision ?? '–', 'num'),
        cell(revisions || '–'),
        cell(num(h.counts?.batch), 'num'),
        cell(num(h.counts?.speed), 'num'),
        cell(reasonOf(h)),
      ]);
      tr.dataset.hour = h.hour;
      tr.dataset.state = h.state;
      return tr;
    }),
  );
}

function renderOps(ops) {
  const notFinal = ops.notFinal ?? [];
  $('not-final-count').textContent = String(notFinal.length);
  $('not-final-detail').textContent = ops.oldestNotFinalHourEnd
    ? `oldest ended ${shortTime(ops.oldestNotFinalHourEnd)}`
    : 'every ended hour is final';
  $('card-not-final').classList.toggle(
    'bad',
    notFinal.some((h) => h.state === 'failed'),
  );
  $('late-files').textContent = num(ops.lateFiles.files);
  $('late-detail').textContent = ops.lateFiles.oldestUploadedAt
    ? `${ops.lateFiles.hours} hour(s), oldest uploaded ${shortTime(ops.lateFiles.oldestUploadedAt)}`
    : 'none';
  const rec = ops.reconciliation;
  $('reconciliation').textContent = rec ? `${rec.day}: ${num(rec.differingAds)} differing ads` : 'none yet';
  $('reconciliation-detail').textContent = rec
    ? `speed ${num(rec.speedTotal)} · batch ${num(rec.batchTotal)}`
    : '';
  $('card-reconciliation').classList.toggle('bad', Boolean(rec && rec.differingAds > 0));

  fillTable(
    'consumers',
    (ops.consumers ?? []).map((c) =>
      row(
        [
          cell(c.group),
          cell(c.topic),
          cell(String(c.partition), 'num'),
          cell(num(c.committed), 'num'),
          cell(num(c.end), 'num'),
          cell(num(c.lag), 'num'),
        ],
        c.lag > 0 ? 'lagging' : undefined,
      ),
    ),
  );
  fillTable(
    'spools',
    ops.spools.map((s) =>
      row([cell(s.processId), cell(num(s.spoolDepth), 'num'), cell(shortTime(s.reportedAt))]),
    ),
  );
  fillTable(
    'backfills',
    ops.backfills.map((b) =>
      row([
        cell(link(b.link, b.workflowId)),
        cell(b.status),
        cell(shortTime(b.startedAt)),
        cell(shortTime(b.closedAt)),
      ]),
    ),
  );
  fillTable(
    'disks',
    ops.disks.map((d) =>
      row([
        cell(d.name),
        cell(d.path),
        cell(
          `${((100 * d.freeBytes) / d.sizeBytes).toFixed(1)} % (${(d.freeBytes / 2 ** 30).toFixed(1)} GiB)`,
          'num',
        ),
      ]),
    ),
  );
  const r = ops.redis;
  const gib = (bytes) => `${(bytes / 2 ** 30).toFixed(2)} GiB`;
  $('redis').textContent = r
    ? `${gib(r.usedBytes)} used of ${
        r.maxmemoryBytes > 0
          ? `${gib(r.maxmemoryBytes)} (maxmemory)`
          : `${gib(r.systemBytes)} (its host; no maxmemory)`
      }; ${num(r.evictedKeys)} keys evicted since it started`
    : 'not read';
  const errors = Object.entries(ops.errors ?? {});
  $('errors').textContent = errors.length
    ? `Not read: ${errors.map(([k, v]) => `${k} (${v})`).join('; ')}`
    : '';
}

async function refresh() {
  clearTimeout(state.timer);
  const seq = ++state.seq;
  const { from, to } = hoursRange();
  try {
    const [hours, ops] = await Promise.all([
      api(`/v1/admin/hours?${new URLSearchParams({ from: iso(from), to: iso(to) })}`),
      api('/v1/admin/ops'),
    ]);
    if (seq !== state.seq) return;
    renderHours(hours);
    renderOps(ops);
    $('ops').hidden = false;
    setStatus(`Updated ${shortTime(ops.at)}`);
  } catch (e) {
    if (seq !== state.seq) return;
    setStatus(e instanceof ApiError ? e.message : `Could not load: ${e.message}`, true);
    if (e instanceof ApiError) $('ops').hidden = true;
  }
  state.timer = setTimeout(refresh, REFRESH_MS);
}

$('key-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  state.key = $('key').value.trim();
  sessionStorage.setItem(KEY_STORAGE, state.key);
  void refresh();
});
$('forget').addEventListener('click', () => {
  state.key = '';
  sessionStorage.removeItem(KEY_STORAGE);
  clearTimeout(state.timer);
  $('ops').hidden = true;
  setStatus('');
});
$('day').addEventListener('change', () => void refresh());
if (state.key) void refresh();
