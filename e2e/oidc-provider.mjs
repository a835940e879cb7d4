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

function configuration() {
  return {
    jwks: { keys },
    clients: [{
      client_id: 'airisk-tests',
      client_secret: secret,
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      token_endpoint_auth_method: 'client_secret_post',
      id_token_signed_response_alg: signingAlg,
    }],
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => 'https://airisk.test/api',
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

const server = createServer((req, res) => {
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
