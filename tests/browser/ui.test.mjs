// Browser tests of weft-server's web UI: a real weft-server (tokens on, and
// one --dev) driven through Debian's chromium by playwright-core.
// Run by tests/browser/run.sh (make check); screenshots go to
// $WEFT_BUILDDIR/tests/browser/screenshots/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const BUILDDIR = process.env.WEFT_BUILDDIR || path.resolve(import.meta.dirname, '../../build');
const SERVER = path.join(BUILDDIR, 'server', 'weft-server');
const SHOTS = path.join(BUILDDIR, 'tests', 'browser', 'screenshots');
const CHROMIUM = process.env.WEFT_CHROMIUM || '/usr/bin/chromium';
const STEP = 20000;   // the longest any one UI step may take (ms), under load and ASan

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

// A weft-server on a free port with its own data directory.
async function startServer(dev) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-browser-'));
  const port = await freePort();
  const args = ['--data-dir', dir, '--http-addr', `127.0.0.1:${port}`, '--log-level', 'warn'];
  if (dev) args.push('--dev');
  const log = fs.openSync(path.join(dir, 'server.log'), 'w');
  const proc = spawn(SERVER, args, { stdio: ['ignore', log, log] });
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 10000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`weft-server exited: ${fs.readFileSync(path.join(dir, 'server.log'), 'utf8')}`);
    try {
      const r = await fetch(`${base}/ui/`);
      if (r.ok && (dev || fs.existsSync(path.join(dir, 'admin.token')))) break;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) throw new Error('weft-server did not start in 10 s');
    await new Promise((r) => setTimeout(r, 50));
  }
  const token = dev ? '' : fs.readFileSync(path.join(dir, 'admin.token'), 'utf8').trim();
  async function call(method, p, body) {
    const r = await fetch(base + p, {
      method, headers: token ? { 'X-Consul-Token': token } : {},
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    if (!r.ok) throw new Error(`${method} ${p}: ${r.status} ${text}`);
    return text ? JSON.parse(text) : null;
  }
  return {
    base, token, call, dir,
    // SIGTERM: the server must exit 0 and its log hold no sanitizer report.
    async stop() {
      const exited = proc.exitCode !== null ? Promise.resolve(proc.exitCode)
        : new Promise((resolve) => proc.once('exit', (code, sig) => resolve(code ?? sig)));
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 15000);
      const code = await exited;
      clearTimeout(timer);
      const logText = fs.readFileSync(path.join(dir, 'server.log'), 'utf8');
      fs.rmSync(dir, { recursive: true, force: true });
      if (code !== 0 || /Sanitizer|runtime error:/.test(logText)) {
        throw new Error(`weft-server exited ${code}; log:\n${logText.slice(-4000)}`);
      }
    },
  };
}

const register = (srv, node, service, status) => srv.call('PUT', '/v1/catalog/register', {
  Node: node, Address: '10.0.0.1',
  Service: { Service: service, Port: 8080 },
  Check: { CheckID: `${service}-alive`, Name: `${service} alive`, Status: status, ServiceID: service, Output: `HTTP GET /health: ${status}` },
});

let srv, browser;
const problems = [];   // console errors (CSP violations among them) and page errors

before(async () => {
  fs.mkdirSync(SHOTS, { recursive: true });
  srv = await startServer(false);
  await register(srv, 'node-a', 'web', 'passing');
  await register(srv, 'node-a', 'api', 'passing');
  await register(srv, 'node-b', 'db', 'passing');
  browser = await chromium.launch({
    executablePath: CHROMIUM, headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  if (browser) await browser.close();
  if (srv) await srv.stop();
});

async function newPage(colorScheme = 'light') {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 860 }, colorScheme });
  const page = await ctx.newPage();
  page.setDefaultTimeout(STEP);
  page.on('console', (m) => { if (m.type() === 'error' && !/status of 40[0139]/.test(m.text())) problems.push(m.text()); });
  page.on('pageerror', (e) => problems.push(String(e)));
  page.on('dialog', (d) => d.accept());
  return page;
}

// Logs in with the keyboard only: the field has the focus, Enter submits.
async function login(page, token) {
  await page.goto(`${srv.base}/`);
  await page.waitForURL(/\/ui\/#\/login$/);
  await page.getByLabel('ACL token').and(page.locator(':focus')).waitFor();
  await page.keyboard.type(token);
  await page.keyboard.press('Enter');
  await page.waitForURL(/#\/services$/);
}

const shot = (page, name) => page.screenshot({ path: path.join(SHOTS, `${name}.png`) });

test('the UI is served with its security headers, and / redirects there', async () => {
  const r = await fetch(`${srv.base}/`, { redirect: 'manual' });
  assert.equal(r.status, 302);
  assert.equal(r.headers.get('location'), '/ui/');
  const ui = await fetch(`${srv.base}/ui/js/app.js`);
  assert.equal(ui.status, 200);
  assert.match(ui.headers.get('content-type'), /^text\/javascript/);
  assert.match(ui.headers.get('content-security-policy'), /script-src 'self';/);
  const again = await fetch(`${srv.base}/ui/js/app.js`, { headers: { 'If-None-Match': ui.headers.get('etag') } });
  assert.equal(again.status, 304);
});

test('admin: log in, intentions, check, shadowing, errors next to fields, live health', async () => {
  const page = await newPage();
  // A wrong token: the API's message under the field.
  await page.goto(`${srv.base}/ui/`);
  await page.getByLabel('ACL token').fill('not-a-token');
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.locator('#token-error').filter({ hasText: /\S/ }).waitFor();
  const bad = await page.locator('#token-error').textContent();
  assert.match(bad, /token/i);
  assert.equal(await page.evaluate(() => sessionStorage.getItem('weft.token')), null);

  await login(page, srv.token);
  await page.locator('#session').getByText('admin').waitFor();
  assert.ok(!page.url().includes(srv.token), 'the token never appears in a URL');
  const row = page.locator('#services tr[data-service="web"]');
  await row.waitFor();
  assert.match(await row.textContent(), /1 passing/);
  await shot(page, 'services');

  // Create an allow and a deny intention through the form.
  await page.getByRole('link', { name: 'Intentions' }).click();
  await page.getByRole('heading', { name: 'Intentions', level: 1 }).waitFor();
  const form = page.locator('#ixn-form');
  async function save(source, destination, action) {
    await form.getByLabel('Source').fill(source);
    await form.getByLabel('Destination').fill(destination);
    await form.getByLabel('Action').selectOption(action);
    await form.getByRole('button', { name: 'Save intention' }).click();
    await page.locator(`#intentions tr[data-intention="${source} -> ${destination}"]`).waitFor();
  }
  await save('web', 'api', 'allow');
  await save('*', 'api', 'deny');
  const rows = await page.locator('#intentions tbody tr').evaluateAll((trs) => trs.map((t) => t.dataset.intention));
  assert.deepEqual(rows, ['web -> api', '* -> api'], 'listed in precedence order');

  // Can web call api? Allowed by web -> api; db -> api denied by * -> api.
  const check = page.locator('#check-form');
  await check.getByLabel('Source (A)').fill('web');
  await check.getByLabel('Destination (B)').fill('api');
  await check.getByRole('button', { name: 'Check' }).click();
  await page.locator('#check-verdict', { hasText: 'Allowed' }).waitFor();
  assert.match(await page.locator('#check-decided').textContent(), /web -> api/);
  assert.match(await page.locator('#check-reason').textContent(), /\S/);
  await shot(page, 'intentions');

  // Turning web -> api into a deny changes the answer without asking again.
  await save('web', 'api', 'deny');
  await page.locator('#check-verdict', { hasText: 'Denied' }).waitFor();
  assert.match(await page.locator('#check-decided').textContent(), /web -> api \(deny/);
  // Deleting it: now * -> api decides.
  await page.getByRole('button', { name: 'Delete web -> api' }).click();
  await page.locator('#check-decided', { hasText: '* -> api' }).waitFor();
  assert.equal(await page.locator('#check-verdict').textContent(), 'Denied');

  // An intention that can never decide is flagged with what shadows it.
  await srv.call('PUT', '/v1/connect/intentions/exact?source=*/*&destination=api', { Action: 'allow' });
  const shadowed = page.locator('#intentions tr[data-intention="*/* -> api"]');
  await shadowed.and(page.locator('[data-shadowed="yes"]')).waitFor();
  assert.match(await shadowed.textContent(), /Shadowed: by default\/\* -> default\/api/);
  await shot(page, 'intentions-shadowed');

  // The filter box.
  await page.getByLabel('Filter').fill('*/*');
  assert.equal(await page.locator('#intentions tbody tr').count(), 1);
  await page.getByLabel('Filter').fill('');

  // A 400 is shown next to the field it names: L7 permissions on a tcp
  // service (next to Action), then a path without '/' (next to the path).
  await form.getByLabel('Source').fill('web');
  await form.getByLabel('Destination').fill('db');
  await form.getByLabel('Action').selectOption('l7');
  await form.locator('.perm-row').getByLabel('Path', { exact: true }).fill('/health');
  await form.getByRole('button', { name: 'Save intention' }).click();
  const actionErr = form.locator('.field:has(#ixn-action) .field-error');
  await actionErr.waitFor();
  assert.match(await actionErr.textContent(), /^Sources\[0\]\.Permissions: service "db" has protocol "tcp"/);
  await srv.call('PUT', '/v1/config', { Kind: 'service-defaults', Name: 'db', Protocol: 'http' });
  await form.locator('.perm-row').getByLabel('Path', { exact: true }).fill('health');
  await form.getByRole('button', { name: 'Save intention' }).click();
  assert.equal(await actionErr.count(), 0, 'the old error is gone');
  const err = form.locator('.perm-row .field-error');
  await err.waitFor();
  assert.match(await err.textContent(), /^Permissions\[0\]\.HTTP\.PathExact: .*must start with '\/'/);
  await shot(page, 'intention-error');
  await form.locator('.perm-row').getByLabel('Path', { exact: true }).fill('/health');
  await form.locator('.perm-row').getByLabel('Methods').fill('GET HEAD');
  await form.getByRole('button', { name: 'Save intention' }).click();
  await page.locator('#intentions tr[data-intention="web -> db"]', { hasText: 'GET,HEAD' }).waitFor();
  // The check decides HTTP requests too: GET /health is allowed by the
  // permission, GET /admin by none of them (so denied).
  await check.getByLabel('Destination (B)').fill('db');
  await check.getByLabel('HTTP path (optional)').fill('/health');
  await check.getByRole('button', { name: 'Check' }).click();
  await page.locator('#check-verdict', { hasText: 'Allowed' }).waitFor();
  assert.match(await page.locator('#check-decided').textContent(), /web -> db \(L7, precedence 9, permission 0\)/);
  await check.getByLabel('HTTP path (optional)').fill('/admin');
  await check.getByRole('button', { name: 'Check' }).click();
  await page.locator('#check-verdict', { hasText: 'Denied' }).waitFor();
  assert.match(await page.locator('#check-reason').textContent(), /\S/);

  // A service's health turns critical while its page is open.
  await page.goto(`${srv.base}/ui/#/services/web`);
  const inst = page.locator('#instances tr[data-instance="web"]');
  await inst.and(page.locator('[data-health="passing"]')).waitFor();
  await page.evaluate(() => { window.weftNoReload = true; });
  await register(srv, 'node-a', 'web', 'critical');
  await inst.and(page.locator('[data-health="critical"]')).waitFor();
  assert.equal(await page.evaluate(() => window.weftNoReload), true, 'no reload');
  assert.match(await inst.textContent(), /HTTP GET \/health: critical/);
  // Maintenance mode (weft-agent's, or the server's for its node): the
  // check says so, with its reason.
  await srv.call('PUT', '/v1/catalog/register', {
    Node: 'node-a', Address: '10.0.0.1',
    Check: { CheckID: '_service_maintenance:web', Name: 'Service Maintenance Mode', Status: 'critical',
      ServiceID: 'web', Type: 'maintenance', Notes: 'swapping a disk' },
  });
  await page.locator('#instances li[data-check="_service_maintenance:web"]', { hasText: 'swapping a disk' }).waitFor();
  assert.match(await inst.textContent(), /Service Maintenance Mode/);
  await shot(page, 'service-maintenance');
  await srv.call('PUT', '/v1/catalog/deregister', { Node: 'node-a', CheckID: '_service_maintenance:web' });
  await page.locator('#instances li[data-check="_service_maintenance:web"]').waitFor({ state: 'detached' });
  // The intentions that concern web, by source (in evaluation order) and by destination.
  const out = await page.locator('#ixn-out li').evaluateAll((li) => li.map((x) => x.textContent));
  assert.deepEqual(out, ['L7 web → db', 'deny * → api', 'allow */* → api']);
  assert.match(await page.locator('#ixn-in').textContent(), /No intention names web as a destination/);
  await shot(page, 'service-critical');

  // The services list follows it too, and leaving the service page ends its
  // long-poll loops (their requests are aborted).
  const aborted = page.waitForEvent('requestfailed', (req) => req.url().includes('/v1/health/service/web?index='));
  await page.getByRole('link', { name: 'Services' }).first().click();
  await aborted;
  await page.locator('#services tr[data-service="web"][data-health="critical"]').waitFor();
  // Keyboard users land on the page's heading.
  assert.equal(await page.evaluate(() => document.activeElement.tagName), 'H1');

  // Another mesh: picked on the intentions page, where writes then go.
  await srv.call('PUT', '/v1/meshes/payments', {});
  await page.getByRole('link', { name: 'Intentions' }).click();
  await page.getByLabel('Mesh').selectOption('payments');
  await page.waitForURL(/#\/intentions\?mesh=payments$/);
  await page.getByText('No intentions: the mesh\'s default action decides every call.').waitFor();
  await save('web', 'db', 'deny');
  const inPayments = await srv.call('GET', '/v1/connect/intentions?mesh=payments');
  assert.deepEqual(inPayments.map((x) => [x.SourceName, x.DestinationName, x.Action]), [['web', 'db', 'deny']]);
  const inDefault = await srv.call('GET', '/v1/connect/intentions/exact?source=web&destination=db');
  assert.ok(inDefault.Permissions, 'the default mesh keeps its L7 intention');

  await page.getByRole('link', { name: 'Meshes & zones' }).click();
  await page.locator('#meshes tbody th', { hasText: 'payments' }).waitFor();
  assert.deepEqual(await page.locator('#meshes tbody th').allTextContents(), ['default', 'payments']);
  await page.locator('#zones tbody tr', { hasText: 'online' }).waitFor();
  await shot(page, 'meshes');

  await page.getByRole('button', { name: 'Log out' }).click();
  await page.waitForURL(/#\/login$/);
  assert.equal(await page.evaluate(() => sessionStorage.getItem('weft.token')), null);
  await page.context().close();
});

test('a read-only token sees, and gets the API\'s 403 when it tries to change', async () => {
  const ro = await srv.call('PUT', '/v1/acl/token', { Kind: 'read-only', Description: 'browser test' });
  const page = await newPage('dark');
  await login(page, ro.SecretID);
  await page.locator('#session').getByText('read-only').waitFor();
  await page.getByRole('link', { name: 'Intentions' }).click();
  await page.locator('#intentions tr[data-intention="* -> api"]').waitFor();
  const form = page.locator('#ixn-form');
  await form.getByLabel('Source').fill('db');
  await form.getByLabel('Destination').fill('web');
  await form.getByRole('button', { name: 'Save intention' }).click();
  const err = form.locator('.field-error');
  await err.waitFor();
  assert.match(await err.textContent(), /policy:write/);
  // The delete buttons get the same answer, in their row.
  await page.getByRole('button', { name: 'Delete * -> api' }).click();
  await page.locator('#intentions tr[data-intention="* -> api"] .row-error', { hasText: 'policy:write' }).waitFor();
  await shot(page, 'read-only-dark');
  await page.getByRole('link', { name: 'Tokens' }).click();
  assert.match(await page.locator('#tokens-note').textContent(), /admin token.*kind read-only/);
  assert.equal(await page.locator('#tok-form').count(), 0);
  // Config entries: seen, and the editor shows the 403 above it.
  await page.getByRole('link', { name: 'Config' }).click();
  await page.locator('#config-entries a', { hasText: 'db' }).click();
  await page.locator('#cfg-view', { hasText: '"Protocol": "http"' }).waitFor();
  await page.getByRole('button', { name: 'Edit' }).click();
  await page.getByRole('button', { name: 'Save' }).click();
  await page.locator('#cfg-error', { hasText: 'policy:write' }).waitFor();
  await shot(page, 'config-read-only-dark');
  // Meshes: the form is there, and the 403 comes back next to its button.
  await page.getByRole('link', { name: 'Meshes & zones' }).click();
  await page.getByRole('button', { name: 'Edit default' }).click();
  await page.locator('#mesh-form').getByRole('button', { name: 'Save mesh' }).click();
  await page.locator('#mesh-form .field-error', { hasText: 'policy:write' }).waitFor();
  await page.context().close();
});

test('--dev: no login, and the UI says so', async () => {
  const dev = await startServer(true);
  try {
    const page = await newPage();
    await page.goto(`${dev.base}/`);
    await page.getByText('dev mode: no authentication').waitFor();
    await page.locator('#services').or(page.getByText('No services')).first().waitFor();
    await page.context().close();
  } finally {
    await dev.stop();
  }
});

test('admin: a token created in the UI, its secret shown once, then revoked', async () => {
  const page = await newPage();
  await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: srv.base });
  await login(page, srv.token);
  await page.getByRole('link', { name: 'Tokens' }).click();
  await page.getByRole('heading', { name: 'Tokens', level: 1 }).waitFor();
  await page.locator('#tokens tr[data-kind="admin"]').waitFor();
  const form = page.locator('#tok-form');
  // A service token without its service: the API's 400 under the field.
  await form.getByLabel('Kind').selectOption('service');
  await form.getByLabel('Description').fill('made in the browser');
  await form.getByRole('button', { name: 'Create token' }).click();
  const svcErr = form.locator('.field:has(#tok-service) .field-error');
  await svcErr.waitFor();
  assert.match(await svcErr.textContent(), /^ServiceName: is required/);
  await form.getByLabel('Service').fill('web');
  await form.getByLabel('Expires after (TTL)').fill('1h');
  await form.getByRole('button', { name: 'Create token' }).click();
  const secretInput = page.getByLabel('SecretID of the new token');
  await secretInput.waitFor();
  assert.equal(await svcErr.count(), 0, 'the old error is gone');
  const secret = await secretInput.inputValue();
  assert.match(secret, /^weft1\./);
  assert.match(await page.locator('#tok-secret').textContent(), /will not be shown again/);
  await page.getByRole('button', { name: 'Copy' }).click();
  await page.locator('#tok-secret').getByText('Copied.').waitFor();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), secret);
  const created = page.locator('#tokens tr[data-kind="service"]', { hasText: 'made in the browser' });
  await created.waitFor();
  assert.match(await created.textContent(), /service web/);
  const accessor = await created.getAttribute('data-accessor');
  await shot(page, 'tokens');
  // The secret works until it is revoked; then it fails to log in.
  const self = await fetch(`${srv.base}/v1/acl/token/self`, { headers: { 'X-Consul-Token': secret } });
  assert.equal(self.status, 200);
  await page.getByRole('button', { name: `Revoke ${accessor}` }).click();
  await page.locator(`#tokens tr[data-accessor="${accessor}"]`).waitFor({ state: 'detached' });
  await page.getByRole('button', { name: 'Log out' }).click();
  await page.getByLabel('ACL token').fill(secret);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.locator('#token-error').filter({ hasText: /\S/ }).waitFor();
  assert.match(await page.locator('#token-error').textContent(), /token/i);
  assert.match(page.url(), /#\/login$/);
  await page.context().close();
});

test('config entries: a bad field is named, on its line; create, view and live updates', async () => {
  const page = await newPage();
  await login(page, srv.token);
  await page.getByRole('link', { name: 'Config' }).click();
  await page.locator('#config-entries tr[data-entry="db"]', { hasText: 'protocol http' }).waitFor();
  await page.locator('.tabs a[data-kind="service-router"]').click();
  await page.waitForURL(/#\/config\?kind=service-router$/);
  await page.getByText('No service-router entries in the mesh default.').waitFor();
  await page.getByRole('button', { name: 'New service-router entry' }).click();
  const text = JSON.stringify({
    Kind: 'service-router', Name: 'db',
    Routes: [{ Match: { HTTP: { PathPrefix: '/v1/' } } }, { Match: { HTTP: { PathPrefix: 'v2' } }, Destination: { Service: 'db' } }],
  }, null, 2);
  const area = page.getByLabel('Config entry (JSON)');
  await area.fill(text);
  await page.getByRole('button', { name: 'Create' }).click();
  const err = page.locator('#cfg-error .field-error');
  await err.waitFor();
  const line = text.split('\n').findIndex((l) => l.includes('"v2"')) + 1;
  assert.equal(await err.textContent(), `Line ${line}: Routes[1].Match.HTTP.PathPrefix: must start with '/'`);
  assert.deepEqual(await page.locator('.gutter .bad').allTextContents(), [String(line)]);
  assert.equal(await area.getAttribute('aria-invalid'), 'true');
  // The line is selected in the editor.
  assert.equal(await area.evaluate((t) => t.value.slice(t.selectionStart, t.selectionEnd).trim()), '"PathPrefix": "v2"');
  await shot(page, 'config-error');
  // Not JSON at all: said above the editor.
  await area.fill('{"Kind": ');
  await page.getByRole('button', { name: 'Create' }).click();
  await page.locator('#cfg-error', { hasText: 'Not JSON' }).waitFor();
  await area.fill(text.replace('"v2"', '"/v2/"'));
  await page.getByRole('button', { name: 'Create' }).click();
  await page.waitForURL(/#\/config\/service-router\/db$/);
  await page.locator('#cfg-view', { hasText: '"/v2/"' }).waitFor();
  // Live: a change made elsewhere shows without a reload.
  await srv.call('PUT', '/v1/config', { Kind: 'service-router', Name: 'db', Routes: [{ Match: { HTTP: { PathPrefix: '/v3/' } } }] });
  await page.locator('#cfg-view', { hasText: '"/v3/"' }).waitFor();
  // Edit in place: the server's error again on its line, then saved.
  await page.getByRole('button', { name: 'Edit' }).click();
  const edited = (await area.inputValue()).replace('"/v3/"', '"v3"');
  await area.fill(edited);
  await page.getByRole('button', { name: 'Save' }).click();
  await page.locator('#cfg-error', { hasText: 'Routes[0].Match.HTTP.PathPrefix' }).waitFor();
  await area.fill(edited.replace('"v3"', '"/v4/"'));
  await page.getByRole('button', { name: 'Save' }).click();
  await page.locator('#cfg-view', { hasText: '"/v4/"' }).waitFor();
  assert.equal((await srv.call('GET', '/v1/config/service-router/db')).Routes[0].Match.HTTP.PathPrefix, '/v4/');
  await shot(page, 'config-entry');
  await page.context().close();
});

test('config entries in YAML: the server\'s error on its line, fixed and saved; the format is remembered', async () => {
  await srv.call('PUT', '/v1/config', { Kind: 'service-defaults', Name: 'yweb', Protocol: 'http', MeshGateway: { Mode: 'local' }, Meta: { owner: 'team-a' } });
  const page = await newPage();
  await login(page, srv.token);
  await page.getByRole('link', { name: 'Config' }).click();
  await page.locator('#config-entries tr[data-entry="yweb"] a').click();
  await page.waitForURL(/#\/config\/service-defaults\/yweb$/);
  await page.locator('#cfg-view', { hasText: '"Protocol": "http"' }).waitFor();
  // The switch: YAML as the server writes it, Kind and Name first.
  await page.getByLabel('YAML', { exact: true }).check();
  await page.locator('#cfg-view', { hasText: 'Kind: service-defaults\nName: yweb\nProtocol: http\n' }).waitFor();
  // Remembered for the session: a reload shows YAML again.
  await page.reload();
  assert.equal(await page.getByLabel('YAML', { exact: true }).isChecked(), true);
  await page.locator('#cfg-view', { hasText: 'Mode: local' }).waitFor();
  await page.getByRole('button', { name: 'Edit' }).click();
  const area = page.getByLabel('Config entry (YAML)');
  const text = await area.inputValue();
  assert.match(text, /^Kind: service-defaults\nName: yweb\n/);
  assert.doesNotMatch(text, /ModifyIndex/);
  assert.equal(await page.getByLabel('JSON', { exact: true }).isDisabled(), true);
  // A bad field: the server's message, on the line it names.
  const bad = text.replace('Mode: local', 'Mode: sideways');
  await area.fill(bad);
  await page.getByRole('button', { name: 'Save' }).click();
  const err = page.locator('#cfg-error .field-error');
  await err.waitFor();
  const line = bad.split('\n').findIndex((l) => l.includes('sideways')) + 1;
  assert.ok(line > 3);
  assert.match(await err.textContent(), new RegExp(`^Line ${line}: MeshGateway\\.Mode: `));
  assert.deepEqual(await page.locator('.gutter .bad').allTextContents(), [String(line)]);
  assert.equal(await area.evaluate((t) => t.value.slice(t.selectionStart, t.selectionEnd).trim()), 'Mode: sideways');
  await shot(page, 'config-yaml-error');
  // Fixed and saved as YAML.
  await area.fill(bad.replace('Mode: sideways', 'Mode: remote'));
  await page.getByRole('button', { name: 'Save' }).click();
  await page.locator('#cfg-view', { hasText: 'Mode: remote' }).waitFor();
  assert.equal(await page.getByLabel('JSON', { exact: true }).isDisabled(), false);
  const saved = await srv.call('GET', '/v1/config/service-defaults/yweb');
  assert.deepEqual([saved.MeshGateway.Mode, saved.Meta.owner], ['remote', 'team-a']);
  await shot(page, 'config-yaml');
  await page.context().close();
});

test('topology: allowed and denied edges from intentions; a node opens its service', async () => {
  await srv.call('PUT', '/v1/connect/intentions/exact?source=api&destination=db', { Action: 'allow' });
  const page = await newPage();
  await login(page, srv.token);
  await page.getByRole('link', { name: 'Topology' }).click();
  const allow = page.locator('#topology path[data-edge="api -> db"][data-verdict="allow"]');
  const deny = page.locator('#topology path[data-edge="web -> api"][data-verdict="deny"]');
  await allow.waitFor();
  await deny.waitFor();
  assert.match(await page.locator('#edges li[data-edge="web -> api"]').textContent(), /denied by the intention \* -> api/);
  assert.equal(await page.locator('#topology path[data-edge="web -> db"]').getAttribute('data-verdict'), 'l7');
  assert.equal(await page.locator('#edges li[data-edge="db -> web"]').count(), 0, 'default-deny pairs are not drawn');
  await page.locator('#observed-note', { hasText: 'No calls observed by the proxies in the last 5 minutes' }).waitFor();
  // Live: a new deny intention adds its edge.
  await srv.call('PUT', '/v1/connect/intentions/exact?source=db&destination=web', { Action: 'deny' });
  await page.locator('#topology path[data-edge="db -> web"][data-verdict="deny"]').waitFor();
  await shot(page, 'topology');
  // Another mesh: no intentions there, so no edges.
  await page.getByLabel('Mesh').selectOption('payments');
  await page.waitForURL(/#\/topology\?mesh=payments$/);
  await page.locator('#edges li[data-edge="web -> db"][data-verdict="deny"]').waitFor();
  assert.equal(await page.locator('#topology path.edge').count(), 1, 'only payments\' web -> db deny');
  await page.goBack();
  await page.locator('#topology path[data-edge="api -> db"]').waitFor();
  // Keyboard: a node is a focusable, labelled link.
  const api = page.locator('#topology a[data-service="api"]');
  assert.match(await api.getAttribute('aria-label'), /^api: service, may call db/);
  await api.focus();
  await page.keyboard.press('Enter');
  await page.waitForURL(/#\/services\/api$/);
  await page.goBack();
  await page.locator('#topology a[data-service="db"]').click();
  await page.waitForURL(/#\/services\/db$/);
  await page.getByRole('heading', { level: 1, name: /db/ }).waitFor();
  await page.context().close();
});

// Telemetry as an agent reports it (PUT /v1/weft/telemetry/node/:node):
// n requests in the interval, one 5xx among them when fail, latencies
// half under 1 ms, 90 % under 5 ms, all under 10 ms (a p99 of 9.5 ms).
function counts(n, { fail = false, cls = '2xx', denied } = {}) {
  return {
    Requests: n, Responses: fail ? { [cls]: n - 1, '5xx': 1 } : { [cls]: n }, ...(denied === undefined ? {} : { Denied: denied }),
    LatencyBuckets: [[0.001, Math.floor(n / 2)], [0.005, Math.floor((9 * n) / 10)], [0.01, n], ['+Inf', n]],
  };
}
const proxy = (service, inbound, upstreams = []) => ({
  ProxyID: `${service}-sidecar-proxy`, Service: service, Mesh: 'default', Inbound: inbound,
  Upstreams: upstreams.map(([name, c]) => ({ Service: name, ...c })),
});
async function report(token, interval, proxies) {
  const r = await fetch(`${srv.base}/v1/weft/telemetry/node/node-a`, {
    method: 'PUT', headers: { 'X-Consul-Token': token }, body: JSON.stringify({ Interval: interval, Proxies: proxies }),
  });
  assert.equal(r.status, 200, await r.text());
}
const sidecar = (service, upstreams) => srv.call('PUT', '/v1/catalog/register', {
  Node: 'node-a', Address: '10.0.0.1',
  Service: {
    ID: `${service}-sidecar-proxy`, Service: `${service}-sidecar-proxy`, Kind: 'connect-proxy', Port: 21000 + upstreams.length,
    Proxy: { DestinationServiceName: service, Upstreams: upstreams.map(([name, port]) => ({ DestinationName: name, LocalBindPort: port })) },
  },
});

test('traffic: a service\'s charts, upstreams and downstreams, live; observed calls in the topology', async () => {
  const agent = await srv.call('PUT', '/v1/acl/token', { Kind: 'agent', NodeName: 'node-a', Description: 'browser test agent' });
  await sidecar('web', [['api', 9191]]);
  await sidecar('api', [['db', 9192], ['cache', 9193]]);
  // 18 samples covering the last 3 minutes (each lands in the 10 s point
  // holding its interval's middle): api's inbound at 8 req/s in the newest
  // point, 12 at its peak, 7.78 on average, 2 requests denied in each. The
  // middles all sit 5 s + k * 10 s before now: sent well inside a point,
  // they fill consecutive ones. A first sample of no request sets the
  // points' width (its interval, 10 s); the others go oldest first, as an
  // agent's do.
  const ns = [80, 60, 100, 40, 70, 90, 50, 110, 60, 80, 120, 70, 90, 60, 100, 80, 50, 90];
  while ((Date.now() - 5000) % 10000 < 500 || (Date.now() - 5000) % 10000 > 6000) await new Promise((r) => setTimeout(r, 100));
  await report(agent.SecretID, '10s', [proxy('web', counts(0)), proxy('api', counts(0, { denied: 0 }))]);
  for (const [k, n] of [...ns.entries()].reverse()) {
    await report(agent.SecretID, `${10 + 20 * k}s`, [
      proxy('web', counts(20), [['api', counts(n, { fail: true })]]),
      proxy('api', counts(n, { fail: true, denied: 2 }), [['db', counts(n / 2)]]),
    ]);
  }
  const page = await newPage();
  await login(page, srv.token);
  await page.goto(`${srv.base}/ui/#/services/api`);
  // Three charts, each an SVG path through the 18 points, and its summary.
  const rate = page.locator('#chart-rate path.series');
  await rate.waitFor();
  for (const id of ['chart-rate', 'chart-success', 'chart-p99']) {
    const path = page.locator(`#${id} path.series`);
    assert.equal(await path.count(), 1, `${id}: one line`);
    assert.equal(await path.getAttribute('data-points'), '18');
    assert.equal((await path.getAttribute('d')).match(/[ML][\d.]+,[\d.]+/g).length, 18, `${id}: 18 points in the path`);
  }
  const summary = async (id) => page.locator(`#${id}`).evaluate((svgEl) => document.getElementById(svgEl.getAttribute('aria-describedby')).textContent);
  assert.equal(await summary('chart-rate'),
    'Request rate over the last 5 minutes: latest 8.00 req/s, average 7.78 req/s, peak 12.0 req/s, in 18 intervals with traffic; 36 requests denied by intentions.');
  assert.match(await summary('chart-success'), /^Success rate \(responses other than 5xx\) over the last 5 minutes: latest 98\.\d %, lowest 97\.5 %/);
  assert.match(await summary('chart-p99'), /^99th percentile latency over the last 5 minutes: latest 9\.50 ms, highest 9\.50 ms/);
  assert.equal(await page.locator('#chart-rate title').textContent(), 'Request rate (req/s), the last 5 minutes');
  assert.deepEqual(await page.locator('#chart-rate .axis-label').allTextContents(), ['req/s', 'time (local)']);
  assert.deepEqual(await page.locator('#chart-success .axis-label').allTextContents(), ['%', 'time (local)']);
  assert.deepEqual(await page.locator('#chart-p99 .axis-label').allTextContents(), ['ms', 'time (local)']);
  // Upstreams: declared by api's sidecar, db observed and cache not;
  // downstreams: web, declared and observed.
  const up = (svc) => page.locator(`#upstreams tr[data-service="${svc}"]`);
  await up('db').waitFor();
  assert.match(await up('db').textContent(), /^dbapi-sidecar-proxy on node-a, local port 9192[\d.]+ req\/s, 100 % success$/);
  assert.deepEqual([await up('db').getAttribute('data-observed'), await up('cache').getAttribute('data-observed')], ['true', 'false']);
  assert.match(await up('cache').textContent(), /none observed/);
  const down = page.locator('#downstreams tr[data-service="web"]');
  assert.match(await down.textContent(), /^webweb-sidecar-proxy on node-a[\d.]+ req\/s, 9\d\.\d % success$/);
  await page.evaluate(() => window.scrollTo(0, document.getElementById('traffic-h').getBoundingClientRect().top + window.scrollY - 12));
  await shot(page, 'service-charts');

  // db has no traffic yet, then its first sample arrives: the charts
  // appear without a reload, and its caller api is listed.
  await page.getByRole('link', { name: 'db', exact: true }).first().click();
  await page.waitForURL(/#\/services\/db$/);
  await page.locator('#traffic-empty', { hasText: 'No traffic observed yet' }).waitFor();
  await report(agent.SecretID, '10s', [proxy('db', counts(30))]);
  await page.locator('#chart-rate .series-group > *').first().waitFor();
  assert.match(await summary('chart-rate'), /^Request rate over the last 5 minutes: latest 3\.00 req\/s/);
  assert.equal(await page.locator('#traffic-empty').count(), 0);
  assert.match(await page.locator('#downstreams tr[data-service="api"]').textContent(), /api-sidecar-proxy on node-a/);
  assert.match(await page.locator('#sidecars-note').textContent(), /db has no sidecar proxy registered/);

  // The topology: observed calls as bands, one an intention denies marked.
  await page.getByRole('link', { name: 'Topology' }).click();
  const band = (edge) => page.locator(`#topology g.traffic[data-edge="${edge}"]`);
  await band('web -> api').waitFor();
  assert.equal(await band('web -> api').getAttribute('data-denied'), 'true', 'web -> api is denied by * -> api');
  assert.equal(await band('web -> api').locator('.cross').count(), 1);
  assert.equal(await band('api -> db').getAttribute('data-denied'), 'false');
  const li = (edge) => page.locator(`#edges li[data-edge="${edge}"]`);
  assert.match(await li('web -> api').textContent(), /^web → api: ✕ observed, [\d.]+ req\/s, 9\d\.\d % success, denied by the intention \* -> api$/);
  assert.match(await li('api -> db').textContent(), /^api → db: observed, [\d.]+ req\/s, 100 % success, allowed by the intention api -> db$/);
  assert.equal(await li('web -> api').getAttribute('data-denied'), 'true');
  assert.match(await page.locator('#observed-note').textContent(), /^2 calls between services observed/);
  // services only: their sidecars (connect-proxy instances) are not nodes
  assert.equal(await page.locator('#topology a[data-service="api-sidecar-proxy"]').count(), 0);
  assert.equal(await page.locator('#topology a[data-service="api"]').count(), 1);
  assert.match(await page.locator('#topology a[data-service="web"]').getAttribute('aria-label'), /observed calling api/);
  // Live: db starts calling web (a deny intention refuses it: 403s). The
  // picture is redrawn, and a keyboard user's focus stays on its node.
  await page.locator('#topology a[data-service="web"]').focus();
  await report(agent.SecretID, '10s', [proxy('db', counts(30), [['web', counts(10, { cls: '4xx' })]])]);
  await band('db -> web').waitFor();
  assert.equal(await band('db -> web').getAttribute('data-denied'), 'true');
  assert.equal(await page.evaluate(() => document.activeElement.dataset.service), 'web');
  assert.match(await li('db -> web').textContent(), /^db → web: ✕ observed, [\d.]+ req\/s, 100 % success, denied by the intention db -> web$/);
  await shot(page, 'topology-observed');
  await page.context().close();
  // The charts in dark mode (the screenshot is for the eye; the colours
  // come from the same variables as the rest of the dark theme).
  const dark = await newPage('dark');
  await login(dark, srv.token);
  await dark.goto(`${srv.base}/ui/#/services/api`);
  await dark.locator('#chart-rate path.series').waitFor();
  const [stroke, bg] = await dark.evaluate(() => [getComputedStyle(document.querySelector('#chart-rate path.series')).stroke,
    getComputedStyle(document.body).backgroundColor]);
  assert.notEqual(stroke, bg);
  assert.equal(bg, 'rgb(20, 23, 28)', 'the dark theme is on');
  await shot(dark, 'service-charts-dark');
  await dark.context().close();
});

test('meshes: created, edited and deleted in the form; the API\'s errors where they belong', async () => {
  const page = await newPage();
  await login(page, srv.token);
  await page.getByRole('link', { name: 'Meshes & zones' }).click();
  const form = page.locator('#mesh-form');
  const defaultDomain = (await srv.call('GET', '/v1/meshes/default')).TrustDomain;
  // A bad trust domain: the server's 400 under that field, which is marked.
  await form.getByLabel('Name').fill('billing');
  await form.getByLabel('Trust domain').fill('Not_A.Domain');
  await form.getByRole('button', { name: 'Create mesh' }).click();
  const trustErr = form.locator('.field', { has: page.locator('#mesh-trust') }).locator('.field-error');
  await trustErr.waitFor();
  assert.match(await trustErr.textContent(), /^TrustDomain: "Not_A.Domain" is not a DNS name/);
  assert.equal(await page.locator('#mesh-trust').getAttribute('aria-invalid'), 'true');
  await shot(page, 'mesh-error');
  // Left empty, the server picks billing.<default's>.
  await form.getByLabel('Trust domain').fill('');
  await form.getByRole('button', { name: 'Create mesh' }).click();
  await page.locator('#meshes tr[data-mesh="billing"]').waitFor();
  let billing = await srv.call('GET', '/v1/meshes/billing');
  assert.deepEqual([billing.MTLSMode, billing.TrustDomain, billing.DefaultIntentionActionSet], ['strict', `billing.${defaultDomain}`, false]);
  // Creating it again never replaces it (?cas=0): said under Name.
  await form.getByLabel('Name').fill('billing');
  await form.getByRole('button', { name: 'Create mesh' }).click();
  await form.locator('.field', { has: page.locator('#mesh-name') }).locator('.field-error', { hasText: 'already exists' }).waitFor();
  // Edit: the form holds the mesh; the changes are saved.
  await page.getByRole('button', { name: 'Edit billing' }).click();
  assert.equal(await form.getByLabel('Name').inputValue(), 'billing');
  assert.equal(await form.getByLabel('Name').getAttribute('readonly'), '');
  await form.getByLabel('mTLS mode').selectOption('permissive');
  await form.getByLabel('Default intention action').selectOption('deny');
  await form.getByLabel(/^Meta/).fill('team=billing\ntier=gold');
  await form.getByRole('button', { name: 'Save mesh' }).click();
  await page.locator('#meshes tr[data-mesh="billing"]', { hasText: 'team=billing' }).waitFor();
  billing = await srv.call('GET', '/v1/meshes/billing');
  assert.deepEqual([billing.MTLSMode, billing.DefaultIntentionAction, billing.DefaultIntentionActionSet, billing.Meta],
    ['permissive', 'deny', true, { team: 'billing', tier: 'gold' }]);
  // A Meta line that is not key=value is refused before any request.
  await page.getByRole('button', { name: 'Edit billing' }).click();
  await form.getByLabel(/^Meta/).fill('team billing');
  await form.getByRole('button', { name: 'Save mesh' }).click();
  await form.locator('.field', { has: page.locator('#mesh-meta') }).locator('.field-error', { hasText: /^Meta: line 1/ }).waitFor();
  // Edited elsewhere meanwhile: the save is refused (?cas=), not lost.
  await form.getByLabel(/^Meta/).fill('team=billing');
  await srv.call('PUT', '/v1/meshes/billing', { Meta: { team: 'other' } });
  await form.getByRole('button', { name: 'Save mesh' }).click();
  await form.locator('.field-error', { hasText: 'changed on the server' }).waitFor();
  assert.deepEqual((await srv.call('GET', '/v1/meshes/billing')).Meta, { team: 'other' });
  await form.getByRole('button', { name: 'Cancel' }).click();
  // A mesh in use cannot be deleted: the server's 409 in its row.
  await srv.call('PUT', '/v1/catalog/register', { Node: 'node-c', Address: '10.0.0.3', Service: { Service: 'ledger', Port: 80, Mesh: 'billing' } });
  await page.getByRole('button', { name: 'Delete billing' }).click();
  const rowErr = page.locator('#meshes tr[data-mesh="billing"] .row-error');
  await rowErr.filter({ hasText: /\S/ }).waitFor();
  assert.match(await rowErr.textContent(), /mesh "billing" is in use: services ledger/);
  await shot(page, 'meshes-edit');
  assert.equal(await page.getByRole('button', { name: 'Delete default' }).count(), 0, 'the default mesh has no Delete');
  await srv.call('PUT', '/v1/catalog/deregister', { Node: 'node-c' });
  await page.getByRole('button', { name: 'Delete billing' }).click();
  await page.locator('#meshes tr[data-mesh="billing"]').waitFor({ state: 'detached' });
  const gone = await fetch(`${srv.base}/v1/meshes/billing`, { headers: { 'X-Consul-Token': srv.token } });
  assert.equal(gone.status, 404);
  await page.context().close();
});

test('no console errors, no CSP violations', () => {
  assert.deepEqual(problems, []);
});
