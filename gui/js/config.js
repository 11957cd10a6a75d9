// Config entries: listed by kind (live, one blocking loop on the chosen
// kind), an entry viewed (live), edited or created as JSON or YAML (a switch,
// the choice kept in sessionStorage) and written with PUT /v1/config (YAML
// with Content-Type: application/yaml; read with Accept: application/yaml).
// The server's 400s name a field path ("Routes[0].Match.HTTP.PathPrefix")
// and its line in the body: in JSON the editor marks the line of the text
// that holds the path, in YAML the line the server gives; the message names
// the line.
import { api, watch, q } from './api.js';
import { h, fill } from './dom.js';

export const KINDS = ['service-defaults', 'proxy-defaults', 'service-router', 'service-splitter',
  'service-resolver', 'service-intentions', 'mesh'];

const TEMPLATES = {
  'service-defaults': { Kind: 'service-defaults', Name: 'web', Protocol: 'http' },
  'proxy-defaults': { Kind: 'proxy-defaults', Name: 'global', Config: {} },
  'service-router': { Kind: 'service-router', Name: 'web', Routes: [{ Match: { HTTP: { PathPrefix: '/api/' } }, Destination: { Service: 'api' } }] },
  'service-splitter': { Kind: 'service-splitter', Name: 'web', Splits: [{ Weight: 100, Service: 'web' }] },
  'service-resolver': { Kind: 'service-resolver', Name: 'web', ConnectTimeout: '5s' },
  'service-intentions': { Kind: 'service-intentions', Name: 'api', Sources: [{ Name: 'web', Action: 'allow' }] },
  mesh: { Kind: 'mesh', Name: 'mesh' },
};

// The same templates as YAML, as the server writes entries.
const TEMPLATES_YAML = {
  'service-defaults': 'Kind: service-defaults\nName: web\nProtocol: http\n',
  'proxy-defaults': 'Kind: proxy-defaults\nName: global\nConfig: {}\n',
  'service-router': 'Kind: service-router\nName: web\nRoutes:\n- Match:\n    HTTP:\n      PathPrefix: /api/\n  Destination:\n    Service: api\n',
  'service-splitter': 'Kind: service-splitter\nName: web\nSplits:\n- Weight: 100\n  Service: web\n',
  'service-resolver': 'Kind: service-resolver\nName: web\nConnectTimeout: 5s\n',
  'service-intentions': 'Kind: service-intentions\nName: api\nSources:\n- Name: web\n  Action: allow\n',
  mesh: 'Kind: mesh\nName: mesh\n',
};

const YAML = 'application/yaml';
const FORMAT_KEY = 'weft.configFormat';
export const configFormat = () => (sessionStorage.getItem(FORMAT_KEY) === 'yaml' ? 'yaml' : 'json');

// JSON | YAML radio buttons; onChange(format) after the choice is stored.
// Returns {el, setDisabled}.
function formatSwitch(onChange) {
  const now = configFormat();
  const radios = ['json', 'yaml'].map((f) => h('input', {
    type: 'radio', name: 'cfg-format', id: `cfg-format-${f}`, value: f, checked: f === now,
    onchange: () => { sessionStorage.setItem(FORMAT_KEY, f); onChange(f); },
  }));
  const el = h('fieldset', { class: 'format-switch', id: 'cfg-format' }, h('legend', {}, 'Format'),
    radios.map((r) => h('label', { for: r.id }, r, ` ${r.value.toUpperCase()}`)));
  return {
    el,
    setDisabled(off) {
      el.disabled = off;
      el.title = off ? 'Save or cancel the edit to switch formats' : '';
    },
  };
}

// A top-level "Key: value" of a YAML entry as the server writes it.
function yamlTop(text, key) {
  const m = text.match(new RegExp(`^${key}:[ \\t]*(.*?)[ \\t]*$`, 'mi'));
  if (!m) return '';
  const v = m[1];
  return /^(["']).*\1$/.test(v) ? v.slice(1, -1) : v;
}
// The server's fields a client does not send back.
const stripIndexes = (yaml) => yaml.replace(/^(CreateIndex|ModifyIndex):.*\n/gm, '');

const enc = encodeURIComponent;
const meshQ = (mesh) => (mesh === 'default' ? '' : `mesh=${mesh}`);
export const configHref = (mesh, kind, name) => {
  const mq = meshQ(mesh);
  if (name !== undefined) return `#/config/${enc(kind)}/${enc(name)}${mq ? `?${mq}` : ''}`;
  const p = new URLSearchParams();
  if (kind && kind !== KINDS[0]) p.set('kind', kind);
  if (mq) p.set('mesh', mesh);
  const s = p.toString();
  return `#/config${s ? `?${s}` : ''}`;
};

// ---- field path -> line of the JSON text ----

// "Routes[0].Match.HTTP.PathPrefix" -> ['routes', 0, 'match', 'http', 'pathprefix']
function splitPath(field) {
  const out = [];
  for (const part of field.split('.')) {
    const m = part.match(/^([^[]*)((?:\[\d+\])*)$/);
    if (!m) return null;
    if (m[1]) out.push(m[1].toLowerCase().replace(/_/g, ''));
    for (const i of m[2].matchAll(/\[(\d+)\]/g)) out.push(Number(i[1]));
  }
  return out;
}

// The 1-based line of each key and array element of the JSON text, keyed by
// its path (keys lowercased, underscores dropped, as the server accepts
// either casing). Null when the text does not parse.
export function jsonLines(text) {
  const lines = new Map();
  let i = 0, line = 1;
  const ws = () => {
    while (i < text.length && /\s/.test(text[i])) { if (text[i] === '\n') line++; i++; }
  };
  const str = () => {
    let s = '';
    i++;
    while (i < text.length && text[i] !== '"') {
      if (text[i] === '\\') { s += text[i + 1]; i += 2; } else { if (text[i] === '\n') return null; s += text[i++]; }
    }
    if (i >= text.length) return null;
    i++;
    return s;
  };
  const value = (path) => {
    ws();
    const c = text[i];
    if (c === '{') {
      i++; ws();
      if (text[i] === '}') { i++; return true; }
      for (;;) {
        ws();
        if (text[i] !== '"') return false;
        const kline = line;
        const k = str();
        if (k === null) return false;
        const p = [...path, k.toLowerCase().replace(/_/g, '')];
        lines.set(JSON.stringify(p), kline);
        ws();
        if (text[i++] !== ':') return false;
        if (!value(p)) return false;
        ws();
        if (text[i] === ',') { i++; continue; }
        if (text[i] === '}') { i++; return true; }
        return false;
      }
    }
    if (c === '[') {
      i++; ws();
      if (text[i] === ']') { i++; return true; }
      for (let n = 0; ; n++) {
        ws();
        const p = [...path, n];
        lines.set(JSON.stringify(p), line);
        if (!value(p)) return false;
        ws();
        if (text[i] === ',') { i++; continue; }
        if (text[i] === ']') { i++; return true; }
        return false;
      }
    }
    if (c === '"') return str() !== null;
    const m = text.slice(i).match(/^(-?\d+(\.\d+)?([eE][+-]?\d+)?|true|false|null)/);
    if (!m) return false;
    i += m[0].length;
    return true;
  };
  if (!value([])) return null;
  ws();
  return i === text.length ? lines : null;
}

// The line holding field (or its nearest enclosing key that is there), or 0.
export function fieldLine(text, field) {
  const path = splitPath(field);
  const lines = jsonLines(text);
  if (!path || !lines) return 0;
  for (let n = path.length; n > 0; n--) {
    const l = lines.get(JSON.stringify(path.slice(0, n)));
    if (l) return l;
  }
  return 0;
}

// ---- the editor: a textarea with a line-number gutter ----

// format 'json': onSave gets the parsed object; 'yaml': the text.
function editor(text, { onSave, onCancel, saveLabel, format = 'json' }) {
  const area = h('textarea', { id: `cfg-${format}`, class: 'json', spellcheck: 'false', wrap: 'off', rows: 18, 'aria-label': `Config entry (${format.toUpperCase()})` });
  area.value = text;
  const gutter = h('div', { class: 'gutter', 'aria-hidden': 'true' });
  const msg = h('div', { id: 'cfg-error', 'aria-live': 'polite' });
  let bad = 0;
  const renderGutter = () => {
    const n = area.value.split('\n').length;
    fill(gutter, Array.from({ length: n }, (_, k) => h('div', { class: k + 1 === bad ? 'bad' : '', dataset: { line: String(k + 1) } }, String(k + 1))));
    gutter.scrollTop = area.scrollTop;
  };
  area.addEventListener('input', () => { bad = 0; renderGutter(); });
  area.addEventListener('scroll', () => { gutter.scrollTop = area.scrollTop; });
  renderGutter();
  const save = h('button', { type: 'submit', id: 'cfg-save' }, saveLabel || 'Save');
  const cancel = h('button', { type: 'button', class: 'link' }, 'Cancel');
  cancel.addEventListener('click', onCancel);
  const form = h('form', { id: 'cfg-form', class: 'card' },
    msg, h('div', { class: 'editor' }, gutter, area),
    h('div', { class: 'actions' }, save, ' ', cancel));

  function showError(e) {
    const nlines = area.value.split('\n').length;
    bad = format === 'json' && e.field ? fieldLine(area.value, e.field) : 0;
    // YAML (or JSON the path does not lead into): the server's line.
    if (!bad && e.line > 0 && e.line <= nlines) bad = e.line;
    renderGutter();
    area.setAttribute('aria-invalid', 'true');
    area.setAttribute('aria-describedby', 'cfg-error');
    fill(msg, h('p', { class: 'field-error', role: 'alert' },
      bad ? h('strong', { class: 'line-ref' }, `Line ${bad}: `) : null, e.message));
    if (bad) {
      // Selects the line, and scrolls it into view.
      const starts = [0];
      for (let k = 0; k < area.value.length; k++) if (area.value[k] === '\n') starts.push(k + 1);
      const from = starts[bad - 1], to = bad < starts.length ? starts[bad] - 1 : area.value.length;
      area.focus();
      area.setSelectionRange(from, to);
      const lh = parseFloat(getComputedStyle(area).lineHeight) || 18;
      area.scrollTop = Math.max(0, (bad - 4) * lh);
      gutter.scrollTop = area.scrollTop;
    } else {
      area.focus();
    }
  }

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    fill(msg);
    area.removeAttribute('aria-invalid');
    bad = 0;
    renderGutter();
    let body = area.value;
    if (format === 'json') {
      try {
        body = JSON.parse(area.value);
      } catch (e) {
        showError({ message: `Not JSON: ${e.message}`, field: '' });
        return;
      }
    }
    try {
      await onSave(body);
    } catch (e) {
      showError(e);
    }
  });
  return { form, area };
}

function meshPicker(scope, mesh, href) {
  const sel = h('select', { id: 'cfg-mesh' }, h('option', { value: mesh, selected: true }, mesh));
  sel.addEventListener('change', () => { location.hash = href(sel.value); });
  scope.add(watch('/v1/meshes', (data) => {
    const names = (data || []).map((m) => m.Name);
    if (!names.includes(mesh)) names.unshift(mesh);
    fill(sel, names.map((n) => h('option', { value: n, selected: n === mesh }, n)));
  }, () => {}));
  return h('div', { class: 'field mesh-pick' }, h('label', { for: 'cfg-mesh' }, 'Mesh'), sel);
}

// What a row says about an entry besides its name.
function summary(e) {
  const bits = [];
  if (e.Protocol) bits.push(`protocol ${e.Protocol}`);
  if (e.Routes) bits.push(`${e.Routes.length} route${e.Routes.length === 1 ? '' : 's'}`);
  if (e.Splits) bits.push(e.Splits.map((s) => `${s.Weight}% ${s.Service || e.Name}${s.ServiceSubset ? `/${s.ServiceSubset}` : ''}`).join(', '));
  if (e.Sources) bits.push(`${e.Sources.length} source${e.Sources.length === 1 ? '' : 's'}`);
  if (e.Redirect) bits.push(`redirect to ${e.Redirect.Service || e.Name}`);
  if (e.ConnectTimeout) bits.push(`connect timeout ${e.ConnectTimeout}`);
  return bits.join(' · ');
}

const SERVER_FIELDS = ['CreateIndex', 'ModifyIndex'];
const editable = (e) => {
  const c = { ...e };
  for (const f of SERVER_FIELDS) delete c[f];
  return JSON.stringify(c, null, 2);
};

export function configPage(scope, main, kind, mesh) {
  if (!KINDS.includes(kind)) kind = KINDS[0];
  const status = h('div', { class: 'status' });
  const list = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  const counts = new Map();
  const tabs = h('nav', { class: 'tabs', 'aria-label': 'Kinds' });
  const renderTabs = () => fill(tabs, KINDS.map((k) => h('a', {
    href: configHref(mesh, k), 'aria-current': k === kind ? 'page' : false, dataset: { kind: k },
  }, k, counts.has(k) ? h('span', { class: 'count' }, String(counts.get(k))) : null)));
  renderTabs();
  // The other kinds' counts, once (only the chosen kind holds a loop: a
  // browser has six connections to the server).
  for (const k of KINDS) {
    if (k === kind) continue;
    api('GET', `/v1/config/${k}${q({ mesh: mesh === 'default' ? '' : mesh })}`).then((r) => {
      if (scope.closed) return;
      counts.set(k, (r.data || []).length);
      renderTabs();
    }, () => {});
  }
  const slot = h('div');
  const newBtn = h('button', { type: 'button', id: 'cfg-new' }, `New ${kind} entry`);
  const fmt = formatSwitch(() => {});
  newBtn.addEventListener('click', () => {
    const format = configFormat();
    const ed = editor(format === 'yaml' ? TEMPLATES_YAML[kind] : JSON.stringify(TEMPLATES[kind], null, 2), {
      saveLabel: 'Create',
      format,
      onCancel: () => { fill(slot); newBtn.hidden = false; fmt.setDisabled(false); newBtn.focus(); },
      onSave: async (body) => {
        const path = `/v1/config${q({ mesh: mesh === 'default' ? '' : mesh })}`;
        if (format === 'yaml') {
          await api('PUT', path, body, { contentType: YAML });
          location.hash = configHref(mesh, yamlTop(body, 'Kind') || kind, yamlTop(body, 'Name'));
          return;
        }
        await api('PUT', path, body);
        location.hash = configHref(mesh, body.Kind || kind, body.Name || '');
      },
    });
    newBtn.hidden = true;
    fmt.setDisabled(true);
    fill(slot, h('h2', {}, `New ${kind} entry`), ed.form);
    ed.area.focus();
  });
  main.append(h('h1', {}, 'Config entries'),
    meshPicker(scope, mesh, (m) => configHref(m, kind)),
    h('p', { class: 'muted' }, 'Consul\'s config entries: service defaults, routing (router, splitter, resolver), intentions and mesh settings, per mesh.'),
    tabs, status, list, h('div', { class: 'actions' }, newBtn, fmt.el), slot);
  scope.add(watch(`/v1/config/${kind}${q({ mesh: mesh === 'default' ? '' : mesh })}`, (data) => {
    fill(status);
    data = data || [];
    counts.set(kind, data.length);
    renderTabs();
    if (data.length === 0) { fill(list, h('p', { class: 'muted' }, `No ${kind} entries in the mesh ${mesh}.`)); return; }
    fill(list, h('table', { class: 'grid', id: 'config-entries' },
      h('thead', {}, h('tr', {}, ['Name', 'Summary', 'Modified at index'].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, data.map((e) => h('tr', { dataset: { entry: e.Name } },
        h('th', { scope: 'row' }, h('a', { href: configHref(mesh, kind, e.Name) }, e.Name)),
        h('td', {}, summary(e)),
        h('td', { class: 'num' }, String(e.ModifyIndex ?? '')))))));
  }, (e) => fill(status, h('p', { class: 'error', role: 'alert' }, `${e.message} (retrying)`))));
}

export function configEntryPage(scope, main, kind, name, mesh) {
  const status = h('div', { class: 'status' });
  const view = h('pre', { id: 'cfg-view', class: 'json-view', tabindex: '0' }, 'Loading…');
  const slot = h('div');
  const note = h('div', { 'aria-live': 'polite' });
  let current = null, editing = null, shown = 0;
  const edit = h('button', { type: 'button', id: 'cfg-edit' }, 'Edit');
  const del = h('button', { type: 'button', class: 'danger', id: 'cfg-delete' }, 'Delete');
  const delErr = h('span', { class: 'row-error', role: 'alert' });
  const mq = q({ mesh: mesh === 'default' ? '' : mesh });
  const entryPath = `/v1/config/${enc(kind)}/${enc(name)}${mq}`;
  const getYaml = async () => (await api('GET', entryPath, undefined, { accept: YAML })).data;
  // Shows current in the chosen format (YAML as the server writes it); a
  // later call wins over an earlier one still waiting for its YAML.
  const render = async () => {
    if (!current) return;
    const n = ++shown;
    if (configFormat() === 'json') { view.textContent = JSON.stringify(current, null, 2); return; }
    try {
      const text = await getYaml();
      if (n === shown && !scope.closed) view.textContent = text;
    } catch (e) {
      if (n === shown) fill(status, h('p', { class: 'error', role: 'alert' }, e.message));
    }
  };
  const fmt = formatSwitch(render);
  edit.addEventListener('click', async () => {
    if (!current) return;
    const format = configFormat();
    let text;
    try {
      text = format === 'yaml' ? stripIndexes(await getYaml()) : editable(current);
    } catch (e) {
      fill(status, h('p', { class: 'error', role: 'alert' }, e.message));
      return;
    }
    editing = current;
    const ed = editor(text, {
      format,
      onCancel: () => { editing = null; fill(slot); fill(note); view.hidden = false; fmt.setDisabled(false); edit.focus(); },
      onSave: async (body) => {
        let k = body.Kind, n = body.Name;
        if (format === 'yaml') {
          await api('PUT', `/v1/config${mq}`, body, { contentType: YAML });
          k = yamlTop(body, 'Kind');
          n = yamlTop(body, 'Name');
        } else {
          await api('PUT', `/v1/config${mq}`, body);
        }
        editing = null;
        fill(slot);
        view.hidden = false;
        fmt.setDisabled(false);
        fill(note, h('p', { class: 'ok' }, 'Saved.'));
        if ((k && k !== kind) || (n && n !== name)) location.hash = configHref(mesh, k || kind, n || name);
      },
    });
    view.hidden = true;
    fmt.setDisabled(true);
    fill(slot, ed.form);
    ed.area.focus();
  });
  del.addEventListener('click', async () => {
    if (!confirm(`Delete the ${kind} entry ${name}?`)) return;
    delErr.textContent = '';
    try {
      await api('DELETE', entryPath);
      location.hash = configHref(mesh, kind);
    } catch (e) { delErr.textContent = e.message; }
  });
  main.append(h('p', { class: 'crumbs' }, h('a', { href: configHref(mesh, kind) }, `Config entries · ${kind}`)),
    h('h1', {}, `${kind} `, h('code', {}, name)), status, note,
    h('div', { class: 'actions' }, edit, ' ', del, delErr, fmt.el), view, slot);
  scope.add(watch(entryPath, (data) => {
    fill(status);
    current = data;
    render();
    if (editing && editing.ModifyIndex !== data.ModifyIndex) {
      fill(note, h('p', { class: 'warning' }, `Changed on the server (index ${data.ModifyIndex}) since you started editing: saving replaces that change.`));
    }
  }, (e) => fill(status, h('p', { class: 'error', role: 'alert' }, e.status === 404 ? `No ${kind} entry named ${name} in the mesh ${mesh}.` : `${e.message} (retrying)`))));
}
