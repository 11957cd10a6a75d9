// The UI's entry point: session (login, dev mode), hash routing, and the
// page scope that stops a page's long-poll loops when the page changes.
import { api, session, setToken } from './api.js';
import { h, fill } from './dom.js';
import { loginPage } from './login.js';
import { servicesPage, servicePage } from './services.js';
import { intentionsPage } from './intentions.js';
import { meshesPage } from './meshes.js';
import { tokensPage } from './tokens.js';
import { configPage, configEntryPage } from './config.js';
import { topologyPage } from './topology.js';

const routes = [
  [/^#\/services$/, 'services', () => servicesPage],
  [/^#\/services\/(.+)$/, 'services', (m) => (scope, main) => servicePage(scope, main, decodeURIComponent(m[1]))],
  [/^#\/intentions(?:\?mesh=([a-z0-9-]+))?$/, 'intentions', (m) => (scope, main) => intentionsPage(scope, main, m[1] || 'default')],
  [/^#\/meshes$/, 'meshes', () => meshesPage],
  [/^#\/tokens$/, 'tokens', () => tokensPage],
  [/^#\/topology(?:\?mesh=([a-z0-9-]+))?$/, 'topology', (m) => (scope, main) => topologyPage(scope, main, m[1] || 'default')],
  [/^#\/config(?:\?(.*))?$/, 'config', (m) => (scope, main) => {
    const p = new URLSearchParams(m[1] || '');
    configPage(scope, main, p.get('kind') || '', p.get('mesh') || 'default');
  }],
  [/^#\/config\/([a-z-]+)\/([^?]+)(?:\?mesh=([a-z0-9-]+))?$/, 'config', (m) => (scope, main) =>
    configEntryPage(scope, main, m[1], decodeURIComponent(m[2]), m[3] || 'default')],
  [/^#\/login$/, '', () => loginPage],
];

// What a page gets: watch() loops and cleanups that end with the page.
class Scope {
  constructor() { this.stops = []; this.closed = false; }
  add(stop) { if (this.closed) stop(); else this.stops.push(stop); }
  close() { this.closed = true; this.stops.splice(0).forEach((f) => f()); }
}

let current = null;

function renderSession() {
  const el = document.getElementById('session');
  if (session.dev) {
    fill(el, h('span', { class: 'mode dev' }, 'dev mode: no authentication'));
  } else if (session.self) {
    fill(el,
      h('span', { class: 'who' }, `${session.self.Kind || 'token'} · `,
        h('code', { title: 'token accessor' }, session.self.AccessorID || '')),
      h('button', { type: 'button', id: 'logout', onclick: logout }, 'Log out'));
  } else {
    fill(el, h('a', { href: '#/login' }, 'Log in'));
  }
}

function logout() {
  setToken('', null);
  renderSession();
  location.hash = '#/login';
}

export function loggedIn(self) {
  session.self = self;
  renderSession();
}

export function route() {
  const main = document.getElementById('main');
  if (current) current.close();
  current = new Scope();
  let hash = location.hash || '#/services';
  if (!session.dev && !session.self && hash !== '#/login') {
    hash = '#/login';
    history.replaceState(null, '', hash);
  }
  let page = null, name = '';
  for (const [re, n, make] of routes) {
    const m = hash.match(re);
    if (m) { page = make(m); name = n; break; }
  }
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.dataset.page === name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  main.replaceChildren();
  if (!page) {
    main.append(h('h1', {}, 'Not found'), h('p', {}, 'No page at ', h('code', {}, hash), '.'));
    return;
  }
  page(current, main);
  // Keyboard and screen-reader users land on the new page's heading.
  const h1 = main.querySelector('h1');
  if (h1) { h1.tabIndex = -1; h1.focus({ preventScroll: true }); }
}

// Dev mode (/v1/acl/token/self answers 401 "ACL support disabled"), a
// stored token still valid, or the login page.
async function start() {
  try {
    const r = await api('GET', '/v1/acl/token/self');
    session.self = r.data;
  } catch (e) {
    if (e.status === 401 && /ACL support disabled/.test(e.message)) session.dev = true;
    else if (session.token) setToken('', null);
  }
  renderSession();
  // The skip link focuses the page without touching the hash (the router's).
  document.querySelector('.skip').addEventListener('click', (ev) => {
    ev.preventDefault();
    document.getElementById('main').focus();
  });
  window.addEventListener('hashchange', route);
  route();
}

start();
