// Line charts of a time series, as SVG built with DOM calls (no library):
// a time axis over a window ending now, a value axis with its unit, the
// series as a path broken where there was no data, and a text summary that
// is both the figure's caption and the chart's accessible description.
const NS = 'http://www.w3.org/2000/svg';

// An SVG element: svg('path', {d: ...}, children...).
export function svg(tag, attrs, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'dataset') Object.assign(el.dataset, v);
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// "10s", "1m30s", "250ms" as Go prints durations -> milliseconds (0 if not one).
export function durationMs(text) {
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g;
  const unit = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60000, h: 3600000 };
  let ms = 0, m, seen = '';
  while ((m = re.exec(text || '')) !== null) { ms += Number(m[1]) * unit[m[2]]; seen += m[0]; }
  return seen === text ? ms : 0;
}

// A round step (1, 2 or 5 times a power of ten) giving about n ticks over span.
function niceStep(span, n) {
  const raw = span / n;
  const p = 10 ** Math.floor(Math.log10(raw));
  const f = raw / p;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
}

// The number as a tick label: no more digits than the step needs.
function tickText(v, step) {
  const digits = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
  return v.toFixed(Math.min(digits, 3));
}

const hhmm = (t) => {
  const d = new Date(t);
  return `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
};

// Formats a value with its unit for the summary: "12.5 req/s", "99.2 %".
export function fmt(v, unit) {
  if (v === null || v === undefined || Number.isNaN(v)) return 'none';
  const a = Math.abs(v);
  const s = a === 0 ? '0' : a >= 100 ? v.toFixed(0) : a >= 10 ? v.toFixed(1) : a >= 0.01 ? v.toFixed(2) : v.toPrecision(2);
  return unit === '%' ? `${s} %` : `${s} ${unit}`;
}

// Splits the samples into runs of consecutive values: a null value, or a
// gap longer than 1.5 intervals between samples, ends a run.
function runs(samples, intervalMs) {
  const out = [];
  let cur = [], last = null;
  for (const p of samples) {
    const gap = last !== null && intervalMs > 0 && p.t - last > 1.5 * intervalMs;
    if (p.v === null || gap) { if (cur.length) out.push(cur); cur = []; }
    if (p.v !== null) cur.push(p);
    last = p.t;
  }
  if (cur.length) out.push(cur);
  return out;
}

// opts: id, title, unit (axis and summary), samples [{t: ms, v: number|null}]
// oldest first, end (ms: the window's right edge), spanMs (its width),
// intervalMs, floor (the lowest value the axis may start at: 0 by default;
// a chart of percentages passes its own), ceil (an upper bound for the
// axis, as 100 for percentages), summary (the text describing the chart).
// Answers a <figure> holding the SVG and the summary as its caption.
export function lineChart(opts) {
  const { id, title, unit, samples, end, spanMs, intervalMs, summary } = opts;
  const W = 400, H = 220, L = 46, R = 22, T = 12, B = 40;
  const pw = W - L - R, ph = H - T - B;
  const start = end - spanMs;
  const shown = samples.filter((p) => p.t >= start && p.t <= end);
  const values = shown.map((p) => p.v).filter((v) => v !== null);
  let lo = opts.floor ?? 0;
  let hi = opts.ceil ?? (values.length ? Math.max(...values) : 1);
  if (hi <= lo) hi = lo + 1;
  const step = niceStep(hi - lo, 5);
  lo = Math.floor(lo / step + 1e-9) * step;
  hi = Math.ceil(hi / step - 1e-9) * step;
  const x = (t) => L + ((t - start) / spanMs) * pw;
  const y = (v) => T + ph - ((v - lo) / (hi - lo)) * ph;

  const grid = [], labels = [];
  for (let v = lo; v <= hi + step / 2; v += step) {
    const yy = y(v).toFixed(1);
    grid.push(svg('line', { x1: L, x2: W - R, y1: yy, y2: yy, class: 'grid-line' }));
    labels.push(svg('text', { x: L - 6, y: (y(v) + 4).toFixed(1), 'text-anchor': 'end', class: 'tick' }, tickText(v, step)));
  }
  // Time ticks on whole minutes: at most 6 of them.
  const tstep = [1, 2, 5, 10, 15, 30, 60].map((m) => m * 60000).find((st) => spanMs / st <= 6) || 3600000;
  for (let t = Math.ceil(start / tstep) * tstep; t <= end; t += tstep) {
    const xx = x(t).toFixed(1);
    grid.push(svg('line', { x1: xx, x2: xx, y1: T, y2: T + ph, class: 'grid-line' }));
    labels.push(svg('text', { x: xx, y: T + ph + 16, 'text-anchor': 'middle', class: 'tick' }, hhmm(t)));
  }
  const series = runs(shown, intervalMs).map((run) => {
    const d = run.map((p, i) => `${i ? 'L' : 'M'}${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join(' ');
    // A run of one sample is a dot (a path of one point draws nothing).
    return run.length === 1
      ? svg('circle', { cx: x(run[0].t).toFixed(1), cy: y(run[0].v).toFixed(1), r: 2.5, class: 'dot', dataset: { points: 1 } })
      : svg('path', { d, class: 'series', dataset: { points: run.length } });
  });
  const titleId = `${id}-title`, descId = `${id}-desc`;
  const chart = svg('svg', {
    id, class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img',
    'aria-labelledby': titleId, 'aria-describedby': descId,
  },
  svg('title', { id: titleId }, `${title} (${unit}), the last ${Math.round(spanMs / 60000)} minutes`),
  svg('g', { class: 'grid' }, grid),
  svg('line', { x1: L, x2: W - R, y1: T + ph, y2: T + ph, class: 'axis' }),
  svg('line', { x1: L, x2: L, y1: T, y2: T + ph, class: 'axis' }),
  svg('g', { class: 'ticks' }, labels),
  svg('text', { x: 14, y: T + ph / 2, transform: `rotate(-90 14 ${T + ph / 2})`, 'text-anchor': 'middle', class: 'axis-label' }, unit),
  svg('text', { x: L + pw / 2, y: H - 4, 'text-anchor': 'middle', class: 'axis-label' }, 'time (local)'),
  svg('g', { class: 'series-group' }, series));
  const fig = document.createElement('figure');
  fig.className = 'chart-box';
  const heading = document.createElement('h3');
  heading.textContent = `${title} (${unit})`;
  const cap = document.createElement('figcaption');
  cap.id = descId;
  cap.className = 'chart-summary';
  cap.textContent = summary;
  fig.append(heading, chart, cap);
  return fig;
}
