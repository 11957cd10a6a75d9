// Meshes and zones, read-only and live.
import { watch } from './api.js';
import { h, fill } from './dom.js';

function table(id, cols, rows) {
  return h('table', { class: 'grid', id },
    h('thead', {}, h('tr', {}, cols.map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, rows));
}

export function meshesPage(scope, main) {
  const meshes = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  const zones = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  main.append(h('h1', {}, 'Meshes & zones'),
    h('section', { 'aria-labelledby': 'm-h' }, h('h2', { id: 'm-h' }, 'Meshes'), meshes),
    h('section', { 'aria-labelledby': 'z-h' }, h('h2', { id: 'z-h' }, 'Zones'), zones));
  const err = (el) => (e) => fill(el, h('p', { class: 'error', role: 'alert' }, `${e.message} (retrying)`));
  scope.add(watch('/v1/meshes', (data) => fill(meshes, table('meshes',
    ['Mesh', 'mTLS', 'Trust domain', 'Default action', 'Meta'],
    (data || []).map((m) => h('tr', {},
      h('th', { scope: 'row' }, m.Name), h('td', {}, m.MTLSMode), h('td', {}, h('code', {}, m.TrustDomain)),
      h('td', {}, h('span', { class: `badge ${m.DefaultIntentionAction}` }, m.DefaultIntentionAction || ''),
        m.DefaultIntentionActionSet ? '' : h('span', { class: 'muted small' }, ' (server default)')),
      h('td', {}, Object.entries(m.Meta || {}).map(([k, v]) => h('span', { class: 'tag' }, `${k}=${v}`))))))), err(meshes)));
  scope.add(watch('/v1/zones', (data) => fill(zones, table('zones',
    ['Zone', 'Status', 'Mode', 'Servers'],
    (data || []).map((z) => h('tr', {},
      h('th', { scope: 'row' }, z.Name, z.Local ? h('span', { class: 'muted small' }, ' (this server)') : null),
      h('td', {}, h('span', { class: `badge ${z.Status === 'online' ? 'passing' : 'critical'}` }, z.Status)),
      h('td', {}, z.Mode),
      h('td', {}, (z.Servers || []).map((s) => h('div', {}, `${s.Node} `, h('code', {}, s.Address)))))))), err(zones)));
}
