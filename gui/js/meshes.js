// Meshes (live, created, edited and deleted here) and zones (read-only).
// Writes are PUT /v1/meshes/NAME with ?cas= (0 when creating: never
// replaces a mesh of the same name; the ModifyIndex read when editing:
// never overwrites a change made meanwhile) and DELETE /v1/meshes/NAME.
import { api, watch, q, ApiError } from './api.js';
import { h, fill } from './dom.js';
import { clearErrors, showError, field } from './forms.js';

const enc = encodeURIComponent;

function table(id, cols, rows) {
  return h('table', { class: 'grid', id },
    h('thead', {}, h('tr', {}, cols.map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, rows));
}

// "key=value" lines -> {key: value}; throws an ApiError naming Meta.
function parseMeta(text) {
  const meta = {};
  text.split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    const eq = line.indexOf('=');
    if (eq <= 0) throw new ApiError(400, `Meta: line ${i + 1} is not key=value`, { field: 'Meta' });
    meta[line.slice(0, eq).trim()] = line.slice(eq + 1).trim();
  });
  return meta;
}

function meshForm() {
  let editing = null;   // the mesh being edited, as read; null when creating
  const name = h('input', { id: 'mesh-name', required: true, placeholder: 'payments', autocomplete: 'off', spellcheck: 'false' });
  const mtls = h('select', { id: 'mesh-mtls' }, ['strict', 'permissive'].map((m) => h('option', { value: m }, m)));
  const trust = h('input', { id: 'mesh-trust', size: 36, autocomplete: 'off', spellcheck: 'false' });
  const action = h('select', { id: 'mesh-action' });
  const meta = h('textarea', { id: 'mesh-meta', rows: 3, cols: 30, placeholder: 'team=payments', spellcheck: 'false' });
  const title = h('h2', {}, 'Create a mesh');
  const submit = h('button', { type: 'submit', id: 'mesh-save' }, 'Create mesh');
  const cancel = h('button', { type: 'button', class: 'link', hidden: true }, 'Cancel');
  const done = h('p', { class: 'ok', 'aria-live': 'polite' });
  const form = h('form', { id: 'mesh-form', class: 'card', novalidate: true },
    title,
    h('div', { class: 'row' },
      field('mesh-name', 'Name', name), field('mesh-mtls', 'mTLS mode', mtls),
      h('div', { class: 'field grow' }, h('label', { for: 'mesh-trust' }, 'Trust domain'), trust),
      field('mesh-action', 'Default intention action', action),
      field('mesh-meta', 'Meta (key=value, one per line)', meta)),
    h('div', { class: 'actions' }, submit, ' ', cancel), done);

  function actions(current) {
    // An action once chosen cannot be unset: "server default" is offered
    // only while none is chosen (leaving the field out keeps it).
    const opts = current && current.DefaultIntentionActionSet ? [] : [['', `server default${current ? ` (${current.DefaultIntentionAction})` : ''}`]];
    fill(action, [...opts, ['allow', 'allow'], ['deny', 'deny']].map(([v, t]) => h('option', { value: v }, t)));
    action.value = current && current.DefaultIntentionActionSet ? current.DefaultIntentionAction : '';
  }

  function reset(mesh) {
    clearErrors(form);
    editing = mesh || null;
    name.value = mesh ? mesh.Name : '';
    name.readOnly = !!mesh;
    mtls.value = mesh ? mesh.MTLSMode : 'strict';
    trust.value = mesh ? mesh.TrustDomain : '';
    trust.placeholder = mesh ? '' : 'empty: NAME.<the default mesh\'s trust domain>';
    actions(mesh);
    meta.value = mesh ? Object.entries(mesh.Meta || {}).map(([k, v]) => `${k}=${v}`).join('\n') : '';
    fill(title, mesh ? `Edit the mesh ${mesh.Name}` : 'Create a mesh');
    submit.textContent = mesh ? 'Save mesh' : 'Create mesh';
    cancel.hidden = !mesh;
  }
  reset(null);
  cancel.addEventListener('click', () => { reset(null); name.focus(); });

  const inputFor = (f) => ({ Name: name, MTLSMode: mtls, TrustDomain: trust, DefaultIntentionAction: action, Meta: meta })[f.split(/[.[]/)[0]] || null;
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    done.textContent = '';
    const n = name.value.trim();
    try {
      if (!n) throw new ApiError(400, 'Name: is required', { field: 'Name' });
      const body = { MTLSMode: mtls.value, Meta: parseMeta(meta.value) };
      if (trust.value.trim()) body.TrustDomain = trust.value.trim();
      if (action.value) body.DefaultIntentionAction = action.value;
      const cas = editing ? editing.ModifyIndex : 0;
      const r = await api('PUT', `/v1/meshes/${enc(n)}${q({ cas })}`, body);
      if (r.data === false) {
        throw editing
          ? new ApiError(409, `The mesh ${n} changed on the server since it was loaded: press Edit in its row to load it again, then save.`)
          : new ApiError(409, `Name: a mesh named "${n}" already exists (use its Edit button)`, { field: 'Name' });
      }
      done.textContent = editing ? `Saved the mesh ${n}.` : `Created the mesh ${n}.`;
      reset(null);
    } catch (e) {
      showError(form, e, inputFor, submit);
    }
  });
  return { form, edit: (mesh) => { reset(mesh); done.textContent = ''; name.scrollIntoView({ block: 'nearest' }); mtls.focus(); } };
}

export function meshesPage(scope, main) {
  const meshes = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  const zones = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  const editor = meshForm();
  main.append(h('h1', {}, 'Meshes & zones'),
    h('section', { 'aria-labelledby': 'm-h' }, h('h2', { id: 'm-h' }, 'Meshes'), meshes, editor.form),
    h('section', { 'aria-labelledby': 'z-h' }, h('h2', { id: 'z-h' }, 'Zones'), zones));
  const err = (el) => (e) => fill(el, h('p', { class: 'error', role: 'alert' }, `${e.message} (retrying)`));

  function row(m) {
    const rowErr = h('span', { class: 'row-error', role: 'alert' });
    const edit = h('button', { type: 'button', 'aria-label': `Edit ${m.Name}` }, 'Edit');
    edit.addEventListener('click', () => { rowErr.textContent = ''; editor.edit(m); });
    let del = null;
    if (m.Name !== 'default') {
      del = h('button', { type: 'button', class: 'danger', 'aria-label': `Delete ${m.Name}` }, 'Delete');
      del.addEventListener('click', async () => {
        if (!confirm(`Delete the mesh ${m.Name}? Its CA and trust domain go with it.`)) return;
        rowErr.textContent = '';
        try { await api('DELETE', `/v1/meshes/${enc(m.Name)}`); } catch (e) { rowErr.textContent = e.message; }
      });
    }
    return h('tr', { dataset: { mesh: m.Name } },
      h('th', { scope: 'row' }, m.Name), h('td', {}, m.MTLSMode), h('td', {}, h('code', {}, m.TrustDomain)),
      h('td', {}, h('span', { class: `badge ${m.DefaultIntentionAction}` }, m.DefaultIntentionAction || ''),
        m.DefaultIntentionActionSet ? '' : h('span', { class: 'muted small' }, ' (server default)')),
      h('td', {}, Object.entries(m.Meta || {}).map(([k, v]) => h('span', { class: 'tag' }, `${k}=${v}`))),
      h('td', { class: 'row-actions' }, edit, ' ', del || h('span', { class: 'muted small' }, 'cannot be deleted'), rowErr));
  }

  scope.add(watch('/v1/meshes', (data) => fill(meshes, table('meshes',
    ['Mesh', 'mTLS', 'Trust domain', 'Default action', 'Meta', ''],
    (data || []).map(row))), err(meshes)));
  scope.add(watch('/v1/zones', (data) => fill(zones, table('zones',
    ['Zone', 'Status', 'Mode', 'Servers'],
    (data || []).map((z) => h('tr', {},
      h('th', { scope: 'row' }, z.Name, z.Local ? h('span', { class: 'muted small' }, ' (this server)') : null),
      h('td', {}, h('span', { class: `badge ${z.Status === 'online' ? 'passing' : 'critical'}` }, z.Status)),
      h('td', {}, z.Mode),
      h('td', {}, (z.Servers || []).map((s) => h('div', {}, `${s.Node} `, h('code', {}, s.Address)))))))), err(zones)));
}
