// Tokens (admin only): the list (live), create (the SecretID shown once,
// with a copy button), revoke. Other kinds get a note: the server would
// refuse them anyway (acl:read / acl:write).
import { api, watch, session } from './api.js';
import { h, fill } from './dom.js';
import { clearErrors, showError, field } from './forms.js';

const KINDS = ['read-only', 'service', 'agent', 'operator', 'admin'];

function expiry(t) {
  if (!t.ExpirationTime) return h('span', { class: 'muted' }, 'never');
  const left = Date.parse(t.ExpirationTime) - Date.now();
  return h('span', { title: t.ExpirationTime },
    left <= 0 ? 'expired' : t.ExpirationTime.replace('T', ' ').replace(/\.\d+Z$/, 'Z'));
}

export function tokensPage(scope, main) {
  main.append(h('h1', {}, 'Tokens'));
  if (session.dev) {
    main.append(h('p', { class: 'note-box' }, 'This server runs in dev mode: there are no tokens.'));
    return;
  }
  const mine = session.self || {};
  if (mine.Kind !== 'admin') {
    main.append(h('p', { class: 'note-box', id: 'tokens-note' },
      `Tokens are managed with an admin token; this session's token is of kind ${mine.Kind || 'unknown'}.`));
    return;
  }
  const status = h('div', { class: 'status' });
  const table = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));

  // ---- create ----
  const kind = h('select', { id: 'tok-kind' }, KINDS.map((k) => h('option', { value: k }, k)));
  const service = h('input', { id: 'tok-service', placeholder: 'web' });
  const node = h('input', { id: 'tok-node', placeholder: 'node-a' });
  const serviceField = field('tok-service', 'Service', service);
  const nodeField = field('tok-node', 'Node', node);
  const description = h('input', { id: 'tok-description' });
  const ttl = h('input', { id: 'tok-ttl', placeholder: '24h (empty: never)', size: 14 });
  const submit = h('button', { type: 'submit', id: 'tok-create' }, 'Create token');
  const secretBox = h('div', { id: 'tok-secret', 'aria-live': 'polite' });
  const scopeFields = () => { serviceField.hidden = kind.value !== 'service'; nodeField.hidden = kind.value !== 'agent'; };
  kind.addEventListener('change', scopeFields);
  scopeFields();
  const form = h('form', { id: 'tok-form', class: 'card' },
    h('h2', {}, 'Create a token'),
    h('div', { class: 'row' }, field('tok-kind', 'Kind', kind), serviceField, nodeField,
      h('div', { class: 'field grow' }, h('label', { for: 'tok-description' }, 'Description'), description),
      field('tok-ttl', 'Expires after (TTL)', ttl)),
    h('div', { class: 'actions' }, submit), secretBox);
  const inputFor = (f) => {
    if (/^Kind/.test(f)) return kind;
    if (/^(ServiceName|ServiceIdentities)/.test(f)) return service;
    if (/^(NodeName|NodeIdentities)/.test(f)) return node;
    if (/^Description/.test(f)) return description;
    if (/^Expiration/.test(f)) return ttl;
    return null;
  };
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    fill(secretBox);
    const body = { Kind: kind.value, Description: description.value };
    if (kind.value === 'service') body.ServiceName = service.value.trim();
    if (kind.value === 'agent') body.NodeName = node.value.trim();
    if (ttl.value.trim()) body.ExpirationTTL = ttl.value.trim();
    try {
      const t = (await api('PUT', '/v1/acl/token', body)).data;
      showSecret(t);
    } catch (e) {
      showError(form, e, inputFor, submit);
    }
  });

  function showSecret(t) {
    const secret = h('input', { id: 'tok-secret-value', readonly: true, value: t.SecretID, size: 60, spellcheck: 'false', 'aria-label': 'SecretID of the new token' });
    const copied = h('span', { class: 'muted', 'aria-live': 'polite' });
    const copy = h('button', { type: 'button', id: 'tok-copy' }, 'Copy');
    copy.addEventListener('click', async () => {
      secret.select();
      try {
        await navigator.clipboard.writeText(t.SecretID);
        copied.textContent = 'Copied.';
      } catch {
        copied.textContent = 'Selected: press Ctrl+C to copy.';
      }
    });
    const done = h('button', { type: 'button', class: 'link' }, 'Done');
    done.addEventListener('click', () => { fill(secretBox); kind.focus(); });
    fill(secretBox, h('div', { class: 'secret card' },
      h('p', { class: 'ok' }, `Created token ${t.AccessorID} (${t.Kind}${t.ServiceName ? `, service ${t.ServiceName}` : ''}${t.NodeName ? `, node ${t.NodeName}` : ''}).`),
      h('p', { class: 'warning', role: 'alert' }, 'Copy its SecretID now: it will not be shown again (the server does not keep it).'),
      h('div', { class: 'row' }, secret, copy, done), copied));
    secret.focus();
    secret.select();
  }

  // ---- list ----
  function render(list) {
    fill(table, h('table', { class: 'grid', id: 'tokens' },
      h('caption', {}, `${list.length} token${list.length === 1 ? '' : 's'}`),
      h('thead', {}, h('tr', {}, ['Accessor', 'Kind', 'Scope', 'Description', 'Expires', ''].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, list.map((t) => {
        const err = h('span', { class: 'row-error', role: 'alert' });
        const self = t.AccessorID === mine.AccessorID;
        let revoke = h('span', { class: 'muted small' }, 'this session');
        if (!self) {
          revoke = h('button', { type: 'button', class: 'danger', 'aria-label': `Revoke ${t.AccessorID}` }, 'Revoke');
          revoke.addEventListener('click', async () => {
            if (!confirm(`Revoke the token ${t.AccessorID} (${t.Kind}${t.Description ? `: ${t.Description}` : ''})? Whoever holds it loses access at once.`)) return;
            err.textContent = '';
            try { await api('DELETE', `/v1/acl/token/${encodeURIComponent(t.AccessorID)}`); } catch (e) { err.textContent = e.message; }
          });
        }
        return h('tr', { dataset: { accessor: t.AccessorID, kind: t.Kind } },
          h('td', {}, h('code', {}, t.AccessorID)),
          h('td', {}, h('span', { class: 'badge' }, t.Kind)),
          h('td', {}, t.ServiceName ? `service ${t.ServiceName}` : t.NodeName ? `node ${t.NodeName}` : h('span', { class: 'muted' }, 'any')),
          h('td', {}, t.Description || ''),
          h('td', {}, expiry(t)),
          h('td', { class: 'row-actions' }, revoke, err));
      }))));
  }
  main.append(h('p', { class: 'muted' }, 'Weft tokens have a kind instead of policies. A token\'s SecretID is shown once, when it is created.'),
    form, h('h2', {}, 'Tokens'), status, table);
  scope.add(watch('/v1/acl/tokens', (data) => { fill(status); render(data || []); },
    (e) => fill(status, h('p', { class: 'error', role: 'alert' }, `${e.message} (retrying)`))));
}
