// Intentions: the mesh's rules in evaluation order (live), with a filter,
// create/replace (with an L7 permissions editor), delete, the shadowed
// ones flagged from /analysis, and the "Can A call B?" check, which runs
// again whenever the intentions change.
import { api, watch, q } from './api.js';
import { h, fill, sideName } from './dom.js';

const key = (x) => `${sideName(x.SourceNS, x.SourceName)} -> ${sideName(x.DestinationNS, x.DestinationName)}`;

function actionLabel(x) {
  if (x.Action) return h('span', { class: `badge ${x.Action}` }, x.Action);
  const perms = x.Permissions || [];
  return h('span', {}, h('span', { class: 'badge l7' }, 'L7'), ' ',
    h('ul', { class: 'perms' }, perms.map((p) => {
      const http = p.HTTP || {};
      const path = http.PathExact ? `= ${http.PathExact}` : http.PathPrefix ? `${http.PathPrefix}*` : http.PathRegex ? `~ ${http.PathRegex}` : 'any path';
      return h('li', {}, h('span', { class: `badge ${p.Action}` }, p.Action), ' ',
        (http.Methods || []).join(',') || 'any method', ' ', h('code', {}, path));
    })));
}

// Field names of the API's 400s ("Permissions[1].HTTP.PathExact") to the
// input they concern.
function fieldInput(form, field) {
  field = field.replace(/^Sources\[\d+\]\./, '');   // the service-intentions entry's form
  const m = field.match(/^Permissions\[(\d+)\](?:\.HTTP\.(\w+))?/);
  if (m) {
    const row = form.querySelectorAll('.perm-row')[Number(m[1])];
    if (!row) return form.querySelector('#ixn-action');
    if (m[2] === 'Methods') return row.querySelector('.perm-methods');
    if (m[2] && m[2].startsWith('Path')) return row.querySelector('.perm-path');
    return row.querySelector('.perm-action');
  }
  if (/^Source/.test(field) || field === 'source') return form.querySelector('#ixn-source');
  if (/^Destination/.test(field) || field === 'destination') return form.querySelector('#ixn-destination');
  if (/^(Action|Permissions)/.test(field)) return form.querySelector('#ixn-action');
  if (/^Description/.test(field)) return form.querySelector('#ixn-description');
  return null;
}

function clearErrors(form) {
  for (const el of form.querySelectorAll('.field-error')) el.remove();
  for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
}

// Puts the message next to the input the error names, else next to the
// form's submit button (a 403 is about the action, not a field).
function showError(form, e, fallback) {
  const input = e.field ? fieldInput(form, e.field) : null;
  const id = `err-${Math.random().toString(36).slice(2)}`;
  const msg = h('p', { class: 'field-error', role: 'alert', id }, e.message);
  if (input) {
    input.setAttribute('aria-invalid', 'true');
    input.setAttribute('aria-describedby', id);
    input.closest('.field, .perm-row').append(msg);
    input.focus();
  } else {
    fallback.after(msg);
  }
}

function permRow(p = {}) {
  const http = p.HTTP || {};
  const kind = http.PathPrefix !== undefined ? 'prefix' : http.PathRegex !== undefined ? 'regex' : 'exact';
  const n = Math.random().toString(36).slice(2, 8);
  const row = h('fieldset', { class: 'perm-row' },
    h('legend', {}, 'Permission'),
    h('span', { class: 'field' }, h('label', { for: `pa-${n}` }, 'Action'),
      h('select', { id: `pa-${n}`, class: 'perm-action' },
        h('option', { value: 'allow', selected: p.Action !== 'deny' }, 'allow'),
        h('option', { value: 'deny', selected: p.Action === 'deny' }, 'deny'))),
    h('span', { class: 'field' }, h('label', { for: `pk-${n}` }, 'Path match'),
      h('select', { id: `pk-${n}`, class: 'perm-kind' },
        ['exact', 'prefix', 'regex'].map((k) => h('option', { value: k, selected: k === kind }, k)))),
    h('span', { class: 'field' }, h('label', { for: `pp-${n}` }, 'Path'),
      h('input', { id: `pp-${n}`, class: 'perm-path', value: http.PathExact ?? http.PathPrefix ?? http.PathRegex ?? '', placeholder: '/api/' })),
    h('span', { class: 'field' }, h('label', { for: `pm-${n}` }, 'Methods'),
      h('input', { id: `pm-${n}`, class: 'perm-methods', value: (http.Methods || []).join(' '), placeholder: 'GET POST (empty: any)' })),
    h('button', { type: 'button', class: 'link', onclick: (ev) => ev.target.closest('.perm-row').remove() }, 'Remove'));
  return row;
}

function readPerms(form) {
  return [...form.querySelectorAll('.perm-row')].map((row) => {
    const HTTP = {};
    const path = row.querySelector('.perm-path').value.trim();
    const kind = row.querySelector('.perm-kind').value;
    if (path) HTTP[{ exact: 'PathExact', prefix: 'PathPrefix', regex: 'PathRegex' }[kind]] = path;
    const methods = row.querySelector('.perm-methods').value.split(/[\s,]+/).filter(Boolean).map((m) => m.toUpperCase());
    if (methods.length) HTTP.Methods = methods;
    return { Action: row.querySelector('.perm-action').value, HTTP };
  });
}

export function intentionsPage(scope, main, mesh) {
  const status = h('div', { class: 'status' });
  const datalist = h('datalist', { id: 'service-names' });
  const filter = h('input', { id: 'ixn-filter', type: 'search', placeholder: 'source, destination, action…' });
  const table = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  let list = [], findings = [];

  // ---- create / replace ----
  const perms = h('div', { class: 'perms-editor', hidden: true },
    h('div', { class: 'perm-rows' }),
    h('button', { type: 'button', id: 'add-perm', onclick: () => perms.querySelector('.perm-rows').append(permRow()) }, 'Add permission'));
  const action = h('select', { id: 'ixn-action', name: 'action' },
    h('option', { value: 'allow' }, 'allow'), h('option', { value: 'deny' }, 'deny'),
    h('option', { value: 'l7' }, 'L7 permissions (HTTP)'));
  action.addEventListener('change', () => {
    perms.hidden = action.value !== 'l7';
    if (!perms.hidden && !perms.querySelector('.perm-row')) perms.querySelector('.perm-rows').append(permRow());
  });
  const submit = h('button', { type: 'submit', id: 'ixn-save' }, 'Save intention');
  const note = h('div', { class: 'note', 'aria-live': 'polite' });
  const form = h('form', { id: 'ixn-form', class: 'card' },
    h('h2', {}, 'Create or replace an intention'),
    h('div', { class: 'row' },
      h('div', { class: 'field' }, h('label', { for: 'ixn-source' }, 'Source'),
        h('input', { id: 'ixn-source', name: 'source', list: 'service-names', required: true, placeholder: 'web, ns/web or *' })),
      h('div', { class: 'field' }, h('label', { for: 'ixn-destination' }, 'Destination'),
        h('input', { id: 'ixn-destination', name: 'destination', list: 'service-names', required: true, placeholder: 'api or *' })),
      h('div', { class: 'field' }, h('label', { for: 'ixn-action' }, 'Action'), action),
      h('div', { class: 'field grow' }, h('label', { for: 'ixn-description' }, 'Description'),
        h('input', { id: 'ixn-description', name: 'description' }))),
    perms,
    h('div', { class: 'actions' }, submit), note);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    fill(note);
    const source = form.querySelector('#ixn-source').value.trim();
    const destination = form.querySelector('#ixn-destination').value.trim();
    const body = { Description: form.querySelector('#ixn-description').value };
    if (action.value === 'l7') body.Permissions = readPerms(form);
    else body.Action = action.value;
    try {
      const r = await api('PUT', `/v1/connect/intentions/exact${q({ source, destination, mesh })}`, body);
      let warnings = [];
      try { warnings = JSON.parse(r.headers.get('X-Weft-Warnings') || '[]'); } catch { warnings = []; }
      fill(note, h('p', { class: 'ok' }, `Saved ${source} → ${destination}.`),
        warnings.map((w) => h('p', { class: 'warning' }, `Warning: ${w}`)));
    } catch (e) {
      showError(form, e, submit);
    }
  });

  // ---- check ----
  const result = h('div', { id: 'check-result', 'aria-live': 'polite' });
  const checkBtn = h('button', { type: 'submit' }, 'Check');
  const checkForm = h('form', { id: 'check-form', class: 'card' },
    h('h2', {}, 'Can A call B?'),
    h('div', { class: 'row' },
      h('div', { class: 'field' }, h('label', { for: 'check-source' }, 'Source (A)'),
        h('input', { id: 'check-source', list: 'service-names', required: true })),
      h('div', { class: 'field' }, h('label', { for: 'check-destination' }, 'Destination (B)'),
        h('input', { id: 'check-destination', list: 'service-names', required: true })),
      h('div', { class: 'field' }, h('label', { for: 'check-method' }, 'HTTP method (optional)'),
        h('input', { id: 'check-method', size: 7, placeholder: 'GET' })),
      h('div', { class: 'field' }, h('label', { for: 'check-path' }, 'HTTP path (optional)'),
        h('input', { id: 'check-path', placeholder: '/' }))),
    h('div', { class: 'actions' }, checkBtn), result);
  let lastCheck = null;
  async function runCheck() {
    if (!lastCheck) return;
    const asked = lastCheck;
    clearErrors(checkForm);
    try {
      const r = (await api('GET', `/v1/connect/intentions/check${q({ ...asked, mesh })}`)).data;
      if (asked !== lastCheck) return;
      const ix = r.Intention;
      fill(result, h('div', { class: `verdict ${r.Allowed ? 'allowed' : 'denied'}` },
        h('strong', { id: 'check-verdict' }, r.Allowed ? 'Allowed' : 'Denied'),
        h('span', {}, ` ${asked.source} → ${asked.destination}${asked.path ? ` (${asked.method || 'GET'} ${asked.path})` : ''}`)),
        h('p', { id: 'check-decided' }, 'Decided by ',
          r.DecidedBy === 'intention' && ix
            ? [h('span', {}, 'the intention '), h('code', {}, key(ix)),
              ` (${ix.Action || 'L7'}, precedence ${ix.Precedence}${r.Permission !== undefined && r.Permission !== null ? `, permission ${r.Permission}` : ''})`]
            : 'the mesh\'s default action', '.'),
        r.Reason ? h('p', { id: 'check-reason', class: 'reason' }, r.Reason) : null);
    } catch (e) {
      fill(result);
      showError(checkForm, e, checkBtn);
    }
  }
  checkForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const v = (id) => checkForm.querySelector(id).value.trim();
    lastCheck = { source: v('#check-source'), destination: v('#check-destination') };
    if (v('#check-path') || v('#check-method')) Object.assign(lastCheck, { method: v('#check-method') || 'GET', path: v('#check-path') || '/' });
    runCheck();
  });

  // ---- list ----
  function render() {
    const f = filter.value.trim().toLowerCase();
    const shown = list.filter((x) => !f || `${key(x)} ${x.Action || 'l7'} ${x.Description || ''}`.toLowerCase().includes(f));
    if (list.length === 0) { fill(table, h('p', { class: 'muted' }, 'No intentions: the mesh\'s default action decides every call.')); return; }
    const byKey = new Map();
    for (const fd of findings) {
      const k = key(fd);
      if (!byKey.has(k)) byKey.set(k, []);
      byKey.get(k).push(fd);
    }
    fill(table, h('table', { class: 'grid', id: 'intentions' },
      h('caption', {}, `${shown.length} of ${list.length}, in evaluation order: the first that matches a call decides it`),
      h('thead', {}, h('tr', {}, ['#', 'Source', 'Destination', 'Action', 'Precedence', 'Notes', ''].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, shown.map((x) => {
        const fds = byKey.get(key(x)) || [];
        const shadowed = fds.some((fd) => /shadow/i.test(fd.Kind));
        const err = h('span', { class: 'row-error', role: 'alert' });
        const del = h('button', { type: 'button', class: 'danger', 'aria-label': `Delete ${key(x)}` }, 'Delete');
        del.addEventListener('click', async () => {
          if (!confirm(`Delete the intention ${key(x)}?`)) return;
          err.textContent = '';
          try {
            await api('DELETE', `/v1/connect/intentions/exact${q({ source: sideName(x.SourceNS, x.SourceName), destination: sideName(x.DestinationNS, x.DestinationName), mesh })}`);
          } catch (e) { err.textContent = e.message; }
        });
        const edit = h('button', { type: 'button', 'aria-label': `Edit ${key(x)}` }, 'Edit');
        edit.addEventListener('click', () => {
          form.querySelector('#ixn-source').value = sideName(x.SourceNS, x.SourceName);
          form.querySelector('#ixn-destination').value = sideName(x.DestinationNS, x.DestinationName);
          form.querySelector('#ixn-description').value = x.Description || '';
          action.value = x.Action || 'l7';
          perms.hidden = action.value !== 'l7';
          fill(perms.querySelector('.perm-rows'), (x.Permissions || []).map(permRow));
          form.querySelector('#ixn-source').focus();
        });
        return h('tr', { dataset: { intention: key(x), shadowed: shadowed ? 'yes' : 'no' }, class: shadowed ? 'shadowed' : '' },
          h('td', { class: 'num' }, String(list.indexOf(x) + 1)),
          h('td', {}, h('code', {}, sideName(x.SourceNS, x.SourceName))),
          h('td', {}, h('code', {}, sideName(x.DestinationNS, x.DestinationName))),
          h('td', {}, actionLabel(x)),
          h('td', { class: 'num' }, String(x.Precedence ?? '')),
          h('td', { class: 'notes' }, x.Description ? h('div', {}, x.Description) : null,
            fds.map((fd) => h('div', { class: `finding ${/shadow/i.test(fd.Kind) ? 'shadow' : ''}` },
              h('strong', {}, /shadow/i.test(fd.Kind) ? 'Shadowed' : fd.Kind), ': ',
              (fd.ByRules && fd.ByRules.length) ? ['by ', fd.ByRules.map((b, i) => [i ? ', ' : '', h('code', {}, b)]), '. '] : null,
              h('span', { class: 'muted' }, fd.Message)))),
          h('td', { class: 'row-actions' }, edit, ' ', del, err));
      }))));
  }
  filter.addEventListener('input', render);

  // The mesh: every call of this page takes ?mesh=; a change re-routes.
  const meshSelect = h('select', { id: 'ixn-mesh' }, h('option', { value: mesh, selected: true }, mesh));
  meshSelect.addEventListener('change', () => {
    location.hash = meshSelect.value === 'default' ? '#/intentions' : `#/intentions?mesh=${meshSelect.value}`;
  });
  scope.add(watch('/v1/meshes', (data) => {
    const names = (data || []).map((m) => m.Name);
    if (!names.includes(mesh)) names.unshift(mesh);
    fill(meshSelect, names.map((n) => h('option', { value: n, selected: n === mesh }, n)));
  }, () => {}));

  main.append(h('h1', {}, 'Intentions'), status,
    h('div', { class: 'field mesh-pick' }, h('label', { for: 'ixn-mesh' }, 'Mesh'), meshSelect),
    h('p', { class: 'muted' }, 'Intentions say which services may call which, in the chosen mesh. A call is decided by the most precise intention that matches it; ',
      h('code', {}, '*'), ' stands for any service.'),
    h('div', { class: 'cols' }, form, checkForm), datalist,
    h('div', { class: 'field filter' }, h('label', { for: 'ixn-filter' }, 'Filter'), filter),
    table);

  const err = (e) => fill(status, h('p', { class: 'error', role: 'alert' }, `${e.message} (retrying)`));
  scope.add(watch(`/v1/connect/intentions${q({ mesh })}`, (data) => { fill(status); list = data || []; render(); runCheck(); }, err));
  scope.add(watch(`/v1/connect/intentions/analysis${q({ mesh })}`, (data) => { findings = (data && data.Findings) || []; render(); }, err));
  scope.add(watch('/v1/catalog/services', (data) => {
    fill(datalist, h('option', { value: '*' }), Object.keys(data || {}).sort().map((n) => h('option', { value: n })));
  }, () => {}));
}
