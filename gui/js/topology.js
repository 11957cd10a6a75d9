// Topology: the catalog's services as nodes on a circle, and an edge for
// each ordered pair an intention decides (asked of
// /v1/connect/intentions/check, which is the server's own evaluation):
// allowed (solid), allowed for some HTTP requests by L7 permissions, or
// denied by an explicit deny intention (dashed). Pairs the mesh's default
// action decides are not drawn. Re-evaluated when the catalog or the
// intentions change. Nodes are links to the service pages.
import { api, watch, q } from './api.js';
import { h, fill } from './dom.js';

const NS = 'http://www.w3.org/2000/svg';
const MAX = 16;          // services evaluated pairwise (MAX * (MAX - 1) checks)
const PARALLEL = 3;      // checks in flight (a browser has six connections; three loops hold some)

function s(tag, attrs, ...children) {
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

function draw(names, edges) {
  const R = names.length < 2 ? 0 : Math.min(200, 60 + 28 * names.length);
  const W = 760, H = 2 * R + 110, cx = W / 2, cy = H / 2;
  const pos = new Map(names.map((n, i) => {
    const a = -Math.PI / 2 + (2 * Math.PI * i) / names.length;
    return [n, { x: cx + R * Math.cos(a), y: cy + R * Math.sin(a) }];
  }));
  const marker = (id, cls) => s('marker', { id, viewBox: '0 0 10 10', refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse', class: cls },
    s('path', { d: 'M0,0 L10,5 L0,10 z' }));
  const NODE_R = 30;
  const edgeEls = edges.map((e) => {
    const a = pos.get(e.from), b = pos.get(e.to);
    const dx = b.x - a.x, dy = b.y - a.y, len = Math.hypot(dx, dy) || 1;
    const ux = dx / len, uy = dy / len;
    // Curved a little to the right of its direction, so that a -> b and
    // b -> a are two visible lines.
    const x1 = a.x + ux * NODE_R, y1 = a.y + uy * NODE_R, x2 = b.x - ux * (NODE_R + 2), y2 = b.y - uy * (NODE_R + 2);
    const mx = (x1 + x2) / 2 - uy * 24, my = (y1 + y2) / 2 + ux * 24;
    return s('path', {
      d: `M${x1.toFixed(1)},${y1.toFixed(1)} Q${mx.toFixed(1)},${my.toFixed(1)} ${x2.toFixed(1)},${y2.toFixed(1)}`,
      class: `edge ${e.kind}`, 'marker-end': `url(#arrow-${e.kind})`,
      dataset: { edge: `${e.from} -> ${e.to}`, verdict: e.kind },
    }, s('title', {}, `${e.from} → ${e.to}: ${LABEL[e.kind]} by ${e.by}`));
  });
  const nodeEls = names.map((n) => {
    const p = pos.get(n);
    const out = edges.filter((e) => e.from === n && e.kind !== 'deny').map((e) => e.to);
    const label = `${n}: service${out.length ? `, may call ${out.join(', ')}` : ''}. Open its page.`;
    return s('a', { href: `#/services/${enc(n)}`, class: 'node', 'aria-label': label, dataset: { service: n } },
      s('circle', { cx: p.x.toFixed(1), cy: p.y.toFixed(1), r: NODE_R }),
      s('text', { x: p.x.toFixed(1), y: (p.y + 5).toFixed(1), 'text-anchor': 'middle' }, n.length > 12 ? `${n.slice(0, 11)}…` : n));
  });
  return s('svg', { id: 'topology', viewBox: `0 0 ${W} ${H}`, role: 'group', 'aria-label': 'Services and the calls intentions decide' },
    s('defs', {}, ['allow', 'l7', 'deny'].map((k) => marker(`arrow-${k}`, `arrow ${k}`))),
    s('g', { class: 'edges' }, edgeEls), s('g', { class: 'nodes' }, nodeEls));
}

export function topologyPage(scope, main, mesh) {
  const status = h('div', { class: 'status', 'aria-live': 'polite' });
  const pic = h('div', { class: 'topology card' }, h('p', { class: 'muted' }, 'Loading…'));
  const listing = h('div');
  const defaultNote = h('span');
  main.append(h('h1', {}, 'Topology'),
    h('p', { class: 'muted' }, 'Each arrow is a call an intention decides in the mesh ', h('code', {}, mesh),
      ': ', h('span', { class: 'key allow' }, 'allowed'), ', ', h('span', { class: 'key l7' }, 'allowed for some HTTP requests (L7)'),
      ', ', h('span', { class: 'key deny' }, 'denied by a deny intention'), '. ', defaultNote,
      ' Select a service to open its page.'),
    h('p', { class: 'note-box', id: 'observed-note' }, 'Calls observed by the proxies are not collected yet: the edges show what intentions decide, not traffic.'),
    status, pic, listing);
  const meshSelect = h('select', { id: 'topo-mesh' }, h('option', { value: mesh, selected: true }, mesh));
  meshSelect.addEventListener('change', () => {
    location.hash = meshSelect.value === 'default' ? '#/topology' : `#/topology?mesh=${meshSelect.value}`;
  });
  main.querySelector('h1').after(h('div', { class: 'field mesh-pick' }, h('label', { for: 'topo-mesh' }, 'Mesh'), meshSelect));
  scope.add(watch('/v1/meshes', (data) => {
    const m = (data || []).find((x) => x.Name === mesh);
    defaultNote.textContent = m ? `Pairs no intention names follow the mesh's default action (${m.DefaultIntentionAction}) and are not drawn.` : '';
    const names = (data || []).map((x) => x.Name);
    if (!names.includes(mesh)) names.unshift(mesh);
    fill(meshSelect, names.map((n) => h('option', { value: n, selected: n === mesh }, n)));
  }, () => {}));

  let names = null, ixnIndex = null, gen = 0;
  async function evaluate() {
    if (names === null || ixnIndex === null) return;
    const mine = ++gen;
    const shown = names.slice(0, MAX);
    const pairs = [];
    for (const a of shown) for (const b of shown) if (a !== b) pairs.push([a, b]);
    const edges = [];
    let next = 0, failed = null;
    async function worker() {
      while (next < pairs.length && mine === gen && !scope.closed) {
        const [a, b] = pairs[next++];
        try {
          const r = (await api('GET', `/v1/connect/intentions/check${q({ source: a, destination: b, mesh })}`)).data;
          const k = verdict(r);
          if (k) {
            const ix = r.Intention;
            const by = `the intention ${ix.SourceName} -> ${ix.DestinationName}`;
            edges.push({ from: a, to: b, kind: k, by });
          }
        } catch (e) { failed = e; }
      }
    }
    await Promise.all(Array.from({ length: PARALLEL }, worker));
    if (mine !== gen || scope.closed) return;
    edges.sort((x, y) => (x.from + x.to).localeCompare(y.from + y.to));
    fill(status, failed ? h('p', { class: 'error', role: 'alert' }, `Some checks failed: ${failed.message}`) : null,
      names.length > MAX ? h('p', { class: 'warning' }, `${names.length} services: only the first ${MAX} are drawn.`) : null);
    if (shown.length === 0) { fill(pic, h('p', { class: 'muted' }, 'No services are registered.')); fill(listing); return; }
    fill(pic, draw(shown, edges));
    fill(listing, h('h2', {}, 'Edges'), edges.length === 0
      ? h('p', { class: 'muted' }, 'No intention decides a call between these services.')
      : h('ul', { id: 'edges', class: 'edge-list' }, edges.map((e) => h('li', { dataset: { edge: `${e.from} -> ${e.to}`, verdict: e.kind } },
        h('a', { href: `#/services/${enc(e.from)}` }, e.from), ' → ', h('a', { href: `#/services/${enc(e.to)}` }, e.to), ': ',
        h('span', { class: `badge ${e.kind === 'l7' ? 'l7' : e.kind}` }, LABEL[e.kind]), ` by ${e.by}`))));
  }
  const err = (e) => fill(status, h('p', { class: 'error', role: 'alert' }, `${e.message} (retrying)`));
  scope.add(watch('/v1/catalog/services', (data) => { names = Object.keys(data || {}).sort(); evaluate(); }, err));
  scope.add(watch(`/v1/connect/intentions${q({ mesh })}`, (data, r) => { ixnIndex = r.index; evaluate(); }, err));
}
