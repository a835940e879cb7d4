// Browser tests of the approver console: the real `airisk serve --dev`, driven in Debian's
// headless Chromium through playwright-core (which never downloads a browser).
//
//   node e2e/console.test.mjs            (after `bash scripts/setup-browser-tests.sh` and a build)
//
// Environment: AIRISK_BIN (default target/debug/airisk), CHROMIUM (default /usr/bin/chromium),
// AIRISK_SCREENSHOTS (default test-output/console). Every page visited is screenshotted there.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const BIN = process.env.AIRISK_BIN || join(ROOT, 'target', 'debug', 'airisk');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const OUT = process.env.AIRISK_SCREENSHOTS || join(ROOT, 'test-output', 'console');
const DIGEST = '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08';
const OTHER_DIGEST = '2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae';
const CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
  "form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

// ---------------------------------------------------------------------------------------------
// The server

/** Spawns `airisk serve --dev` on port 0 and reads its printed address, tokens and secret. */
async function startServer() {
  // The service's own configuration must not leak in from the caller's environment.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('AIRISK_')));
  const child = spawn(BIN, ['serve', '--dev', '--bind', '127.0.0.1:0', '--log', 'warn'], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env,
  });
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  const exports = {};
  const lines = createInterface({ input: child.stdout });
  const base = await new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`airisk serve did not start:\n${stderr}`)), 30_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      fail(new Error(`airisk serve exited (${code}):\n${stderr}`));
    });
    lines.on('line', (line) => {
      const kv = line.match(/^export ([A-Z_]+)=(.*)$/);
      if (kv) exports[kv[1]] = kv[2];
      const url = line.match(/^# airisk listening on (http:\/\/\S+)$/);
      if (url) {
        clearTimeout(timer);
        ok(url[1]);
      }
    });
  });
  for (const name of ['ADMIN_TOKEN', 'ANALYST_TOKEN', 'APPROVER_TOKEN', 'VIEWER_TOKEN', 'AIRISK_JWT_SECRET']) {
    assert.ok(exports[name], `serve --dev printed no ${name}`);
  }
  return { child, base, exports, stderr: () => stderr };
}

/** `airisk token issue` with the dev server's HS256 secret. */
function mintToken(secret, sub, tenant, role) {
  return execFileSync(BIN, ['token', 'issue', '--sub', sub, '--tenant', tenant, '--role', role], {
    env: {
      ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('AIRISK_'))),
      AIRISK_JWT_SECRET: secret,
    },
  })
    .toString()
    .trim();
}

/** A JSON API call; returns the parsed body, asserting the status. */
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

// ---------------------------------------------------------------------------------------------
// Page checks, run on every page visited

const cspViolations = [];

/**
 * Checks what every console page must be (no inline script or style, every field labelled, no
 * horizontal scrolling) and writes a full-page screenshot.
 */
async function checkAndShoot(page, name) {
  const report = await page.evaluate(() => {
    const scripts = [...document.scripts].map((s) => ({ src: s.getAttribute('src'), inline: s.textContent.trim().length > 0 }));
    const styled = document.querySelectorAll('[style], style').length;
    const handlers = [...document.querySelectorAll('*')].flatMap((el) =>
      [...el.attributes].filter((a) => a.name.startsWith('on')).map((a) => `${el.tagName}.${a.name}`),
    );
    const unlabelled = [...document.querySelectorAll('input, select, textarea')]
      .filter((el) => el.type !== 'hidden' && el.labels.length === 0 && !el.getAttribute('aria-label'))
      .map((el) => el.name || el.id);
    const root = document.documentElement;
    return {
      scripts,
      styled,
      handlers,
      unlabelled,
      overflow: root.scrollWidth - root.clientWidth,
      h1: document.querySelectorAll('h1').length,
      lang: root.lang,
    };
  });
  for (const s of report.scripts) {
    assert.ok(s.src && !s.inline, `${name}: inline script found`);
    assert.ok(s.src.startsWith('/console/assets/'), `${name}: script from elsewhere: ${s.src}`);
  }
  assert.equal(report.styled, 0, `${name}: inline style found`);
  assert.deepEqual(report.handlers, [], `${name}: inline event handlers`);
  assert.deepEqual(report.unlabelled, [], `${name}: form fields without a label`);
  assert.ok(report.overflow <= 0, `${name}: scrolls horizontally by ${report.overflow}px`);
  assert.equal(report.h1, 1, `${name}: one h1 per page`);
  assert.equal(report.lang, 'en');
  mkdirSync(OUT, { recursive: true });
  await page.screenshot({ path: join(OUT, `${name}.png`), fullPage: true });
}

/** The headers every console response carries. */
function assertSecurityHeaders(response, what) {
  const h = response.headers();
  assert.equal(h['content-security-policy'], CSP, `${what}: CSP`);
  assert.equal(h['x-content-type-options'], 'nosniff', `${what}: nosniff`);
  assert.equal(h['referrer-policy'], 'no-referrer', `${what}: referrer policy`);
  assert.equal(h['cache-control'], 'no-store', `${what}: cache-control`);
}

async function goto(page, url, what) {
  const response = await page.goto(url);
  assert.ok(response, `${what}: no response`);
  assertSecurityHeaders(response, what);
  return response;
}

async function signIn(page, base, token) {
  await goto(page, `${base}/console/sign-in`, 'sign-in page');
  await page.fill('#token', token);
  await Promise.all([page.waitForURL(/\/console\/queue$/), page.click('button:has-text("Sign in")')]);
}

async function signOut(page) {
  if ((await page.locator('form[action="/console/sign-out"]').count()) === 0) {
    await page.goto(new URL('/console/queue', page.url()).href);
  }
  await Promise.all([page.waitForURL(/\/console\/sign-in\?signed_out=1$/), page.click('button:has-text("Sign out")')]);
}

/**
 * Sends a forged POST from the current page: a form built in the DOM (no script runs in the
 * page's own context; the CSP allows the form's same-origin action). Returns the response.
 */
async function forgePost(page, action, fields) {
  const [response] = await Promise.all([
    page.waitForNavigation(),
    page.evaluate(
      ({ action, fields }) => {
        const form = document.createElement('form');
        form.method = 'post';
        form.action = action;
        for (const [name, value] of Object.entries(fields)) {
          const input = document.createElement('input');
          input.type = 'hidden';
          input.name = name;
          input.value = value;
          form.appendChild(input);
        }
        document.body.appendChild(form);
        form.submit();
      },
      { action, fields },
    ),
  ]);
  return response;
}

async function csrfOf(page) {
  return page.getAttribute('form[action="/console/sign-out"] input[name="csrf"]', 'value');
}

// ---------------------------------------------------------------------------------------------
// The tests

test('approver console in a real browser', { timeout: 300_000 }, async (t) => {
  rmSync(OUT, { recursive: true, force: true });
  mkdirSync(OUT, { recursive: true });
  const server = await startServer();
  const { base, exports: env } = server;
  const profile = mkdtempSync(join(tmpdir(), 'airisk-console-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1280, height: 800 },
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(20_000);
  page.on('console', (m) => {
    if (/Content Security Policy|Refused to/i.test(m.text())) cspViolations.push(m.text());
  });
  const state = {};

  try {
    await t.test('an anonymous visitor is sent to the sign-in page, with strict headers', async () => {
      const response = await goto(page, `${base}/console/`, 'console root');
      assert.match(page.url(), /\/console\/sign-in$/);
      assertSecurityHeaders(response, 'sign-in');
      // Keyboard: the first Tab reaches the skip link, with a visible focus ring.
      await page.keyboard.press('Tab');
      const focus = await page.evaluate(() => {
        const el = document.activeElement;
        const style = getComputedStyle(el);
        return { text: el.textContent, outline: style.outlineStyle, width: style.outlineWidth };
      });
      assert.equal(focus.text, 'Skip to content');
      assert.notEqual(focus.outline, 'none');
      await checkAndShoot(page, '01-sign-in');
    });

    await t.test('a bad token is refused on the sign-in page', async () => {
      await page.fill('#token', 'not-a-jwt');
      await page.click('button:has-text("Sign in")');
      await page.waitForSelector('#sign-in-error');
      assert.match(await page.textContent('#sign-in-error'), /Sign-in refused: the bearer token is malformed/);
      await checkAndShoot(page, '02-sign-in-refused');
    });

    await t.test('an admin signs in and registers a model from the console', async () => {
      await signIn(page, base, env.ADMIN_TOKEN);
      const cookies = await context.cookies(base);
      const session = cookies.find((c) => c.name === 'airisk-console');
      assert.ok(session, 'session cookie set');
      assert.equal(session.httpOnly, true);
      assert.equal(session.sameSite, 'Strict');
      assert.equal(await page.textContent('.who-name'), 'admin@demo');
      await goto(page, `${base}/console/models`, 'models');
      await page.fill('#m-name', 'credit-scoring');
      await page.fill('#m-version', '1.4.0');
      await page.fill('#m-uri', 's3://models/credit-scoring/1.4.0/model.onnx');
      await page.fill('#m-checksum', DIGEST);
      await page.fill('#m-justification', 'Quarterly retrain; validation report VR-2024-117 signed off.');
      await Promise.all([page.waitForURL(/\/console\/requests\/[0-9a-f-]+\?done=registered$/), page.click('button:has-text("Register")')]);
      state.modelRequest = page.url().match(/requests\/([0-9a-f-]+)/)[1];
      assert.match(await page.textContent('.flash-ok'), /Registered/);
      assert.match(await page.textContent('.checksum'), new RegExp(DIGEST));
      // One's own request: no approve or reject form, and a reason why.
      assert.equal(await page.locator('form[action$="/approve"]').count(), 0);
      assert.equal(await page.locator('form[action$="/reject"]').count(), 0);
      assert.match(await page.textContent('#no-decision'), /another approver must decide it/);
      await checkAndShoot(page, '03-request-own-no-approve-button');
    });

    await t.test("approving one's own request is refused by the server", async () => {
      const csrf = await csrfOf(page);
      const response = await forgePost(page, `/console/requests/${state.modelRequest}/approve`, { csrf, reason: 'LGTM' });
      assert.equal(response.status(), 403);
      assertSecurityHeaders(response, 'own approval');
      assert.match(await page.textContent('.error-detail'), /the requester cannot approve or reject their own request/);
      await checkAndShoot(page, '04-own-approval-refused-403');
      const r = await api(base, env.ADMIN_TOKEN, 'GET', `/v1/approvals/${state.modelRequest}`, null, 200);
      assert.equal(r.status, 'PENDING');
      assert.equal(r.approvals.length, 0);
    });

    await t.test('set-up through the API: prompts, a label move to approve, another model', async () => {
      const analyst = env.ANALYST_TOKEN;
      const name = 'support/greeting';
      await api(base, analyst, 'POST', '/v1/prompts', {
        name,
        template: 'You are a helpful assistant for {bank}.\nAnswer briefly.\nNever give investment advice.',
        change_reason: 'first version',
      }, 201);
      await api(base, analyst, 'POST', `/v1/prompts/${encodeURIComponent(name)}/versions`, {
        template: 'You are a careful assistant for {bank}.\nAnswer briefly and cite the policy.\nNever give investment advice.\nEscalate complaints to a human.',
        change_reason: 'cite policies; escalate complaints',
      }, 201);
      const first = await api(base, analyst, 'POST', '/v1/approvals', {
        subject: { kind: 'prompt_label', name, version: 1, label: 'production' },
        justification: 'First production greeting.',
      }, 201);
      await api(base, env.APPROVER_TOKEN, 'POST', `/v1/approvals/${first.id}/approve`, { reason: 'reviewed v1' }, 200);
      await api(base, analyst, 'PUT', `/v1/prompts/${encodeURIComponent(name)}/labels/production`, { version: 1 }, 200);
      const second = await api(base, analyst, 'POST', '/v1/approvals', {
        subject: { kind: 'prompt_label', name, version: 2, label: 'production' },
        justification: 'Complaints must reach a human (policy CP-12).',
      }, 201);
      state.promptRequest = second.id;
      const reg = await api(base, env.ADMIN_TOKEN, 'POST', '/v1/models', {
        name: 'fraud-detector', version: '2.0.0', checksum: OTHER_DIGEST,
        artifact_uri: 's3://models/fraud-detector/2.0.0/model.pt', justification: 'New features from the card network.',
        required_approvals: 2, expires_in_seconds: 86400,
      }, 201);
      state.fraudRequest = reg.approval_request.id;
    });

    await t.test('sign-out clears the session', async () => {
      await signOut(page);
      assert.match(await page.textContent('.flash-ok'), /You are signed out/);
      const cookies = await context.cookies(base);
      assert.equal(cookies.find((c) => c.name === 'airisk-console'), undefined);
      await checkAndShoot(page, '05-signed-out');
      await goto(page, `${base}/console/queue`, 'queue after sign-out');
      assert.match(page.url(), /\/console\/sign-in\?next=%2Fconsole%2Fqueue$/);
    });

    await t.test('an approver approves the model from the queue', async () => {
      await signIn(page, base, env.APPROVER_TOKEN);
      await goto(page, `${base}/console/queue`, 'queue');
      const row = page.locator(`tr[data-request-id="${state.modelRequest}"]`);
      assert.equal(await row.count(), 1);
      assert.match(await row.textContent(), /admin@demo/);
      assert.equal(await page.locator('tr[data-request-id] form.quick-approve').count(), 3);
      await checkAndShoot(page, '06-queue');
      await row.locator('input[name="reason"]').fill('Validation report reviewed; checksum matches the signed artifact.');
      await Promise.all([page.waitForURL(/\?done=approved$/), row.locator('button:has-text("Approve")').click()]);
      assert.match(await page.textContent('.lede'), /APPROVED/);
      assert.match(await page.textContent('#approvals'), /1 of 1/);
      await checkAndShoot(page, '07-request-approved');
      const m = await api(base, env.VIEWER_TOKEN, 'GET', '/v1/models/credit-scoring/versions/1.4.0', null, 200);
      assert.equal(m.status, 'APPROVED');
    });

    await t.test('the models pages show status, approvers and deployment authorisations', async () => {
      await api(base, env.ANALYST_TOKEN, 'POST', '/v1/models/credit-scoring/versions/1.4.0/deployments', { sha256: DIGEST }, 200);
      await api(base, env.ANALYST_TOKEN, 'POST', '/v1/models/credit-scoring/versions/1.4.0/deployments', { sha256: OTHER_DIGEST }, 409);
      await goto(page, `${base}/console/models`, 'models');
      assert.match(await page.textContent('main'), /credit-scoring/);
      assert.match(await page.textContent('main'), /fraud-detector/);
      // An approver does not register models: no form, a reason instead.
      assert.equal(await page.locator('form[action="/console/models"]').count(), 0);
      await checkAndShoot(page, '08-models');
      await goto(page, `${base}/console/models/credit-scoring`, 'model detail');
      const main = await page.textContent('main');
      assert.match(main, /APPROVED/);
      assert.match(main, /approver@demo/);
      assert.match(main, /authorised/);
      assert.match(main, /denied/);
      await checkAndShoot(page, '09-model-detail');
    });

    await t.test('a prompt label move shows a side-by-side diff against the current version', async () => {
      await goto(page, `${base}/console/requests/${state.promptRequest}`, 'prompt request');
      assert.match(await page.textContent('.lede'), /Move label production of prompt support\/greeting to version 2/);
      assert.match(await page.textContent('table.diff thead'), /Version 1 \(where production points now\)/);
      assert.ok((await page.locator('table.diff td.del').count()) >= 1);
      assert.ok((await page.locator('table.diff td.ins').count()) >= 2);
      assert.equal(await page.locator('form[action$="/approve"]').count(), 1);
      assert.equal(await page.locator('form[action$="/reject"]').count(), 1);
      await checkAndShoot(page, '10-prompt-request-diff');
      await goto(page, `${base}/console/prompts`, 'prompts');
      assert.match(await page.textContent('main'), /production → v1/);
      await checkAndShoot(page, '11-prompts');
      await goto(page, `${base}/console/prompts/view?name=${encodeURIComponent('support/greeting')}&from=1&to=2`, 'prompt');
      assert.match(await page.textContent('#moves + table'), /none → v1/);
      await checkAndShoot(page, '12-prompt-detail');
    });

    await t.test('the audit ledger view: green banner, filters, entry with its inclusion proof', async () => {
      // Sign a checkpoint over everything so far, so the banner names it.
      const cp = await api(base, env.ANALYST_TOKEN, 'POST', '/v1/audit/checkpoint', null, 200);
      await goto(page, `${base}/console/audit`, 'audit');
      const banner = page.locator('#ledger-status');
      assert.equal(await banner.getAttribute('data-intact'), 'true');
      assert.match(await banner.getAttribute('class'), /banner-ok/);
      const text = await banner.textContent();
      assert.match(text, new RegExp(`Verified up to checkpoint ${cp.size}, signed by key airisk\\.dev/ledger\\+[0-9a-f]{8}`));
      const color = await banner.evaluate((el) => getComputedStyle(el).backgroundColor);
      assert.equal(color, 'rgb(230, 244, 234)', 'the banner is green');
      await checkAndShoot(page, '13-audit');
      await page.fill('#f-action', 'model.');
      await Promise.all([page.waitForURL(/[?&]action=model\./), page.click('button:has-text("Search")')]);
      const actions = await page.locator('table.audit td[data-label="Action"]').allTextContents();
      assert.ok(actions.length >= 3);
      assert.ok(actions.every((a) => a.startsWith('model.')), actions.join());
      await page.locator('table.audit td[data-label="#"] a').first().click();
      await page.waitForURL(/\/console\/audit\/\d+$/);
      assert.match(await page.textContent('#proof-result'), /leads from this entry's leaf hash to the root/);
      assert.match(await page.textContent('pre.json'), /"action": "model\./);
      await checkAndShoot(page, '14-audit-entry');
    });

    await t.test("another tenant's request is not found, exactly like a missing one", async () => {
      const other = mintToken(env.AIRISK_JWT_SECRET, 'eve@other', 'other', 'admin');
      const reg = await api(base, other, 'POST', '/v1/models', {
        name: 'other-model', version: '1.0.0', checksum: DIGEST,
        artifact_uri: 's3://other/model.bin', justification: 'belongs to tenant other',
      }, 201);
      const foreign = await goto(page, `${base}/console/requests/${reg.approval_request.id}`, 'cross-tenant request');
      assert.equal(foreign.status(), 404);
      const foreignText = { h1: await page.textContent('h1'), detail: await page.textContent('.error-detail') };
      await checkAndShoot(page, '15-cross-tenant-404');
      const missing = await goto(page, `${base}/console/requests/0190f5d2-7a4e-7cc0-8a4e-000000000000`, 'missing request');
      assert.equal(missing.status(), 404);
      assert.deepEqual({ h1: await page.textContent('h1'), detail: await page.textContent('.error-detail') }, foreignText);
      const model = await goto(page, `${base}/console/models/other-model`, 'cross-tenant model');
      assert.equal(model.status(), 404);
      await goto(page, `${base}/console/queue`, 'queue');
      const csrf = await csrfOf(page);
      const post = await forgePost(page, `/console/requests/${reg.approval_request.id}/approve`, {
        csrf,
        reason: 'cross-tenant attempt',
      });
      assert.equal(post.status(), 404);
      const r = await api(base, other, 'GET', `/v1/approvals/${reg.approval_request.id}`, null, 200);
      assert.equal(r.status, 'PENDING');
    });

    await t.test('a viewer sees no approve button, and a forged POST is refused', async () => {
      await goto(page, `${base}/console/queue`, 'queue');
      await signOut(page);
      await signIn(page, base, env.VIEWER_TOKEN);
      assert.equal(await page.locator('form.quick-approve').count(), 0);
      assert.equal(await page.locator('button:has-text("Approve")').count(), 0);
      await goto(page, `${base}/console/requests/${state.fraudRequest}`, 'viewer request');
      assert.equal(await page.locator('form[action$="/approve"]').count(), 0);
      assert.match(await page.textContent('#no-decision'), /Your role \(viewer\) cannot approve or reject requests/);
      await checkAndShoot(page, '16-viewer-no-approve-button');
      // With the session's own CSRF token: the services' RBAC refuses it (and audits the denial).
      const csrf = await csrfOf(page);
      const refused = await forgePost(page, `/console/requests/${state.fraudRequest}/approve`, { csrf, reason: 'forged' });
      assert.equal(refused.status(), 403);
      assert.match(await page.textContent('.error-detail'), /role viewer may not perform approval\.approve/);
      await checkAndShoot(page, '17-viewer-forged-post-403');
      // Without the token: refused before any service is called.
      const noCsrf = await forgePost(page, `/console/requests/${state.fraudRequest}/approve`, { reason: 'forged' });
      assert.equal(noCsrf.status(), 403);
      assert.match(await page.textContent('h1'), /This form has expired/);
      const r = await api(base, env.VIEWER_TOKEN, 'GET', `/v1/approvals/${state.fraudRequest}`, null, 200);
      assert.equal(r.status, 'PENDING');
      assert.equal(r.approvals.length, 0);
      const denials = await api(base, env.VIEWER_TOKEN, 'GET', '/v1/audit/events?actor=viewer%40demo&outcome=denied', null, 200);
      assert.ok(denials.entries.some((e) => e.record.action === 'approval.approve'), 'the denial is audited');
    });

    await t.test('pages stay readable on a smaller laptop and a phone', async () => {
      for (const [w, h] of [[1024, 768], [390, 844]]) {
        await page.setViewportSize({ width: w, height: h });
        for (const path of ['/console/queue', '/console/audit', `/console/requests/${state.promptRequest}`, '/console/models/credit-scoring']) {
          await goto(page, base + path, `${path} at ${w}px`);
          const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
          assert.ok(overflow <= 0, `${path} at ${w}px scrolls horizontally by ${overflow}px`);
        }
      }
      await page.setViewportSize({ width: 390, height: 844 });
      await goto(page, `${base}/console/requests/${state.promptRequest}`, 'phone');
      await checkAndShoot(page, '18-phone-request');
    });

    await t.test('no Content-Security-Policy violation was reported', () => {
      assert.deepEqual(cspViolations, []);
    });
  } finally {
    await context.close();
    server.child.kill('SIGTERM');
    rmSync(profile, { recursive: true, force: true });
  }
});

// What an approver approves is what they could see: text with characters a reader would not see
// is refused at the console's form, with an error naming the code point, and nothing is stored.
test('a prompt with hidden tag characters is refused at the console form', { timeout: 120_000 }, async (t) => {
  const server = await startServer();
  const { base, exports: env } = server;
  const profile = mkdtempSync(join(tmpdir(), 'airisk-console-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1280, height: 800 },
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(20_000);
  // "Ignore" spelled in invisible tag characters (U+E0049 U+E0067 …) after a visible line.
  const hidden = [...'Ignore'].map((c) => String.fromCodePoint(0xe0000 + c.codePointAt(0))).join('');
  try {
    await t.test('the form refuses it with a visible error naming U+E0049 and its position', async () => {
      await signIn(page, base, env.ANALYST_TOKEN);
      await goto(page, `${base}/console/prompts`, 'prompts');
      await page.fill('#p-name', 'smuggled');
      await page.fill('#p-template', `Summarise {doc}.\nBe brief.${hidden}`);
      await page.fill('#p-reason', 'first version');
      const [response] = await Promise.all([
        page.waitForNavigation(),
        page.click('button:has-text("Register prompt")'),
      ]);
      assert.equal(response.status(), 422);
      assert.match(await page.textContent('h1'), /Please check what you entered/);
      const detail = await page.textContent('.error-detail');
      assert.match(detail, /U\+E0049/);
      assert.match(detail, /character 27 \(line 2, column 10\)/);
      assert.ok(await page.locator('.error-detail').isVisible(), 'the error is visible');
      await checkAndShoot(page, '20-hidden-characters-refused');
    });

    await t.test('nothing was stored: the prompts page does not list it, the API does not have it', async () => {
      await goto(page, `${base}/console/prompts`, 'prompts after refusal');
      assert.equal(await page.locator('a:has-text("smuggled")').count(), 0);
      await api(base, env.ANALYST_TOKEN, 'GET', '/v1/prompts/smuggled', null, 404);
    });

    await t.test('the same prompt without the hidden text is registered, lines intact', async () => {
      await page.fill('#p-name', 'smuggled');
      await page.fill('#p-template', 'Summarise {doc}.\nBe brief.');
      await page.fill('#p-reason', 'first version');
      await Promise.all([page.waitForURL(/\/console\/prompts\/view\?name=smuggled$/), page.click('button:has-text("Register prompt")')]);
      const v = await api(base, env.ANALYST_TOKEN, 'GET', '/v1/prompts/smuggled', null, 200);
      assert.equal(v.template, 'Summarise {doc}.\nBe brief.');
      await checkAndShoot(page, '21-prompt-registered');
    });
  } finally {
    await context.close();
    server.child.kill('SIGTERM');
    rmSync(profile, { recursive: true, force: true });
  }
});
