// The console's sign-in through a real OpenID provider, in Debian's headless Chromium: the
// certified `oidc-provider` package (e2e/oidc-provider.mjs, with its own login page and test
// users) and the real `airisk serve --dev` configured to sign console users in through it.
//
//   node e2e/console-oidc.test.mjs     (after `bash scripts/setup-browser-tests.sh` and a build)
//
// An approver signs in at the provider's page, approves a request another user made, signs out
// (at the provider too): the old session cookie then works nowhere. An unmapped user is refused;
// a tampered `state` is refused. Environment: AIRISK_BIN (default target/debug/airisk), CHROMIUM
// (default /usr/bin/chromium), AIRISK_SCREENSHOTS (default test-output/console-oidc).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { chromium } from 'playwright-core';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const BIN = process.env.AIRISK_BIN || join(ROOT, 'target', 'debug', 'airisk');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const OUT = process.env.AIRISK_SCREENSHOTS || join(ROOT, 'test-output', 'console-oidc');
const DIGEST = '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run'];

const cleanEnv = () => Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('AIRISK_')));

/** A free loopback port (the provider must know airisk's redirect URI before airisk starts). */
async function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.on('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

/** Spawns `cmd args`, resolving with the first stdout line matching `pattern` (its match). */
function spawnUntil(cmd, args, env, pattern, what) {
  const child = spawn(cmd, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env });
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  const lines = createInterface({ input: child.stdout });
  const exports = {};
  const ready = new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`${what} did not start:\n${stderr}`)), 30_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      fail(new Error(`${what} exited (${code}):\n${stderr}`));
    });
    lines.on('line', (line) => {
      const kv = line.match(/^export ([A-Z_]+)=(.*)$/);
      if (kv) exports[kv[1]] = kv[2];
      const m = line.match(pattern);
      if (m) {
        clearTimeout(timer);
        ok(m);
      }
    });
  });
  return { child, ready, exports, stderr: () => stderr };
}

async function api(base, token, method, path, body, expected) {
  const r = await fetch(base + path, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  if (expected !== undefined) assert.equal(r.status, expected, `${method} ${path}: ${text}`);
  return text ? JSON.parse(text) : null;
}

async function shoot(page, name) {
  mkdirSync(OUT, { recursive: true });
  await page.screenshot({ path: join(OUT, `${name}.png`), fullPage: true });
}

/** From the sign-in page through the provider's login page, as `username`. */
async function signInAtProvider(page, base, username) {
  await page.goto(`${base}/console/sign-in`);
  assert.equal(await page.locator('#token').count(), 1, 'dev mode keeps the pasted-token form');
  await Promise.all([page.waitForURL(/\/interaction\//), page.click('#oidc-sign-in')]);
  await shoot(page, `provider-login-${username}`);
  await page.fill('#username', username);
  await page.click('#login');
}

test('console sign-in through a real OpenID provider', { timeout: 300_000 }, async (t) => {
  rmSync(OUT, { recursive: true, force: true });
  const state = mkdtempSync(join(tmpdir(), 'airisk-oidc-console-'));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const consoleSecret = randomBytes(24).toString('base64url');
  const provider = spawnUntil(
    'node',
    [join(ROOT, 'e2e', 'oidc-provider.mjs'), '--state', state, '--keys', 'k1:ES256', '--console-base', base],
    { ...cleanEnv(), OIDC_TEST_CLIENT_SECRET: randomBytes(24).toString('base64url'), OIDC_CONSOLE_CLIENT_SECRET: consoleSecret },
    /^listening (http:\/\/\S+)$/,
    'the OpenID provider',
  );
  let airisk;
  const profile = mkdtempSync(join(tmpdir(), 'airisk-oidc-chromium-'));
  let context;
  try {
    const issuer = (await provider.ready)[1];
    const config = join(state, 'airisk.toml');
    writeFileSync(config, `
console_oidc_client_id = "airisk-console"
console_oidc_issuer = "${issuer}"
console_oidc_provider_name = "Test IdP"

[[issuers]]
issuer = "${issuer}"
tenant = "demo"
role_claim = "groups"
[issuers.roles]
"risk-approvers" = "approver"
`);
    airisk = spawnUntil(
      BIN,
      ['serve', '--dev', '--bind', `127.0.0.1:${port}`, '--public-url', base, '--config', config, '--log', 'warn'],
      { ...cleanEnv(), AIRISK_CONSOLE_OIDC_CLIENT_SECRET: consoleSecret },
      /^# airisk listening on (http:\/\/\S+)$/,
      'airisk serve',
    );
    await airisk.ready;
    const env = airisk.exports;
    assert.ok(env.ADMIN_TOKEN && env.VIEWER_TOKEN, 'serve --dev printed its tokens');
    // airisk fetched the provider's keys and endpoints at start-up.
    const ready = await fetch(`${base}/readyz`);
    assert.equal(ready.status, 200, await ready.text());

    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1280, height: 800 },
    });
    const page = context.pages()[0] ?? (await context.newPage());
    page.setDefaultTimeout(20_000);
    const s = {};

    await t.test('a request made by another user waits in the queue', async () => {
      const reg = await api(base, env.ADMIN_TOKEN, 'POST', '/v1/models', {
        name: 'credit-scoring', version: '2.1.0', checksum: DIGEST,
        artifact_uri: 's3://models/credit-scoring/2.1.0/model.onnx', justification: 'Quarterly retrain.',
        required_approvals: 1, expires_in_seconds: 86400,
      }, 201);
      s.request = reg.approval_request.id;
    });

    await t.test('an approver signs in through the provider and lands in the queue', async () => {
      await signInAtProvider(page, base, 'alice');
      await page.waitForURL(/\/console\/queue$/);
      assert.equal(await page.textContent('.who-name'), 'alice');
      assert.match(await page.textContent('#who-provider'), /Alice Approver, signed in through 127\.0\.0\.1/);
      assert.match(await page.textContent('#session-ends'), /Session ends \d{4}-\d\d-\d\d \d\d:\d\d UTC/);
      const cookies = await context.cookies(base);
      const session = cookies.find((c) => c.name === 'airisk-console');
      assert.ok(session, 'session cookie set');
      assert.equal(session.httpOnly, true);
      assert.equal(session.sameSite, 'Strict');
      assert.match(session.value, /^v1\./, 'a sealed session, not a token');
      assert.equal(cookies.find((c) => c.name === 'airisk-console-flow'), undefined, 'the flow cookie is spent');
      s.cookie = session.value;
      await shoot(page, 'queue-alice');
    });

    await t.test('the approver approves the request', async () => {
      const row = page.locator(`tr[data-request-id="${s.request}"]`);
      assert.equal(await row.count(), 1);
      await row.locator('input[name="reason"]').fill('Validation report reviewed.');
      await Promise.all([page.waitForURL(/\?done=approved$/), row.locator('button:has-text("Approve")').click()]);
      assert.match(await page.textContent('.lede'), /APPROVED/);
      await shoot(page, 'request-approved');
      const a = await api(base, env.ADMIN_TOKEN, 'GET', `/v1/approvals/${s.request}`, null, 200);
      assert.equal(a.status, 'APPROVED');
      assert.deepEqual(a.approvals.map((x) => x.approver), ['alice']);
    });

    await t.test('signing out ends the session here and at the provider', async () => {
      await Promise.all([page.waitForURL(/\/session\/end/), page.click('button:has-text("Sign out")')]);
      await shoot(page, 'provider-sign-out');
      await Promise.all([page.waitForURL(/\/console\/sign-in\?signed_out=1$/), page.click('#logout-yes')]);
      assert.match(await page.textContent('.flash-ok'), /You are signed out/);
      await shoot(page, 'signed-out');
      // The old cookie, replayed: no session.
      const r = await fetch(`${base}/console/queue`, { headers: { cookie: `airisk-console=${s.cookie}` }, redirect: 'manual' });
      assert.equal(r.status, 303);
      assert.match(r.headers.get('location'), /^\/console\/sign-in/);
      const events = await api(base, env.ADMIN_TOKEN, 'GET', '/v1/audit/events?action=auth.', null, 200);
      const actions = events.entries.map((e) => `${e.record.action}:${e.record.actor}`);
      assert.ok(actions.includes('auth.sign_in:alice'), JSON.stringify(actions));
      assert.ok(actions.includes('auth.sign_out:alice'), JSON.stringify(actions));
    });

    await t.test('an unmapped user is refused, and it is on the record', async () => {
      await signInAtProvider(page, base, 'uma');
      await page.waitForSelector('#sign-in-error');
      assert.match(await page.textContent('#sign-in-error'), /not mapped to a role/);
      await shoot(page, 'unmapped-refused');
      const cookies = await context.cookies(base);
      assert.equal(cookies.find((c) => c.name === 'airisk-console'), undefined);
      const events = await api(base, env.ADMIN_TOKEN, 'GET', '/v1/audit/events?action=auth.refused', null, 200);
      assert.ok(events.entries.some((e) => e.record.actor === 'uma'), JSON.stringify(events));
    });

    await t.test('a tampered state is refused', async () => {
      // The provider's redirect back is the end of a redirect chain, which page.route() does not
      // see; the DevTools protocol's Fetch domain pauses every request, redirects included.
      const cdp = await context.newCDPSession(page);
      await cdp.send('Fetch.enable', { patterns: [{ urlPattern: '*/console/oidc/callback*', requestStage: 'Request' }] });
      let tampered = 0;
      cdp.on('Fetch.requestPaused', async (e) => {
        const url = new URL(e.request.url);
        url.searchParams.set('state', `${url.searchParams.get('state')}x`);
        tampered += 1;
        await cdp.send('Fetch.continueRequest', { requestId: e.requestId, url: url.href });
      });
      // The provider still has uma's session: it answers at once, with a code and the state.
      await page.goto(`${base}/console/sign-in`);
      const [response] = await Promise.all([
        page.waitForResponse((r) => r.url().includes('/console/oidc/callback')),
        page.click('#oidc-sign-in'),
      ]);
      assert.equal(response.status(), 400, `${response.url()}: ${await response.text()}`);
      await page.waitForSelector('#sign-in-error');
      assert.match(await page.textContent('#sign-in-error'), /state the provider sent back is not this browser/);
      assert.equal(tampered, 1, 'the answer was tampered with on its way');
      await cdp.send('Fetch.disable');
      await shoot(page, 'tampered-state-refused');
      const cookies = await context.cookies(base);
      assert.equal(cookies.find((c) => c.name === 'airisk-console'), undefined);
    });
  } finally {
    if (context) await context.close();
    if (airisk) airisk.child.kill('SIGTERM');
    provider.child.kill('SIGTERM');
    rmSync(profile, { recursive: true, force: true });
    rmSync(state, { recursive: true, force: true });
  }
});
