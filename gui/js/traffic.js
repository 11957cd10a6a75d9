// What the proxies observe and what the sidecars declare, for a service's
// page: charts of its request rate, success rate and p99 latency
// (GET /v1/weft/telemetry/service/:name), and its upstreams and
// downstreams (the catalog's connect-proxy registrations, with the
// observed rate of each call).
import { api, watch, q } from './api.js';
import { h, fill, refill } from './dom.js';
import { lineChart, durationMs, fmt } from './charts.js';

const enc = encodeURIComponent;
const WINDOW_MS = 3600000;   // the server keeps the last hour of points
const MIN_SPAN_MS = 300000;  // the charts show at least the last 5 minutes
const FETCHES = 2;           // catalog reads in flight (the page's loops hold four connections)
const MAX_SERVICES = 500;    // catalog entries read to find the sidecars

// A field of a registration's Proxy, matched as the server matches it
// (ignoring case).
export function field(obj, name) {
  if (!obj || typeof obj !== 'object') return undefined;
  if (name in obj) return obj[name];
  const k = Object.keys(obj).find((x) => x.toLowerCase() === name.toLowerCase());
  return k === undefined ? undefined : obj[k];
}

// The server's clock when it answered (its Date header), to end the charts'
// window at the server's "now" whatever this browser's clock says.
function serverNow(reply) {
  const d = Date.parse(reply?.headers?.get('Date') || '');
  return Number.isNaN(d) ? Date.now() : d;
}

const pct = (v) => (v === null || v === undefined ? null : v * 100);

function stats(samples) {
  const vals = samples.map((p) => p.v).filter((v) => v !== null);
  if (vals.length === 0) return null;
  return {
    n: vals.length, latest: vals[vals.length - 1],
    min: Math.min(...vals), max: Math.max(...vals),
    avg: vals.reduce((a, b) => a + b, 0) / vals.length,
  };
}

// The three charts of a telemetry answer, or the "no traffic" note.
export function renderTraffic(el, data, reply) {
  const points = (data && data.Points) || [];
  const intervalMs = durationMs(data && data.Interval) || 10000;
  const end = serverNow(reply);
  const inWindow = points.filter((p) => Date.parse(p.Time) >= end - WINDOW_MS);
  const series = (get) => inWindow.map((p) => ({ t: Date.parse(p.Time), v: get(p) ?? null }));
  // The window: from the first point (in whole minutes, at least 5) up to
  // the hour the server keeps, so that a new service's traffic is not a
  // sliver at the right edge.
  const first = inWindow.length ? Date.parse(inWindow[0].Time) : end;
  const spanMs = Math.min(WINDOW_MS, Math.max(MIN_SPAN_MS, Math.ceil((end - first + intervalMs) / 60000) * 60000));
  const rate = series((p) => p.RequestRate);
  if (!stats(rate)) {
    fill(el, h('p', { class: 'muted', id: 'traffic-empty' },
      points.length === 0 ? 'No traffic observed yet: the charts appear once the proxies of this service report requests.'
        : 'No traffic observed in the last hour.'));
    return;
  }
  const success = series((p) => pct(p.SuccessRate));
  const p99 = series((p) => p.P99Ms);
  const minutes = Math.round(spanMs / 60000);
  const denied = inWindow.reduce((a, p) => a + (p.Denied || 0), 0);
  const r = stats(rate), s = stats(success), l = stats(p99);
  const busy = rate.filter((p) => p.v > 0).length;
  const common = { end, spanMs, intervalMs };
  const lowest = s ? Math.min(s.min, 100) : 100;
  const charts = [
    lineChart({
      ...common, id: 'chart-rate', title: 'Request rate', unit: 'req/s', samples: rate,
      summary: `Request rate over the last ${minutes} minutes: latest ${fmt(r.latest, 'req/s')}, `
        + `average ${fmt(r.avg, 'req/s')}, peak ${fmt(r.max, 'req/s')}, in ${busy} interval${busy === 1 ? '' : 's'} with traffic`
        + `${denied ? `; ${denied} request${denied === 1 ? '' : 's'} denied by intentions` : ''}.`,
    }),
    lineChart({
      ...common, id: 'chart-success', title: 'Success rate', unit: '%', samples: success,
      // Starts at 0 when the rate fell below half, else a round value under the lowest.
      floor: lowest < 50 ? 0 : Math.max(0, Math.min(90, Math.floor(lowest / 10) * 10)), ceil: 100,
      summary: s ? `Success rate (responses other than 5xx) over the last ${minutes} minutes: latest ${fmt(s.latest, '%')}, `
        + `lowest ${fmt(s.min, '%')}, average ${fmt(s.avg, '%')}.` : `No responses in the last ${minutes} minutes.`,
    }),
    lineChart({
      ...common, id: 'chart-p99', title: 'p99 latency', unit: 'ms', samples: p99,
      summary: l ? `99th percentile latency over the last ${minutes} minutes: latest ${fmt(l.latest, 'ms')}, `
        + `highest ${fmt(l.max, 'ms')}, average ${fmt(l.avg, 'ms')}.` : `No latencies measured in the last ${minutes} minutes.`,
    }),
  ];
  fill(el, h('div', { class: 'charts' }, charts),
    h('p', { class: 'muted small' }, `One point per ${data.Interval || '10s'} interval, summed over every proxy of the service; gaps are intervals without requests.`));
}

// Every connect-proxy registration of the catalog: [{id, node, service
// (the one it fronts), mesh, upstreams: [{name, port}]}]. Reads each
// service's entries (at most MAX_SERVICES, FETCHES at a time); the
// catalog has no index by kind.
async function sidecars(names, isCurrent) {
  const list = names.slice(0, MAX_SERVICES);
  const out = [];
  let next = 0, failed = null;
  async function worker() {
    while (next < list.length && isCurrent()) {
      const n = list[next++];
      try {
        const entries = (await api('GET', `/v1/catalog/service/${enc(n)}`)).data || [];
        for (const e of entries) {
          if (e.ServiceKind !== 'connect-proxy') continue;
          const p = e.ServiceProxy || {};
          const ups = field(p, 'Upstreams');
          out.push({
            id: e.ServiceID, node: e.Node, mesh: e.ServiceMesh || 'default',
            service: field(p, 'DestinationServiceName') || '',
            upstreams: (Array.isArray(ups) ? ups : [])
              .filter((u) => (field(u, 'DestinationType') || 'service') === 'service')
              .map((u) => ({ name: field(u, 'DestinationName') || '', port: field(u, 'LocalBindPort') || 0 })),
          });
        }
      } catch (e) { failed = e; }
    }
  }
  await Promise.all(Array.from({ length: FETCHES }, worker));
  return { proxies: out, failed, truncated: names.length > list.length };
}

function observedText(o) {
  if (!o) return h('span', { class: 'muted' }, 'none observed');
  const ok = o.SuccessRate === null || o.SuccessRate === undefined ? '' : `, ${fmt(o.SuccessRate * 100, '%')} success`;
  return h('span', {}, `${fmt(o.RequestRate, 'req/s')}${ok}`);
}

// rows: [{service, declared: [text], observed: {RequestRate, SuccessRate}|undefined}]
function connTable(id, rows, empty) {
  if (rows.length === 0) return h('p', { class: 'muted', id: `${id}-none` }, empty);
  return h('table', { class: 'grid', id },
    h('thead', {}, h('tr', {}, ['Service', 'Declared by', 'Observed (last 5 minutes)'].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, rows.map((r) => h('tr', { dataset: { service: r.service, declared: r.declared.length > 0, observed: !!r.observed } },
      h('th', { scope: 'row' }, h('a', { href: `#/services/${enc(r.service)}` }, r.service)),
      h('td', {}, r.declared.length ? r.declared.map((d) => h('div', {}, d))
        : h('span', { class: 'muted' }, 'no sidecar declares it (observed only)')),
      h('td', {}, observedText(r.observed))))));
}

function mergeRows(declared, observed) {
  const rows = new Map();
  for (const [svc, texts] of declared) rows.set(svc, { service: svc, declared: texts, observed: undefined });
  for (const o of observed || []) {
    if (!rows.has(o.Service)) rows.set(o.Service, { service: o.Service, declared: [], observed: undefined });
    rows.get(o.Service).observed = o;
  }
  return [...rows.values()].sort((a, b) => a.service.localeCompare(b.service));
}

// The service page's "Traffic" and "Upstreams and downstreams" sections:
// answers {traffic, connections} (elements to place) and start(mesh),
// which starts their loops once the service's mesh is known.
export function serviceTraffic(scope, name) {
  const traffic = h('div', { id: 'traffic' }, h('p', { class: 'muted' }, 'Loading…'));
  const trafficStatus = h('div', { class: 'status' });
  const conns = h('div', { id: 'connections' }, h('p', { class: 'muted' }, 'Loading…'));
  const connStatus = h('div', { class: 'status' });
  let graph = null, observed = null, started = null, gen = 0, stopTelemetry = null;

  function renderConnections() {
    if (graph === null) return;
    const mine = graph.proxies.filter((p) => p.service === name && p.mesh === started);
    const ups = new Map(), downs = new Map();
    for (const p of mine) {
      for (const u of p.upstreams) {
        if (!ups.has(u.name)) ups.set(u.name, []);
        ups.get(u.name).push(`${p.id} on ${p.node}${u.port ? `, local port ${u.port}` : ''}`);
      }
    }
    for (const p of graph.proxies) {
      if (p.mesh !== started || !p.upstreams.some((u) => u.name === name)) continue;
      if (!downs.has(p.service)) downs.set(p.service, []);
      downs.get(p.service).push(`${p.id} on ${p.node}`);
    }
    const note = mine.length
      ? `Sidecars of ${name}: ${mine.map((p) => `${p.id} on ${p.node}`).join(', ')}.`
      : `${name} has no sidecar proxy registered: upstreams are what its sidecars declare (Proxy.Upstreams).`;
    const upRows = mergeRows(ups, observed && observed.Upstreams);
    const downRows = mergeRows(downs, observed && observed.Downstreams);
    refill(conns, JSON.stringify([note, upRows, downRows]),
      h('p', { class: 'muted small', id: 'sidecars-note' }, note),
      h('div', { class: 'cols' },
        h('div', {}, h('h3', {}, `Upstreams: what ${name} calls`),
          connTable('upstreams', upRows, `No upstream is declared by ${name}'s sidecars, and none is observed.`)),
        h('div', {}, h('h3', {}, `Downstreams: who calls ${name}`),
          connTable('downstreams', downRows, `No sidecar declares ${name} as an upstream, and no caller is observed.`))));
    fill(connStatus,
      graph.failed ? h('p', { class: 'error', role: 'alert' }, `Some catalog reads failed: ${graph.failed.message}`) : null,
      graph.truncated ? h('p', { class: 'warning' }, `Only the first ${MAX_SERVICES} services were searched for sidecars.`) : null);
  }

  // Called with the service's mesh at each health answer: the telemetry
  // loop follows the mesh (a service re-registered into another one), the
  // catalog loop starts once.
  function start(mesh) {
    if (started === mesh) return;
    const first = started === null;
    started = mesh;
    observed = null;
    if (stopTelemetry) stopTelemetry();
    stopTelemetry = watch(`/v1/weft/telemetry/service/${enc(name)}${q({ mesh })}`, (data, reply) => {
      fill(trafficStatus);
      observed = data || {};
      renderTraffic(traffic, data, reply);
      renderConnections();
    }, (e) => fill(trafficStatus, h('p', { class: 'error', role: 'alert' }, `${e.message} (retrying)`)),
    // Blocking, and at least every 10 s: the window slides and old
    // calls leave the last-5-minutes figures without a new point.
    { wait: '10s', always: true });
    scope.add(stopTelemetry);
    if (first) scope.add(watch('/v1/catalog/services', async (data) => {
      const mine = ++gen;
      const names = Object.keys(data || {}).sort();
      const g = await sidecars(names, () => mine === gen && !scope.closed);
      if (mine !== gen || scope.closed) return;
      graph = g;
      renderConnections();
    }, (e) => fill(connStatus, h('p', { class: 'error', role: 'alert' }, `${e.message} (retrying)`))));
  }

  return {
    traffic: h('div', {}, trafficStatus, traffic),
    connections: h('div', {}, connStatus, conns),
    start,
  };
}
