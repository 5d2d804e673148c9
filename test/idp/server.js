// A test OpenID provider for Portcullis: the certified oidc-provider package
// configured for machine-to-machine tokens, so that authz's JWT and
// introspection paths are tested against a real issuer, not a mock.
//
// Usage: node server.js --port PORT [--issuer URL] [--jwks FILE] [--ttl SECONDS]
// (or PORT, ISSUER, JWKS_FILE, TOKEN_TTL in the environment).
//
// Once listening it prints one line to stdout and nothing more there:
//   ready <issuer>
//
// What it serves (routes are the provider's, below the issuer):
//   /.well-known/openid-configuration   discovery
//   /jwks                               public keys (counted)
//   /token                              client_credentials grant (counted)
//   /token/introspection                RFC 7662, client_secret_basic or _post (counted)
//   /token/revocation                   RFC 7009 (counted)
// Requests carrying an x-idptest-probe header are not counted.
// An admin API for the test harness, outside the provider:
//   GET  /-/admin/stats                 {"jwks":n,"token":n,"introspection":n,"revocation":n,"discovery":n}
//   POST /-/admin/rotate?keep=1|0       new RSA and EC keys; keep=1 keeps the old
//                                       ones in the JWKS (verification only), keep=0 drops them
//   GET  /-/admin/keys                  the current private JWKS (for tests that forge tokens)
//
// Clients (id / secret / resource = the JWT's aud / token format):
//   jwt-rs256  / jwt-rs256-secret  / https://api.portcullis.test/rs256  / JWT signed RS256
//   jwt-es256  / jwt-es256-secret  / https://api.portcullis.test/es256  / JWT signed ES256
//   opaque     / opaque-secret     / https://api.portcullis.test/opaque / opaque
//   portcullis / portcullis-secret / (introspects and revokes any token)
// All may ask for the scopes pets:read and pets:write.
//
// Keys: with --jwks FILE the private key set is read from FILE, or generated
// and written there when FILE does not exist, so a restart on the same file
// keeps the keys. Rotation generates new keys, writes FILE and swaps in a
// new provider instance over the same storage: opaque tokens survive a
// rotation, and JWTs signed by a dropped key stop verifying. Storage is in
// memory, so opaque tokens do not survive a restart of the process.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: process.env.PORT },
    issuer: { type: 'string', default: process.env.ISSUER },
    jwks: { type: 'string', default: process.env.JWKS_FILE },
    ttl: { type: 'string', default: process.env.TOKEN_TTL || '600' },
  },
});

const port = Number.parseInt(args.port ?? '', 10);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  fail('a --port (or PORT) between 1 and 65535 is required');
}
const issuer = args.issuer || `http://127.0.0.1:${port}`;
const ttl = Number.parseInt(args.ttl, 10);
if (!Number.isInteger(ttl) || ttl <= 0) {
  fail('--ttl (TOKEN_TTL) must be a positive number of seconds');
}

const SCOPES = 'pets:read pets:write';
const RESOURCES = {
  'https://api.portcullis.test/rs256': { format: 'jwt', alg: 'RS256' },
  'https://api.portcullis.test/es256': { format: 'jwt', alg: 'ES256' },
  'https://api.portcullis.test/opaque': { format: 'opaque' },
};
const CLIENTS = [
  { id: 'jwt-rs256', resource: 'https://api.portcullis.test/rs256' },
  { id: 'jwt-es256', resource: 'https://api.portcullis.test/es256' },
  { id: 'opaque', resource: 'https://api.portcullis.test/opaque' },
  { id: 'portcullis' },
];
const ADMIN_CLIENT = 'portcullis';

const ROUTES = {
  jwks: '/jwks',
  token: '/token',
  introspection: '/token/introspection',
  revocation: '/token/revocation',
};
const counts = { jwks: 0, token: 0, introspection: 0, revocation: 0, discovery: 0 };
const countedPaths = new Map([
  [ROUTES.jwks, 'jwks'],
  [ROUTES.token, 'token'],
  [ROUTES.introspection, 'introspection'],
  [ROUTES.revocation, 'revocation'],
  ['/.well-known/openid-configuration', 'discovery'],
]);

function fail(msg) {
  process.stderr.write(`idp: ${msg}\n`);
  process.exit(2);
}

function newKeys() {
  const stamp = `${Date.now().toString(36)}-${crypto.randomBytes(4).toString('hex')}`;
  const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
  const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
  return [
    { ...rsa, kid: `rsa-${stamp}`, use: 'sig', alg: 'RS256' },
    { ...ec, kid: `ec-${stamp}`, use: 'sig', alg: 'ES256' },
  ];
}

function writeKeys(file, keys) {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  fs.writeFileSync(tmp, JSON.stringify({ keys }, null, 2), { mode: 0o600 });
  fs.renameSync(tmp, file);
}

function loadKeys() {
  if (args.jwks && fs.existsSync(args.jwks)) {
    const set = JSON.parse(fs.readFileSync(args.jwks, 'utf8'));
    if (!Array.isArray(set.keys) || set.keys.length === 0) {
      fail(`${args.jwks} holds no keys`);
    }
    return set.keys;
  }
  const keys = newKeys();
  if (args.jwks) writeKeys(args.jwks, keys);
  return keys;
}

// One in-memory store shared by every provider instance this process
// builds, so that a key rotation does not forget issued opaque tokens.
const storage = new Map();
class MemoryAdapter {
  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    const exp = expiresIn ? Date.now() + expiresIn * 1000 : undefined;
    storage.set(this.key(id), { payload, exp });
    if (payload.grantId) {
      const grantKey = `grant:${payload.grantId}`;
      const list = storage.get(grantKey) ?? { payload: [], exp: undefined };
      list.payload.push(this.key(id));
      storage.set(grantKey, list);
    }
  }

  async find(id) {
    const entry = storage.get(this.key(id));
    if (!entry) return undefined;
    if (entry.exp !== undefined && entry.exp <= Date.now()) {
      storage.delete(this.key(id));
      return undefined;
    }
    return entry.payload;
  }

  async findByUserCode() { return undefined; }

  async findByUid() { return undefined; }

  async consume(id) {
    const entry = storage.get(this.key(id));
    if (entry) entry.payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    storage.delete(this.key(id));
  }

  async revokeByGrantId(grantId) {
    const grantKey = `grant:${grantId}`;
    for (const k of storage.get(grantKey)?.payload ?? []) storage.delete(k);
    storage.delete(grantKey);
  }
}

function buildProvider(keys) {
  const clientsByID = new Map(CLIENTS.map((c) => [c.id, c]));
  const provider = new Provider(issuer, {
    adapter: MemoryAdapter,
    jwks: { keys },
    clients: CLIENTS.map((c) => ({
      client_id: c.id,
      client_secret: `${c.id}-secret`,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
      scope: SCOPES,
    })),
    routes: ROUTES,
    scopes: ['pets:read', 'pets:write'],
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: {
        enabled: true,
        // The portcullis client introspects other clients' tokens, as a
        // gateway does.
        allowedPolicy: async (_ctx, client, token) => client.clientId === ADMIN_CLIENT
          || client.clientId === token.clientId,
      },
      revocation: {
        enabled: true,
        allowedPolicy: async (_ctx, client, token) => client.clientId === ADMIN_CLIENT
          || client.clientId === token.clientId,
      },
      resourceIndicators: {
        enabled: true,
        defaultResource: async (_ctx, client) => clientsByID.get(client.clientId)?.resource,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx, resource) => {
          const rs = RESOURCES[resource];
          if (!rs) {
            const err = new Error('unknown resource');
            err.statusCode = 400;
            err.error = 'invalid_target';
            throw err;
          }
          const info = {
            scope: SCOPES,
            audience: resource,
            accessTokenTTL: ttl,
            accessTokenFormat: rs.format,
          };
          if (rs.format === 'jwt') info.jwt = { sign: { alg: rs.alg } };
          return info;
        },
      },
    },
    enabledJWA: {
      idTokenSigningAlgValues: ['RS256', 'ES256'],
    },
    ttl: {
      ClientCredentials: () => ttl,
      AccessToken: () => ttl,
    },
  });
  provider.on('server_error', (_ctx, err) => {
    process.stderr.write(`idp: server_error: ${err?.stack ?? err}\n`);
  });
  return provider;
}

let keys = loadKeys();
let provider = buildProvider(keys);
let handler = provider.callback();

function sendJSON(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(text);
}

function admin(req, res, url) {
  switch (`${req.method} ${url.pathname}`) {
    case 'GET /-/admin/stats':
      return sendJSON(res, 200, counts);
    case 'GET /-/admin/keys':
      return sendJSON(res, 200, { keys });
    case 'POST /-/admin/rotate': {
      const keep = url.searchParams.get('keep') === '1';
      const next = [...newKeys(), ...(keep ? keys : [])];
      try {
        const p = buildProvider(next);
        if (args.jwks) writeKeys(args.jwks, next);
        keys = next;
        provider = p;
        handler = p.callback();
      } catch (err) {
        return sendJSON(res, 500, { error: String(err?.message ?? err) });
      }
      return sendJSON(res, 200, { keys: keys.map((k) => k.kid) });
    }
    default:
      return sendJSON(res, 404, { error: 'no such admin route' });
  }
}

// The harness passes a value unique to this process and checks it on its
// readiness probe, so that it never mistakes another server that holds the
// port for this one.
const instance = process.env.IDPTEST_INSTANCE ?? '';

const server = http.createServer((req, res) => {
  res.setHeader('x-idptest-instance', instance);
  const url = new URL(req.url, issuer);
  if (url.pathname.startsWith('/-/admin/')) {
    admin(req, res, url);
    return;
  }
  // The harness's readiness probe says so, so that it does not count as a
  // discovery fetch by the code under test.
  const counter = countedPaths.get(url.pathname);
  if (counter && req.headers['x-idptest-probe'] === undefined) counts[counter] += 1;
  handler(req, res);
});

server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`ready ${issuer}\n`);
});
server.on('error', (err) => fail(`listen on 127.0.0.1:${port}: ${err.message}`));

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  });
}
