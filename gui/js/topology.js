// Topology: the catalog's services as nodes on a circle, and an edge for
// each ordered pair an intention decides (asked of
// /v1/connect/intentions/check, which is the server's own evaluation):
// allowed (solid), allowed for some HTTP requests by L7 permissions, or
// denied by an explicit deny intention (dashed). Pairs the mesh's default
// action decides are not drawn, unless the proxies observed calls between
// them. Calls the proxies observed (/v1/weft/telemetry/edges, the last 5
// minutes) are wide translucent bands under the intention edges, wider
// for more requests per second, marked with a cross when the mesh's
// policy denies them. Re-evaluated when the catalog or the intentions
// change; the observed calls follow the telemetry. Nodes are links to the
// service pages.
import { api, watch, q } from './api.js';
import { h, fill, refill } from './dom.js';
import { svg, fmt } from './charts.js';

const MAX = 16;          // services evaluated pairwise (MAX * (MAX - 1) checks)
const PARALLEL = 2;      // checks in flight (a browser has six connections; four loops hold some)

const enc = encodeURIComponent;

// What an intention's check answer draws: 'allow', 'l7', 'deny' or null.
function verdict(r) {
  if (!r || r.DecidedBy !== 'intention' || !r.Intention) return null;
  // L7 permissions (no Action): the check without a method and path
  // answers "deny" (a TCP connection cannot satisfy them), yet HTTP
  // requests may be allowed.
  if (!r.Intention.Action) return 'l7';
  return r.Allowed ? 'allow' : 'deny';
}

const LABEL = { allow: 'allowed', l7: 'allowed for some HTTP requests (L7)', deny: 'denied' };

// A pair's policy in words, from its check answer: "allowed by the
// intention web -> api", "denied by the mesh's default action (deny)".
function policyText(d) {
  if (!d) return 'not evaluated (only the first 16 services are)';
  if (d.kind) return `${LABEL[d.kind]} by ${d.by}`;
  return `${d.allowed ? 'allowed' : 'denied'} by the mesh's default action (${d.allowed ? 'allow' : 'deny'})`;
}

// Whether the mesh's policy refuses the pair's calls (an L7 intention
// allows some, so it is not marked).
const refused = (d) => !!d && d.kind !== 'l7' && !d.allowed;

// "8.0 req/s, 99.0 % success"
function rateText(o) {
  const ok = o.SuccessRate === null || o.SuccessRate === undefined ? '' : `, ${fmt(o.SuccessRate * 100, '%')} success`;
  return `${fmt(o.RequestRate, 'req/s')}${ok}`;
}
const observedText = (o) => `observed, ${rateText(o)}`;

// The band's width for a rate: 4 px, growing with the logarithm of req/s.
const bandWidth = (rate) => (4 + Math.min(10, 2 * Math.log2(1 + Math.max(0, rate || 0)))).toFixed(1);

// edges: the intention edges [{from, to, kind, by}]; observed: the
// telemetry's edges between drawn services; decisions: pair -> check.
function draw(names, edges, observed, decisions) {
  const R = names.length < 2 ? 0 : Math.min(200, 60 + 28 * names.length);
  const W = 760, H = 2 * R + 110, cx = W / 2, cy = H / 2;
  const pos = new Map(names.map((n, i) => {
    const a = -Math.PI / 2 + (2 * Math.PI * i) / names.length;
    return [n, { x: cx + R * Math.cos(a), y: cy + R * Math.sin(a) }];
  }));
  const marker = (id, cls) => svg('marker', { id, viewBox: '0 0 10 10', refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse', class: cls },
    svg('path', { d: 'M0,0 L10,5 L0,10 z' }));
  const NODE_R = 30;
  // Curved a little to the right of its direction, so that a -> b and
  // b -> a are two visible lines; the observed band follows the same curve.
  const curve = (from, to) => {
    const a = pos.get(from), b = pos.get(to);
    const dx = b.x - a.x, dy = b.y - a.y, len = Math.hypot(dx, dy) || 1;
    const ux = dx / len, uy = dy / len;
    const x1 = a.x + ux * NODE_R, y1 = a.y + uy * NODE_R, x2 = b.x - ux * (NODE_R + 2), y2 = b.y - uy * (NODE_R + 2);
    const mx = (x1 + x2) / 2 - uy * 24, my = (y1 + y2) / 2 + ux * 24;
    return {
      d: `M${x1.toFixed(1)},${y1.toFixed(1)} Q${mx.toFixed(1)},${my.toFixed(1)} ${x2.toFixed(1)},${y2.toFixed(1)}`,
      // The curve's middle (t = 1/2 of the quadratic Bézier).
      mid: { x: (x1 + 2 * mx + x2) / 4, y: (y1 + 2 * my + y2) / 4 },
    };
  };
  const edgeEls = edges.map((e) => svg('path', {
    d: curve(e.from, e.to).d,
    class: `edge ${e.kind}`, 'marker-end': `url(#arrow-${e.kind})`,
    dataset: { edge: `${e.from} -> ${e.to}`, verdict: e.kind },
  }, svg('title', {}, `${e.from} → ${e.to}: ${LABEL[e.kind]} by ${e.by}`)));
  const bandEls = observed.map((o) => {
    const key = `${o.Source} -> ${o.Destination}`, d = decisions.get(key);
    const c = curve(o.Source, o.Destination), denied = refused(d);
    const text = `${o.Source} → ${o.Destination}: ${observedText(o)}; ${policyText(d)}`;
    return svg('g', { class: `traffic${denied ? ' denied' : ''}`, dataset: { edge: key, rate: o.RequestRate, denied } },
      svg('path', { d: c.d, class: 'band', 'stroke-width': bandWidth(o.RequestRate), 'marker-end': `url(#arrow-${denied ? 'observed-denied' : 'observed'})` }, svg('title', {}, text)),
      denied ? svg('text', { x: c.mid.x.toFixed(1), y: (c.mid.y + 6).toFixed(1), 'text-anchor': 'middle', class: 'cross', 'aria-hidden': 'true' }, '✕') : null);
  });
  const nodeEls = names.map((n) => {
    const p = pos.get(n);
    const out = edges.filter((e) => e.from === n && e.kind !== 'deny').map((e) => e.to);
    const seen = observed.filter((o) => o.Source === n).map((o) => o.Destination);
    const label = `${n}: service${out.length ? `, may call ${out.join(', ')}` : ''}`
      + `${seen.length ? `, observed calling ${seen.join(', ')}` : ''}. Open its page.`;
    return svg('a', { href: `#/services/${enc(n)}`, class: 'node', 'aria-label': label, dataset: { service: n } },
      svg('circle', { cx: p.x.toFixed(1), cy: p.y.toFixed(1), r: NODE_R }),
      svg('text', { x: p.x.toFixed(1), y: (p.y + 5).toFixed(1), 'text-anchor': 'middle' }, n.length > 12 ? `${n.slice(0, 11)}…` : n));
  });
  return svg('svg', { id: 'topology', viewBox: `0 0 ${W} ${H}`, role: 'group', 'aria-label': 'Services, the calls intentions decide and the calls the proxies observed' },
    svg('defs', {}, ['allow', 'l7', 'deny'].map((k) => marker(`arrow-${k}`, `arrow ${k}`)),
      // The bands' arrows keep one size whatever the band's width.
      ['observed', 'observed-denied'].map((k) => svg('marker', { id: `arrow-${k}`, viewBox: '0 0 10 10', refX: 6, refY: 5, markerWidth: 14, markerHeight: 14, markerUnits: 'userSpaceOnUse', orient: 'auto-start-reverse', class: `arrow ${k}` },
        svg('path', { d: 'M0,0 L10,5 L0,10 z' })))),
    svg('g', { class: 'observed' }, bandEls),
    svg('g', { class: 'edges' }, edgeEls), svg('g', { class: 'nodes' }, nodeEls));
}

export function topologyPage(scope, main, mesh) {
  const status = h('div', { class: 'status', 'aria-live': 'polite' });
  const obsStatus = h('div', { class: 'status' });
  const pic = h('div', { class: 'topology card' }, h('p', { class: 'muted' }, 'Loading…'));
  const listing = h('div');
  const defaultNote = h('span');
  const observedNote = h('p', { class: 'note-box', id: 'observed-note' }, 'Loading the calls the proxies observed…');
  main.append(h('h1', {}, 'Topology'),
    h('p', { class: 'muted' }, 'Each arrow is a call an intention decides in the mesh ', h('code', {}, mesh),
      ': ', h('span', { class: 'key allow' }, 'allowed'), ', ', h('span', { class: 'key l7' }, 'allowed for some HTTP requests (L7)'),
      ', ', h('span', { class: 'key deny' }, 'denied by a deny intention'), '. ', defaultNote,
      ' Under them, ', h('span', { class: 'key observed' }, 'calls the proxies observed'),
      ' in the last 5 minutes (wider for more requests per second), and ',
      h('span', { class: 'key observed-denied' }, '✕ observed calls the mesh denies'), '.',
      ' Select a service to open its page.'),
    observedNote, status, obsStatus, pic, listing);
  const meshSelect = h('select', { id: 'topo-mesh' }, h('option', { value: mesh, selected: true }, mesh));
  meshSelect.addEventListener('change', () => {
    location.hash = meshSelect.value === 'default' ? '#/topology' : `#/topology?mesh=${meshSelect.value}`;
  });
  main.querySelector('h1').after(h('div', { class: 'field mesh-pick' }, h('label', { for: 'topo-mesh' }, 'Mesh'), meshSelect));
  scope.add(watch('/v1/meshes', (data) => {
    const m = (data || []).find((x) => x.Name === mesh);
    defaultNote.textContent = m ? `Pairs no intention names follow the mesh's default action (${m.DefaultIntentionAction}) and are not drawn unless calls are observed.` : '';
    const names = (data || []).map((x) => x.Name);
    if (!names.includes(mesh)) names.unshift(mesh);
    fill(meshSelect, names.map((n) => h('option', { value: n, selected: n === mesh }, n)));
  }, () => {}));

  // names: the catalog's; shown: those evaluated (MAX); edges: intention
  // edges; decisions: every evaluated pair's check; observed: telemetry.
  let names = null, ixnIndex = null, gen = 0;
  let shown = null, edges = [], decisions = new Map(), observed = null;

  function render() {
    if (shown === null) return;
    if (shown.length === 0) { refill(pic, 'none', h('p', { class: 'muted' }, 'No services are registered.')); refill(listing, 'none'); return; }
    const drawn = new Set(shown);
    const obs = (observed || []).filter((o) => o.Source !== o.Destination);
    const obsDrawn = obs.filter((o) => drawn.has(o.Source) && drawn.has(o.Destination));
    // Redrawn only when what it shows changes, keeping the focus on its node.
    const key = JSON.stringify([shown, edges, obs.map((o) => [o.Source, o.Destination, o.RequestRate, o.SuccessRate]), [...decisions]]);
    refill(pic, key, draw(shown, edges, obsDrawn, decisions));
    // One line per pair an intention decides or the proxies observed.
    const pairs = new Map();
    for (const e of edges) pairs.set(`${e.from} -> ${e.to}`, { from: e.from, to: e.to, edge: e });
    for (const o of obs) {
      const key = `${o.Source} -> ${o.Destination}`;
      if (!pairs.has(key)) pairs.set(key, { from: o.Source, to: o.Destination });
      pairs.get(key).obs = o;
    }
    const rows = [...pairs.values()].sort((x, y) => (x.from + x.to).localeCompare(y.from + y.to));
    observedNote.textContent = observed === null ? 'The calls the proxies observed are not known yet.'
      : obs.length === 0 ? 'No calls observed by the proxies in the last 5 minutes: the edges show what intentions decide, not traffic.'
        : `${obs.length} call${obs.length === 1 ? '' : 's'} between services observed by the proxies in the last 5 minutes.`;
    refill(listing, key, h('h2', {}, 'Edges'), rows.length === 0
      ? h('p', { class: 'muted' }, 'No intention decides a call between these services, and no call is observed.')
      : h('ul', { id: 'edges', class: 'edge-list' }, rows.map((p) => {
        const key = `${p.from} -> ${p.to}`, d = decisions.get(key);
        const kind = p.edge ? p.edge.kind : d ? `default-${d.allowed ? 'allow' : 'deny'}` : 'unknown';
        const denied = !!p.obs && refused(d);
        return h('li', { dataset: { edge: key, verdict: kind, observed: !!p.obs, denied } },
          h('a', { href: `#/services/${enc(p.from)}` }, p.from), ' → ', h('a', { href: `#/services/${enc(p.to)}` }, p.to), ': ',
          p.obs ? [h('span', { class: `badge observed${denied ? ' denied' : ''}`, title: denied ? 'observed calls that the mesh denies' : null },
            denied ? '✕ observed' : 'observed'), `, ${rateText(p.obs)}, `] : null,
          p.edge ? [h('span', { class: `badge ${kind}` }, LABEL[kind]), ` by ${p.edge.by}`] : policyText(d));
      })));
  }

  async function evaluate() {
    if (names === null || ixnIndex === null) return;
    const mine = ++gen;
    const evaluated = names.slice(0, MAX);
    const pairs = [];
    for (const a of evaluated) for (const b of evaluated) if (a !== b) pairs.push([a, b]);
    const found = [], checks = new Map();
    let next = 0, failed = null;
    async function worker() {
      while (next < pairs.length && mine === gen && !scope.closed) {
        const [a, b] = pairs[next++];
        try {
          const r = (await api('GET', `/v1/connect/intentions/check${q({ source: a, destination: b, mesh })}`)).data;
          const k = verdict(r);
          const by = k ? `the intention ${r.Intention.SourceName} -> ${r.Intention.DestinationName}` : '';
          if (k) found.push({ from: a, to: b, kind: k, by });
          checks.set(`${a} -> ${b}`, { kind: k, by, allowed: !!r.Allowed });
        } catch (e) { failed = e; }
      }
    }
    await Promise.all(Array.from({ length: PARALLEL }, worker));
    if (mine !== gen || scope.closed) return;
    found.sort((x, y) => (x.from + x.to).localeCompare(y.from + y.to));
    fill(status, failed ? h('p', { class: 'error', role: 'alert' }, `Some checks failed: ${failed.message}`) : null,
      names.length > MAX ? h('p', { class: 'warning' }, `${names.length} services: only the first ${MAX} are drawn.`) : null);
    shown = evaluated;
    edges = found;
    decisions = checks;
    render();
  }
  const err = (e) => fill(status, h('p', { class: 'error', role: 'alert' }, `${e.message} (retrying)`));
  // services, not their sidecars (connect-proxy instances): calls are between services
  scope.add(watch(`/v1/catalog/services${q({ filter: 'ServiceKind != "connect-proxy"' })}`,
    (data) => { names = Object.keys(data || {}).sort(); evaluate(); }, err));
  scope.add(watch(`/v1/connect/intentions${q({ mesh })}`, (data, r) => { ixnIndex = r.index; evaluate(); }, err));
  // Blocking, and at least every 10 s: calls older than 5 minutes leave
  // the answer without waking a blocking query.
  scope.add(watch(`/v1/weft/telemetry/edges${q({ mesh })}`, (data) => {
    fill(obsStatus);
    observed = Array.isArray(data) ? data : [];
    render();
  }, (e) => fill(obsStatus, h('p', { class: 'error', role: 'alert' }, `Observed calls: ${e.message} (retrying)`)),
  { wait: '10s', always: true }));
}
