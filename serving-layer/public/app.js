// The dashboard: an advertiser's key (kept in sessionStorage, gone with the tab), an ad or all ads, a
// range and a granularity → the merged clicks as an SVG time series drawn here by hand (no chart
// library, no CDN), provisional points hollow on a dashed line, the total and the top ads. While the
// range reaches the present it polls every few seconds.
/* global document, window, sessionStorage, fetch, setTimeout, clearTimeout, URLSearchParams */

const REFRESH_MS = 5000;
const KEY_STORAGE = 'adclick.apiKey';
const SVG_NS = 'http://www.w3.org/2000/svg';
const STEP_MS = { minute: 60_000, hour: 3_600_000, day: 86_400_000 };
const MAX_MINUTE_SPAN_MS = 7 * 86_400_000;

const $ = (id) => document.getElementById(id);
const state = {
  key: sessionStorage.getItem(KEY_STORAGE) ?? '',
  adNames: new Map(),
  timer: undefined,
  seq: 0,
};

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

const adLabel = (ad) => (ad.name ? `${ad.name} (#${ad.adId})` : `#${ad.adId}`);

function addAdOption(ad) {
  if (state.adNames.has(ad.adId)) return;
  state.adNames.set(ad.adId, adLabel(ad));
  $('ad').add(new window.Option(adLabel(ad), ad.adId));
}

/** Every ad of the advertiser (pages of 100, up to 2,000 for the picker). */
async function loadAds() {
  const select = $('ad');
  for (const opt of [...select.options].slice(1)) opt.remove();
  state.adNames.clear();
  let cursor;
  for (let page = 0; page < 20; page++) {
    const q = new URLSearchParams({ limit: '100', ...(cursor ? { cursor } : {}) });
    const body = await api(`/v1/ads?${q}`);
    for (const ad of body.ads ?? []) {
      addAdOption(ad);
    }
    cursor = body.nextCursor;
    if (!cursor) break;
  }
}

/**
 * from/to of the chosen range, aligned to the granularity. A preset ends with the bucket holding now
 * (so the running bucket shows); a custom range is widened to whole buckets.
 */
function currentRange() {
  const granularity = $('granularity').value;
  const step = STEP_MS[granularity];
  if ($('range').value === 'custom') {
    const utc = (v) => Date.parse(`${v}:00Z`);
    const from = Math.floor(utc($('from').value) / step) * step;
    const to = Math.ceil(utc($('to').value) / step) * step;
    return { granularity, from, to: Math.max(to, from + step) };
  }
  const to = Math.floor(Date.now() / step) * step + step;
  const from = to - Math.ceil(Number($('range').value) / step) * step;
  return { granularity, from, to };
}

const iso = (ms) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

async function refresh() {
  clearTimeout(state.timer);
  const seq = ++state.seq;
  const { granularity, from, to } = currentRange();
  const adId = $('ad').value;
  const q = new URLSearchParams({ granularity, from: iso(from), to: iso(to) });
  try {
    const [series, mine] = await Promise.all([
      adId ? api(`/v1/ads/${adId}/clicks?${q}`) : api(`/v1/advertisers/me/clicks?${q}&top=10`),
      adId ? api(`/v1/advertisers/me/clicks?${q}&top=10`) : undefined,
    ]);
    if (seq !== state.seq) return; // a newer request took over
    render(series, (mine ?? series).ads ?? []);
    const live = to > Date.now();
    $('live').hidden = !live;
    const stamp = new Date().toISOString().slice(11, 19);
    setStatus(
      series.unavailable
        ? `Updated ${stamp} UTC. ${series.unavailable.reason}: recent buckets are incomplete.`
        : `Updated ${stamp} UTC.`,
      Boolean(series.unavailable),
    );
    if (live) state.timer = setTimeout(refresh, REFRESH_MS);
  } catch (e) {
    if (seq !== state.seq) return;
    setStatus(e.message, true);
    if (!(e instanceof ApiError)) state.timer = setTimeout(refresh, REFRESH_MS);
  }
}

function render(series, ads) {
  $('result').hidden = false;
  $('total').textContent = series.total.toLocaleString('en-US');
  for (const ad of ads) addAdOption(ad);
  drawChart($('chart'), series.points, series.granularity);
  const tbody = $('top-ads').querySelector('tbody');
  tbody.replaceChildren(
    ...ads.map((ad, i) => {
      const tr = document.createElement('tr');
      for (const [text, cls] of [
        [String(i + 1), ''],
        [state.adNames.get(ad.adId) ?? adLabel(ad), ''],
        [ad.clicks.toLocaleString('en-US'), 'num'],
      ]) {
        const td = document.createElement('td');
        td.textContent = text;
        if (cls) td.className = cls;
        tr.append(td);
      }
      return tr;
    }),
  );
  if (ads.length === 0) {
    const tr = document.createElement('tr');
    const td = document.createElement('td');
    td.colSpan = 3;
    td.textContent = 'No clicks in this range.';
    tr.append(td);
    tbody.append(tr);
  }
}

function svg(tag, attrs, parent) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  parent?.append(el);
  return el;
}

/** The smallest 1, 2 or 5 × 10^k at or above `v` (at least 1), so the y axis reads well. */
function niceMax(v) {
  if (v <= 1) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 5, 10].map((m) => m * p).find((c) => c >= v);
}

function timeLabel(ms, granularity, spansDays) {
  const s = new Date(ms).toISOString();
  if (granularity === 'day') return s.slice(5, 10);
  return spansDays ? `${s.slice(5, 10)} ${s.slice(11, 16)}` : s.slice(11, 16);
}

function drawChart(container, points, granularity) {
  const W = 1000;
  const H = 320;
  const m = { l: 56, r: 16, t: 16, b: 40 };
  const n = points.length;
  const plotW = W - m.l - m.r;
  const plotH = H - m.t - m.b;
  const yMax = niceMax(Math.max(0, ...points.map((p) => p.clicks)));
  const x = (i) => m.l + ((i + 0.5) * plotW) / Math.max(n, 1);
  const y = (v) => m.t + plotH - (v / yMax) * plotH;
  const root = svg('svg', {
    viewBox: `0 0 ${W} ${H}`,
    role: 'img',
    'data-points': n,
    'data-provisional': points.filter((p) => !p.final).length,
  });

  // Provisional buckets get a tinted band behind them.
  const band = svg('g', {}, root);
  const colW = plotW / Math.max(n, 1);
  points.forEach((p, i) => {
    if (!p.final)
      svg(
        'rect',
        { class: 'provisional-band', x: x(i) - colW / 2, y: m.t, width: colW, height: plotH },
        band,
      );
  });

  const grid = svg('g', { class: 'grid axis' }, root);
  for (let k = 0; k <= 4; k++) {
    const v = (yMax * k) / 4;
    svg('line', { x1: m.l, x2: W - m.r, y1: y(v), y2: y(v) }, grid);
    const t = svg('text', { x: m.l - 8, y: y(v) + 4, 'text-anchor': 'end' }, grid);
    t.textContent = Number.isInteger(v) ? v.toLocaleString('en-US') : v.toFixed(1);
  }
  const spansDays = n > 0 && points[n - 1].start.slice(0, 10) !== points[0].start.slice(0, 10);
  const xAxis = svg('g', { class: 'axis' }, root);
  const labels = Math.min(n, 8);
  for (let k = 0; k < labels; k++) {
    const i = Math.round((k * (n - 1)) / Math.max(labels - 1, 1));
    const t = svg('text', { x: x(i), y: H - m.b + 18, 'text-anchor': 'middle' }, xAxis);
    t.textContent = timeLabel(Date.parse(points[i].start), granularity, spansDays);
  }
  const unit = svg('text', { x: W - m.r, y: H - 6, 'text-anchor': 'end' }, xAxis);
  unit.textContent = `UTC, per ${granularity}`;

  // One path for the segments between final points, a dashed one wherever a provisional point is involved.
  let solid = '';
  let dashed = '';
  points.forEach((p, i) => {
    if (i === 0) return;
    const seg = `M${x(i - 1).toFixed(1)},${y(points[i - 1].clicks).toFixed(1)}L${x(i).toFixed(1)},${y(p.clicks).toFixed(1)}`;
    if (p.final && points[i - 1].final) solid += seg;
    else dashed += seg;
  });
  if (solid) svg('path', { class: 'series-final', d: solid }, root);
  if (dashed) svg('path', { class: 'series-provisional', d: dashed }, root);

  const r = n <= 60 ? 3.5 : n <= 200 ? 2.5 : 1.5;
  const dots = svg('g', {}, root);
  for (const [i, p] of points.entries()) {
    const kind = p.unavailable ? 'unavailable' : p.final ? 'final' : 'provisional';
    const c = svg('circle', { class: `point ${kind}`, cx: x(i), cy: y(p.clicks), r }, dots);
    const title = svg('title', {}, c);
    title.textContent = `${p.start}: ${p.clicks} clicks (${kind})`;
  }
  container.replaceChildren(root);
}

async function useKey(key) {
  state.key = key;
  sessionStorage.setItem(KEY_STORAGE, key);
  setStatus('Loading…');
  try {
    // The picker is a convenience: without the catalogue's list, "All ads" and the top ads still work.
    await loadAds().catch((e) => setStatus(`Could not list your ads (${e.message}).`, true));
    $('controls').hidden = false;
    await refresh();
  } catch (e) {
    setStatus(e.message, true);
  }
}

function syncControls() {
  const custom = $('range').value === 'custom';
  for (const el of document.querySelectorAll('.custom')) el.hidden = !custom;
  if (custom && !$('from').value) {
    const toMinute = (ms) => new Date(ms).toISOString().slice(0, 16);
    $('to').value = toMinute(Date.now());
    $('from').value = toMinute(Date.now() - 86_400_000);
  }
  // Minute buckets are only served over at most 7 days: offer the next granularity instead.
  const span = custom
    ? Date.parse(`${$('to').value}:00Z`) - Date.parse(`${$('from').value}:00Z`)
    : Number($('range').value);
  const long = span > MAX_MINUTE_SPAN_MS;
  const minute = $('granularity').querySelector('option[value="minute"]');
  minute.disabled = long;
  if (long && $('granularity').value === 'minute') $('granularity').value = 'hour';
}

$('key-form').addEventListener('submit', (e) => {
  e.preventDefault();
  void useKey($('key').value.trim());
});
$('forget').addEventListener('click', () => {
  sessionStorage.removeItem(KEY_STORAGE);
  clearTimeout(state.timer);
  state.key = '';
  $('key').value = '';
  $('controls').hidden = true;
  $('result').hidden = true;
  setStatus('');
});
for (const id of ['ad', 'range', 'granularity', 'from', 'to'])
  $(id).addEventListener('change', () => {
    syncControls();
    void refresh();
  });

syncControls();
if (state.key) {
  $('key').value = state.key;
  void useKey(state.key);
}
