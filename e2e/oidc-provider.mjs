// A real OpenID provider (the certified `oidc-provider` package) on 127.0.0.1, for the tests of
// airisk's OpenID Connect support (crates/airisk-server/tests/oidc.rs).
//
//   node e2e/oidc-provider.mjs --state DIR --keys KID:ALG[,KID:ALG...] [--port N]
//
// * Signing keys: each KID:ALG (ALG one of EdDSA, ES256, RS256) is read from DIR/KID.json, or
//   generated there on first use, so a restart with `new:ES256,old:EdDSA` publishes a new key and
//   keeps the old one as second (a rotation), and a restart with `new:ES256` drops the old one.
//   Access tokens are signed with the FIRST key.
// * Client `airisk-tests` (secret in the environment variable OIDC_TEST_CLIENT_SECRET) may use
//   the client_credentials grant; its access tokens are JWTs for the resource
//   https://airisk.test/api with audience `airisk-api` (or `another-api` for the resource
//   https://other.test/api), carrying `tenant: acme` and `role: viewer`.
// * With `--console-base URL` (airisk's public URL) and OIDC_CONSOLE_CLIENT_SECRET: the console's
//   confidential client `airisk-console` (authorization code + PKCE, client_secret_basic,
//   redirect URI URL/console/oidc/callback, post-logout URI URL/console/sign-in?signed_out=1), an
//   interactive login page of its own at /interaction/<uid> (a username field; no password: test
//   users only) and a sign-out confirmation page. Test users, whose ID tokens carry `name`,
//   `groups` and `kind: human`: `alice` and `bob` (group risk-approvers), `uma` (group canteen,
//   mapped to nothing).
// * Prints `listening <issuer>` on stdout once it accepts connections; `--port 0` picks a port.
// * Every request is counted: `GET /__stats` answers {"jwks": <JWKS requests so far>}.
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import Provider from 'oidc-provider';

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

const state = arg('state');
const keySpec = arg('keys');
const port = Number(arg('port', '0'));
const secret = process.env.OIDC_TEST_CLIENT_SECRET;
const consoleBase = arg('console-base');
const consoleSecret = process.env.OIDC_CONSOLE_CLIENT_SECRET;
if (consoleBase && !consoleSecret) {
  console.error('--console-base needs OIDC_CONSOLE_CLIENT_SECRET');
  process.exit(2);
}
if (!state || !keySpec || !secret) {
  console.error('usage: OIDC_TEST_CLIENT_SECRET=… node oidc-provider.mjs --state DIR --keys KID:ALG[,…] [--port N]');
  process.exit(2);
}
mkdirSync(state, { recursive: true });

function key(kid, alg) {
  const path = join(state, `${kid}.json`);
  if (existsSync(path)) return JSON.parse(readFileSync(path, 'utf8'));
  const pair = alg === 'EdDSA' ? generateKeyPairSync('ed25519')
    : alg === 'ES256' ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
      : alg === 'RS256' ? generateKeyPairSync('rsa', { modulusLength: 2048 })
        : null;
  if (!pair) throw new Error(`unknown algorithm ${alg}`);
  const jwk = { ...pair.privateKey.export({ format: 'jwk' }), kid, alg, use: 'sig' };
  writeFileSync(path, JSON.stringify(jwk), { mode: 0o600 });
  return jwk;
}

const keys = keySpec.split(',').map((spec) => {
  const [kid, alg] = spec.split(':');
  return key(kid, alg);
});
const signingAlg = keys[0].alg;

const resources = {
  'https://airisk.test/api': 'airisk-api',
  'https://other.test/api': 'another-api',
};

let jwksRequests = 0;
let issuer;

// The console's test users (no passwords: this provider exists for tests only).
const users = {
  alice: { name: 'Alice Approver', groups: ['risk-approvers'] },
  bob: { name: 'Bob Approver', groups: ['risk-approvers'] },
  uma: { name: 'Uma Unmapped', groups: ['canteen'] },
};

function consoleClient() {
  return {
    client_id: 'airisk-console',
    client_secret: consoleSecret,
    grant_types: ['authorization_code'],
    response_types: ['code'],
    redirect_uris: [`${consoleBase}/console/oidc/callback`],
    post_logout_redirect_uris: [`${consoleBase}/console/sign-in?signed_out=1`],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: signingAlg,
  };
}

function configuration() {
  return {
    jwks: { keys },
    clients: [...(consoleBase ? [consoleClient()] : []), {
      client_id: 'airisk-tests',
      client_secret: secret,
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      token_endpoint_auth_method: 'client_secret_post',
      id_token_signed_response_alg: signingAlg,
    }],
    findAccount: async (ctx, id) => {
      const user = users[id];
      if (!user) return undefined;
      return {
        accountId: id,
        claims: async () => ({ sub: id, name: user.name, groups: user.groups, kind: 'human' }),
      };
    },
    claims: { openid: ['sub'], profile: ['name', 'groups', 'kind'] },
    // The console reads the person's claims from the ID token (no userinfo call).
    conformIdTokenClaims: false,
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    // The console is a first-party client: no consent page.
    loadExistingGrant: async (ctx) => {
      const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
      if (grantId) return ctx.oidc.provider.Grant.find(grantId);
      if (ctx.oidc.client.clientId !== 'airisk-console') return undefined;
      const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
      grant.addOIDCScope('openid profile');
      await grant.save();
      return grant;
    },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      rpInitiatedLogout: {
        enabled: true,
        logoutSource: async (ctx, form) => {
          ctx.body = `<!DOCTYPE html><html lang="en"><head><title>Sign out</title></head><body>
<h1>Sign out of the test provider?</h1>${form}
<button id="logout-yes" type="submit" form="op.logoutForm" value="yes" name="logout">Yes, sign me out</button>
</body></html>`;
        },
      },
      resourceIndicators: {
        enabled: true,
        // Only the API test client gets JWT access tokens for the API; the console's sign-in
        // gets an ID token (and an opaque access token it does not use).
        defaultResource: (ctx, client) => (client?.clientId === 'airisk-tests' ? 'https://airisk.test/api' : undefined),
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, resource) => {
          const audience = resources[resource];
          if (!audience) throw new Error(`unknown resource ${resource}`);
          return {
            scope: 'api',
            audience,
            accessTokenTTL: 300,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: signingAlg } },
          };
        },
      },
    },
    extraTokenClaims: () => ({ tenant: 'acme', role: 'viewer' }),
  };
}

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function loginPage(res, uid, error) {
  res.setHeader('content-type', 'text/html; charset=utf-8');
  res.end(`<!DOCTYPE html><html lang="en"><head><title>Test provider: sign in</title></head><body>
<h1>Test provider: sign in</h1>
${error ? `<p id="login-error">${escape(error)}</p>` : ''}
<form method="post" action="/interaction/${escape(uid)}/login">
<label for="username">Username</label> <input id="username" name="username" autocomplete="off">
<button id="login" type="submit">Sign in</button>
</form></body></html>`);
}

async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  if (req.method === 'GET') {
    if (details.prompt.name !== 'login') {
      throw new Error(`unexpected prompt ${details.prompt.name}`);
    }
    loginPage(res, details.uid);
    return;
  }
  let body = '';
  for await (const chunk of req) body += chunk;
  const username = new URLSearchParams(body).get('username') ?? '';
  if (!users[username]) {
    loginPage(res, details.uid, `no such user ${username}`);
    return;
  }
  await provider.interactionFinished(req, res, { login: { accountId: username } }, { mergeWithLastSubmission: false });
}

const server = createServer((req, res) => {
  if (req.url.startsWith('/interaction/')) {
    interaction(req, res).catch((e) => {
      res.statusCode = 500;
      res.end(`interaction failed: ${e.message}`);
    });
    return;
  }
  if (req.url === '/__stats') {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ jwks: jwksRequests }));
    return;
  }
  if (req.url.startsWith('/jwks')) jwksRequests += 1;
  provider.callback()(req, res);
});

let provider;
server.listen(port, '127.0.0.1', () => {
  issuer = `http://127.0.0.1:${server.address().port}`;
  provider = new Provider(issuer, configuration());
  console.log(`listening ${issuer}`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
