// The login form: the token is checked with GET /v1/acl/token/self and kept
// in sessionStorage (gone with the tab), never in a URL.
import { api, session, setToken } from './api.js';
import { h } from './dom.js';
import { loggedIn } from './app.js';

export function loginPage(scope, main) {
  if (session.dev) {
    main.append(h('h1', {}, 'Log in'),
      h('p', {}, 'This server runs in dev mode: no authentication. ', h('a', { href: '#/services' }, 'Go to services'), '.'));
    return;
  }
  const input = h('input', {
    id: 'token', name: 'token', type: 'password', autocomplete: 'off', spellcheck: 'false',
    required: true, 'aria-describedby': 'token-error', size: 40,
  });
  const error = h('p', { id: 'token-error', class: 'field-error', role: 'alert' });
  const form = h('form', { class: 'card narrow', id: 'login-form' },
    h('label', { for: 'token' }, 'ACL token (SecretID)'),
    input, error,
    h('button', { type: 'submit' }, 'Log in'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    error.textContent = '';
    const token = input.value.trim();
    setToken(token, null);
    try {
      const r = await api('GET', '/v1/acl/token/self');
      setToken(token, r.data);
      loggedIn(r.data);
      location.hash = '#/services';
    } catch (e) {
      setToken('', null);
      input.setAttribute('aria-invalid', 'true');
      error.textContent = e.message;
      input.focus();
    }
  });
  main.append(h('h1', {}, 'Log in'),
    h('p', {}, 'Paste a token. It is kept in this tab\'s session storage only and sent with each API call.'),
    form);
  if (!session.self) setTimeout(() => input.focus(), 0);
}
