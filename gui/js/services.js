// Services: the list with instance counts and health by zone, and a
// service's page (instances, checks, its traffic charts, upstreams and
// downstreams, the intentions that concern it). Both stay live through
// blocking queries.
import { api, watch, q } from './api.js';
import { h, fill, sideName, statusBadge } from './dom.js';
import { serviceTraffic } from './traffic.js';

const RANK = { passing: 0, warning: 1, critical: 2 };

// The worst of an instance's checks (node's and its own); passing if none.
export function instanceStatus(entry) {
  let worst = 'passing';
  for (const c of entry.Checks || []) if ((RANK[c.Status] ?? 2) > RANK[worst]) worst = c.Status in RANK ? c.Status : 'critical';
  return worst;
}

const zoneOf = (entry) => (entry.Node && entry.Node.Datacenter) || 'dc1';
const enc = encodeURIComponent;

function errorBox(el, e) {
  fill(el, e ? h('p', { class: 'error', role: 'alert' }, `${e.status ? `${e.status}: ` : ''}${e.message} (retrying)`) : null);
}

// One blocking loop on the catalog's service names and one on every check
// (/v1/health/state/any): either moving refetches each service's
// /v1/health/service/:name. A loop per service would use up the browser's
// six connections per server.
export function servicesPage(scope, main) {
  const status = h('div', { class: 'status' });
  const body = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  main.append(h('h1', {}, 'Services'), status, body);
  let names = null, gen = 0;

  async function refresh() {
    if (!names) return;
    const mine = ++gen;
    const list = Object.keys(names).sort();
    const healths = await Promise.all(list.map((n) =>
      api('GET', `/v1/health/service/${enc(n)}`).then((r) => r.data, () => null)));
    if (mine !== gen || scope.closed) return;
    render(list, healths);
  }

  function render(list, healths) {
    if (list.length === 0) { fill(body, h('p', { class: 'muted' }, 'No services are registered.')); return; }
    const rows = list.map((name, i) => {
      const entries = healths[i] || [];
      const zones = new Map();
      for (const e of entries) {
        const z = zoneOf(e);
        if (!zones.has(z)) zones.set(z, { passing: 0, warning: 0, critical: 0 });
        zones.get(z)[instanceStatus(e)]++;
      }
      const health = [...zones].map(([z, c]) => h('div', { class: 'zone-health' },
        h('span', { class: 'zone' }, z), ' ',
        ['passing', 'warning', 'critical'].filter((s) => c[s]).map((s) =>
          h('span', { class: `badge ${s}`, title: `${c[s]} ${s} in ${z}` }, `${c[s]} ${s}`))));
      const worst = entries.reduce((w, e) => (RANK[instanceStatus(e)] > RANK[w] ? instanceStatus(e) : w), 'passing');
      return h('tr', { dataset: { service: name, health: entries.length ? worst : 'none' } },
        h('th', { scope: 'row' }, h('a', { href: `#/services/${enc(name)}` }, name)),
        h('td', { class: 'num' }, String(entries.length)),
        h('td', {}, health.length ? health : h('span', { class: 'muted' }, 'no instances')),
        h('td', {}, (names[name] || []).map((t) => h('span', { class: 'tag' }, t))));
    });
    fill(body, h('table', { class: 'grid', id: 'services' },
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Service'), h('th', { scope: 'col' }, 'Instances'),
        h('th', { scope: 'col' }, 'Health by zone'), h('th', { scope: 'col' }, 'Tags'))),
      h('tbody', {}, rows)));
  }

  scope.add(watch('/v1/catalog/services', (data) => { errorBox(status, null); names = data || {}; refresh(); },
    (e) => errorBox(status, e)));
  scope.add(watch('/v1/health/state/any', () => refresh(), (e) => errorBox(status, e)));
}

function intentionList(list, empty) {
  if (!list || list.length === 0) return h('p', { class: 'muted' }, empty);
  return h('ul', { class: 'ixn-list' }, list.map((x) => h('li', {},
    h('span', { class: `badge ${x.Action || 'l7'}` }, x.Action || 'L7'), ' ',
    h('code', {}, sideName(x.SourceNS, x.SourceName)), ' → ', h('code', {}, sideName(x.DestinationNS, x.DestinationName)),
    x.Description ? h('span', { class: 'muted' }, ` — ${x.Description}`) : null)));
}

export function servicePage(scope, main, name) {
  const status = h('div', { class: 'status' });
  const instances = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  const inbound = h('div', { id: 'ixn-in' }, h('p', { class: 'muted' }, 'Loading…'));
  const outbound = h('div', { id: 'ixn-out' }, h('p', { class: 'muted' }, 'Loading…'));
  const meshNote = h('span', { class: 'muted small' });
  const flows = serviceTraffic(scope, name);
  let healthSeen = () => {};
  main.append(
    h('p', { class: 'crumbs' }, h('a', { href: '#/services' }, 'Services'), ' / '),
    h('h1', {}, name), status,
    h('section', { 'aria-labelledby': 'inst-h' }, h('h2', { id: 'inst-h' }, 'Instances'), instances),
    h('section', { 'aria-labelledby': 'traffic-h' }, h('h2', { id: 'traffic-h' }, 'Traffic'), flows.traffic),
    h('section', { 'aria-labelledby': 'conn-h' }, h('h2', { id: 'conn-h' }, 'Upstreams and downstreams'), flows.connections),
    h('section', { 'aria-labelledby': 'ixn-h' }, h('h2', { id: 'ixn-h' }, 'Intentions ', meshNote),
      h('div', { class: 'cols' },
        h('div', {}, h('h3', {}, `Who may call ${name}`), h('p', { class: 'muted small' }, 'intentions whose destination matches, in evaluation order'), inbound),
        h('div', {}, h('h3', {}, `What ${name} may call`), h('p', { class: 'muted small' }, 'intentions whose source matches, in evaluation order'), outbound)),
      h('p', {}, h('a', { href: '#/intentions' }, 'Manage intentions'))));

  scope.add(watch(`/v1/health/service/${enc(name)}`, (entries) => {
    errorBox(status, null);
    healthSeen(entries);
    if (!entries || entries.length === 0) { fill(instances, h('p', { class: 'muted' }, 'No instances.')); return; }
    fill(instances, h('table', { class: 'grid', id: 'instances' },
      h('thead', {}, h('tr', {}, ['Instance', 'Node', 'Address', 'Zone', 'Mesh', 'Health', 'Checks'].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, entries.map((e) => {
        const s = e.Service || {}, n = e.Node || {};
        return h('tr', { dataset: { instance: s.ID, health: instanceStatus(e) } },
          h('th', { scope: 'row' }, s.ID),
          h('td', {}, n.Node),
          h('td', {}, `${s.Address || n.Address || ''}${s.Port ? `:${s.Port}` : ''}`),
          h('td', {}, zoneOf(e)),
          h('td', {}, s.Mesh || 'default'),
          h('td', {}, statusBadge(instanceStatus(e))),
          h('td', {}, (e.Checks || []).length === 0 ? h('span', { class: 'muted' }, 'none') :
            h('ul', { class: 'checks' }, e.Checks.map((c) => h('li', { dataset: { check: c.CheckID } },
              statusBadge(c.Status), ' ', c.Name || c.CheckID,
              c.ServiceID ? null : h('span', { class: 'muted small' }, ' (node)'),
              // (a maintenance check has no output: its reason is in Notes)
              c.Output ? h('div', { class: 'output' }, c.Output)
                : c.Type === 'maintenance' && c.Notes ? h('div', { class: 'output' }, c.Notes) : null)))));
      }))));
  }, (e) => errorBox(status, e)));

  // The intentions of the service's mesh (its instances'), once known.
  let matching = null;
  function watchIntentions(mesh) {
    if (matching === mesh) return;
    matching = mesh;
    fill(meshNote, mesh === 'default' ? '' : `in the mesh ${mesh}`);
    for (const [by, el, empty] of [['destination', inbound, `No intention names ${name} as a destination: the mesh's default action decides.`],
      ['source', outbound, `No intention names ${name} as a source: the mesh's default action decides.`]]) {
      scope.add(watch(`/v1/connect/intentions/match${q({ by, name, mesh })}`, (data) => {
        fill(el, intentionList((data || {})[name], empty));
      }, (e) => fill(el, h('p', { class: 'error', role: 'alert' }, e.message))));
    }
  }
  healthSeen = (entries) => {
    const mesh = ((entries || [])[0]?.Service?.Mesh) || 'default';
    watchIntentions(mesh);
    flows.start(mesh);
  };
}
