// A real OpenID provider (panva/oidc-provider) for the end-to-end tests, with revocation,
// introspection and DPoP on (a DPoP proof at the token endpoint must carry the provider's nonce),
// and the client credentials grant for these clients:
//
// - `orders`: `private_key_jwt` (ES256), its public keys the `jwks` option, when given;
// - `orders-basic`, `orders-post` and `orders-jwt`: `client_secret_basic`, `client_secret_post`
//   and `client_secret_jwt` (HS256), each with a random secret of 43 characters made at start;
// - `orders-exchange`: `client_secret_basic`, for the token exchange grant (RFC 8693) alone, which
//   oidc-provider leaves to `registerGrantType`: registered below, it takes as `subject_token` an
//   access token the provider issued and still holds (`subject_token_type` `...:access_token`),
//   then issues as the provider's own client credentials grant does (client authentication, DPoP
//   and certificate binding, `resource`, `scope` all the provider's), answering with
//   `issued_token_type`; the `audience` asked for is counted;
// - with the `tls` option, over HTTPS: `orders-mtls`, `tls_client_auth` by a certificate the
//   `tls.ca` authority issued for the SAN DNS name `tls.san_dns`, and `orders-self-signed`,
//   `self_signed_tls_client_auth` by the certificate `tls.self_signed`; their access tokens bound
//   to the certificate (RFC 8705, `x5t#S256`). As deployments do, the issuer's listener asks no
//   client for a certificate; a second listener does, and the metadata names its token,
//   revocation and introspection endpoints as the `mtls_endpoint_aliases` (RFC 8705 §5), where a
//   client authenticating by its certificate must go.
//
// Resource indicators (RFC 8707): any absolute URI is a resource the provider issues tokens for
// (opaque, with the scope `read`); the resources asked for are counted.
//
// Beside the provider, protected resources that take only tokens the provider issued and still
// holds, each counting what it served, refused and saw wrong:
//
// - `GET /resource`: DPoP-bound tokens with a proof verified by `jose` (signature with the
//   embedded key, `typ`, `htm`, `htu`, `ath`, a fresh `jti`, the token bound to the proof's key),
//   carrying the resource's own nonce. A gateway in front of it (a gRPC server asking it about
//   each call, say) names the call it forwards in `x-forwarded-method` and `x-forwarded-uri`: the
//   proof's `htm` and `htu` must then be that call's method and URL instead of this request's;
// - `GET /bearer-resource/CLIENT`: bearer tokens issued to CLIENT and bound to nothing;
// - `GET /mtls-resource/CLIENT`: tokens issued to CLIENT, bound to the certificate of the
//   connection they come over;
//
// And on a plain HTTP listener of its own, the tests' controls:
//
// - `POST /revoke/CLIENT`: destroys every live access token of CLIENT in the provider's store,
//   answering `{"revoked": N}`;
// - `POST /mint/CLIENT`: an access token for CLIENT put in the provider's store directly (no call
//   at the token endpoint, no fault), answering `{"token": VALUE}`: a subject token for exchange;
// - `POST /destroy/TOKEN`: destroys the access token TOKEN, answering `{"destroyed": true|false}`;
// - `GET /stats`: the counts (`stats` below).
//
// The one argument is a JSON object of options: `jwks`; `tls` (`cert`, `key`: the server's
// certificate and key, `ca`: the authority of `tls_client_auth` certificates, `san_dns`,
// `self_signed`, all PEM but the name); `faults` (`token_rate`: the share of token endpoint calls
// answered 503 before the provider sees them, `revocation_rate`: the share of resource answers
// after which the token served is destroyed, `seed`: the draws' seed, one sequence for each).
// `token_ttl`: access tokens' lifetime in seconds (600 when absent); `subject`: mint an access token
// for the client `workload` at start (a subject token to exchange). Listens on free loopback ports
// and prints `{"issuer": ..., "mtls": ..., "admin": ..., "secrets": {CLIENT: SECRET}, "subject":
// ...}` once ready (`mtls`: the mutual TLS listener's origin, with the `tls` option; `subject`,
// with the `subject` option).
import crypto from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { calculateJwkThumbprint, EmbeddedJWK, jwtVerify } from 'jose';
import Provider, { errors } from 'oidc-provider';
import { handler as clientCredentialsGrant } from 'oidc-provider/lib/actions/grants/client_credentials.js';
import * as grantHelperFunctions from 'oidc-provider/lib/helpers/grants.js';

const options = JSON.parse(process.argv[2]);
const { tls, faults = {} } = options;

/** What the provider and its resources did, for `GET /stats`. */
const stats = {
  // Tokens issued at the token endpoint, by client.
  logins: {},
  // Token endpoint errors, by error code (`use_dpop_nonce`, `invalid_client`, ...).
  token_errors: {},
  // Token endpoint calls answered 503 by the fault injection.
  token_faults: 0,
  // Requests served 200, by client.
  served: {},
  // Requests refused for a token the provider issued and no longer holds (revoked, expired).
  refused: 0,
  // Requests the DPoP resource answered with its nonce challenge.
  nonce_challenges: 0,
  // Tokens issued by exchange, by the `audience` asked for (`none` without one).
  exchanges: {},
  // Tokens issued for a resource indicator, by the `resource` asked for.
  resources: {},
  // What no correct client sends, by reason.
  violations: {},
  // Resource answers after which the fault injection destroyed the token served (unless the
  // controls had just done so).
  random_revocations: 0,
  // Live tokens destroyed by `POST /revoke/CLIENT`.
  admin_revocations: 0,
  // Access tokens destroyed in the provider's store, each once, whatever the cause: the
  // revocation endpoint, the controls, the fault injection.
  destroyed: 0,
};
const count = (table, key) => {
  table[key] = (table[key] || 0) + 1;
};

/** A seeded draw of `true` with probability `rate` (mulberry32), or `null` when off. */
function draws(rate, seed) {
  if (!rate) return null;
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296 < rate;
  };
}
const tokenFault = draws(faults.token_rate, faults.seed ?? 0);
const revocation = draws(faults.revocation_rate, (faults.seed ?? 0) + 1);

// Every access token the provider issued (its value is its id), and its client while it lives.
const issued = new Set();
const live = new Map();
const dying = new Set();
/** Destroys the access token `token` unless it is gone or going (the revocation endpoint, the
 * controls and the fault injection may hold it at once): whether this call destroyed it. */
async function destroy(token) {
  if (!live.has(token.jti) || dying.has(token.jti)) return false;
  dying.add(token.jti);
  await token.destroy();
  dying.delete(token.jti);
  return true;
}

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';

const common = { grant_types: ['client_credentials'], response_types: [], redirect_uris: [] };
const secrets = Object.fromEntries(
  ['orders-basic', 'orders-post', 'orders-jwt', 'orders-exchange', 'workload'].map((id) => [
    id,
    crypto.randomBytes(32).toString('base64url'),
  ]),
);
const clients = [
  { client_id: 'orders-basic', token_endpoint_auth_method: 'client_secret_basic' },
  { client_id: 'orders-exchange', token_endpoint_auth_method: 'client_secret_basic', grant_types: [TOKEN_EXCHANGE] },
  // The owner of subject tokens minted by the controls.
  { client_id: 'workload', token_endpoint_auth_method: 'client_secret_basic' },
  { client_id: 'orders-post', token_endpoint_auth_method: 'client_secret_post' },
  {
    client_id: 'orders-jwt',
    token_endpoint_auth_method: 'client_secret_jwt',
    token_endpoint_auth_signing_alg: 'HS256',
  },
].map((client) => ({ ...common, ...client, client_secret: secrets[client.client_id] }));
if (options.jwks) {
  clients.push({
    client_id: 'orders',
    token_endpoint_auth_method: 'private_key_jwt',
    token_endpoint_auth_signing_alg: 'ES256',
    jwks: options.jwks,
    ...common,
  });
}
if (tls) {
  const selfSigned = new crypto.X509Certificate(tls.self_signed);
  clients.push(
    {
      client_id: 'orders-mtls',
      token_endpoint_auth_method: 'tls_client_auth',
      tls_client_auth_san_dns: tls.san_dns,
      tls_client_certificate_bound_access_tokens: true,
      ...common,
    },
    {
      client_id: 'orders-self-signed',
      token_endpoint_auth_method: 'self_signed_tls_client_auth',
      // The registered certificate, as RFC 8705 2.2 has it: a JWK with the certificate in `x5c`.
      jwks: {
        keys: [{ ...selfSigned.publicKey.export({ format: 'jwk' }), x5c: [selfSigned.raw.toString('base64')] }],
      },
      tls_client_certificate_bound_access_tokens: true,
      ...common,
    },
  );
}

/** The certificate the client presented on this request's connection, if any. */
function peerCertificate(socket) {
  const raw = socket.getPeerCertificate?.()?.raw;
  return raw ? new crypto.X509Certificate(raw) : undefined;
}

// The issuer's listener asks no client for a certificate; with `tls`, a second one (the mutual TLS
// aliases) asks every client for one, and takes any: whether `tls.ca` issued it is the provider's
// to decide.
const server = tls ? https.createServer({ cert: tls.cert, key: tls.key }) : http.createServer();
const mtlsServer = tls
  && https.createServer({ cert: tls.cert, key: tls.key, ca: tls.ca, requestCert: true, rejectUnauthorized: false });
/** Listens on a free loopback port: the origin. */
const listening = (listener, scheme) => new Promise((resolve) => {
  listener.listen(0, '127.0.0.1', () => resolve(`${scheme}://127.0.0.1:${listener.address().port}`));
});
const issuer = await listening(server, tls ? 'https' : 'http');
const mtls = mtlsServer && (await listening(mtlsServer, 'https'));
const provider = new Provider(issuer, {
  clients,
  clientAuthMethods: [
    'client_secret_basic',
    'client_secret_post',
    'client_secret_jwt',
    'private_key_jwt',
    ...(tls ? ['tls_client_auth', 'self_signed_tls_client_auth'] : []),
  ],
  ...(mtls && {
    discovery: {
      mtls_endpoint_aliases: {
        token_endpoint: `${mtls}/token`,
        revocation_endpoint: `${mtls}/token/revocation`,
        introspection_endpoint: `${mtls}/token/introspection`,
      },
    },
  }),
  features: {
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      getResourceServerInfo: (ctx, resource) => ({ scope: 'read', audience: resource, accessTokenFormat: 'opaque' }),
    },
    revocation: { enabled: true },
    introspection: { enabled: true },
    devInteractions: { enabled: false },
    dPoP: { enabled: true, nonceSecret: crypto.randomBytes(32), requireNonce: () => true },
    mTLS: {
      enabled: !!tls,
      certificateBoundAccessTokens: true,
      tlsClientAuth: true,
      selfSignedTlsClientAuth: true,
      getCertificate: (ctx) => peerCertificate(ctx.socket),
      // The handshake asked for a certificate and took any: whether `tls.ca` issued it.
      certificateAuthorized: (ctx) => ctx.socket.authorized,
      // The clients here register a SAN DNS name only: it must be among the certificate's.
      certificateSubjectMatches: (ctx, property, expected) =>
        property === 'tls_client_auth_san_dns'
        && peerCertificate(ctx.socket)?.checkHost(expected, { subject: 'never', wildcards: false }) !== undefined,
    },
  },
  scopes: ['read'],
  ttl: { ClientCredentials: options.token_ttl ?? 600 },
});

// The token endpoint's faults come before the provider reads the call.
provider.use(async (ctx, next) => {
  if (tokenFault && ctx.method === 'POST' && ctx.path === '/token' && tokenFault()) {
    stats.token_faults += 1;
    ctx.status = 503;
    ctx.body = { error: 'temporarily_unavailable' };
    return;
  }
  await next();
});
provider.on('grant.success', (ctx) => {
  count(stats.logins, ctx.oidc.client.clientId);
  if (ctx.oidc.params.resource) count(stats.resources, ctx.oidc.params.resource);
});
provider.on('grant.error', (ctx, error) => count(stats.token_errors, error.error));

provider.on('client_credentials.saved', (token) => {
  issued.add(token.jti);
  live.set(token.jti, token.clientId);
});
// Counted once per token, whoever destroys it first.
provider.on('client_credentials.destroyed', (token) => {
  if (live.delete(token.jti)) stats.destroyed += 1;
});

// Token exchange (RFC 8693): the subject token checked, the new token issued by the provider's
// own client credentials grant.
const grantHelpers = Object.fromEntries(
  Object.entries(grantHelperFunctions).map(([name, helper]) => [name, helper.bind(undefined, provider)]),
);
provider.registerGrantType(
  TOKEN_EXCHANGE,
  async (ctx) => {
    const { subject_token: subject, subject_token_type: subjectType, audience } = ctx.oidc.params;
    if (!subject || subjectType !== ACCESS_TOKEN_TYPE) {
      throw new errors.InvalidRequest(`subject_token and subject_token_type ${ACCESS_TOKEN_TYPE} are required`);
    }
    const token = await provider.ClientCredentials.find(subject);
    if (!token || token.isExpired) throw new errors.InvalidGrant('subject_token is not a live access token');
    await clientCredentialsGrant(provider, grantHelpers, ctx);
    ctx.body.issued_token_type = ACCESS_TOKEN_TYPE;
    count(stats.exchanges, audience ?? 'none');
  },
  ['subject_token', 'subject_token_type', 'audience', 'resource', 'scope', 'requested_token_type'],
  ['resource', 'audience'],
);

const resources = {
  resource: dpopResource(provider, `${issuer}/resource`),
  'bearer-resource': bearerResource(provider, false),
  'mtls-resource': bearerResource(provider, true),
};
const callback = provider.callback();
for (const listener of [server, mtlsServer].filter(Boolean)) {
  listener.on('request', (req, res) => {
    const [, resource, client] = req.url.split('?')[0].split('/');
    if (resources[resource]) {
      resources[resource](req, res, client);
    } else {
      callback(req, res);
    }
  });
}

/** A new access token for `client`, put in the provider's store directly: its value. */
async function mint(client) {
  const token = new provider.ClientCredentials({ client: await provider.Client.find(client), scope: 'read' });
  return token.save();
}

// The tests' controls, on a plain HTTP listener of their own.
const admin = http.createServer(async (req, res) => {
  const [, action, client] = req.url.split('?')[0].split('/');
  if (action === 'mint' && req.method === 'POST') {
    reply(res, 200, { token: await mint(client) });
  } else if (action === 'destroy' && req.method === 'POST') {
    const token = await provider.ClientCredentials.find(client);
    reply(res, 200, { destroyed: !!token && (await destroy(token)) });
  } else if (action === 'stats') {
    reply(res, 200, stats);
  } else if (action === 'revoke' && req.method === 'POST') {
    let revoked = 0;
    for (const [jti, owner] of [...live]) {
      const token = owner === client && (await provider.ClientCredentials.find(jti));
      if (token && (await destroy(token))) revoked += 1;
    }
    stats.admin_revocations += revoked;
    reply(res, 200, { revoked });
  } else {
    reply(res, 404, {});
  }
});
admin.listen(0, '127.0.0.1', async () => {
  const controls = `http://127.0.0.1:${admin.address().port}`;
  const subject = options.subject ? await mint('workload') : undefined;
  console.log(JSON.stringify({ issuer, mtls, admin: controls, secrets, subject }));
});

function reply(res, status, body, headers = {}) {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

/** A request no correct client sends: counted by `reason`, and refused. */
function violation(res, reason, challenge) {
  count(stats.violations, reason);
  res.writeHead(401, { 'www-authenticate': challenge });
  res.end();
}

/**
 * The token `value` as the provider holds it, checked against `client`: `{ token }` when it
 * lives and was issued to `client`; otherwise `{ dead: true }` for one the provider issued and
 * destroyed (revoked) or let expire, or `{ wrong }` naming the violation.
 */
async function lookup(provider, value, client) {
  const token = await provider.ClientCredentials.find(value);
  if (token && !token.isExpired) {
    if (client !== undefined && token.clientId !== client) return { wrong: 'a token issued to another client' };
    return { token };
  }
  return issued.has(value) ? { dead: true } : { wrong: 'a token the provider never issued' };
}

/** A 200 for `client`, after which the token served may be destroyed, as the faults draw. */
async function serve(res, client, token, headers) {
  count(stats.served, client);
  if (revocation && revocation()) {
    stats.random_revocations += 1;
    await destroy(token);
  }
  reply(res, 200, { ok: true }, headers);
}

/** The resource taking bearer tokens issued to the client its path names: bound to nothing, or
 * (`mtls`) bound to the certificate of the connection they come over. */
function bearerResource(provider, mtls) {
  const challenge = (error) => `Bearer error="${error}"`;
  return async (req, res, client) => {
    const [scheme, value] = (req.headers.authorization || '').split(' ');
    if (scheme !== 'Bearer' || !value) return violation(res, 'no bearer token', challenge('invalid_request'));
    const { token, dead, wrong } = await lookup(provider, value, client);
    if (wrong) return violation(res, wrong, challenge('invalid_token'));
    if (dead) {
      stats.refused += 1;
      return reply(res, 401, {}, { 'www-authenticate': challenge('invalid_token') });
    }
    if (token.jkt) return violation(res, 'a DPoP-bound token as a bearer token', challenge('invalid_token'));
    if (mtls) {
      const bound = token['x5t#S256'];
      const certificate = peerCertificate(req.socket);
      if (!bound) return violation(res, 'an unbound token at the mutual TLS resource', challenge('invalid_token'));
      if (!certificate) {
        return violation(res, 'a certificate-bound token over a connection without a certificate', challenge('invalid_token'));
      }
      if (crypto.hash('sha256', certificate.raw, 'base64url') !== bound) {
        return violation(res, 'a certificate-bound token over a connection with another certificate', challenge('invalid_token'));
      }
    } else if (token['x5t#S256']) {
      return violation(res, 'a certificate-bound token as a bearer token', challenge('invalid_token'));
    }
    return serve(res, client, token);
  };
}

/** The resource at `url`: 200 with `{"ok":true}` for a live DPoP-bound token and a valid
 * proof (for the forwarded call, when a gateway names one), else 401 with a `DPoP` challenge. */
function dpopResource(provider, url) {
  const nonce = crypto.randomBytes(16).toString('base64url');
  const seen = new Set();
  const challenge = (error) => `DPoP error="${error}", algs="ES256 EdDSA RS256 PS256"`;
  const refuse = (res, error) => {
    res.writeHead(401, { 'www-authenticate': challenge(error), 'dpop-nonce': nonce });
    res.end();
  };
  const wrong = (res, reason, error) => {
    count(stats.violations, reason);
    refuse(res, error);
  };
  return async (req, res) => {
    try {
      const [scheme, value] = (req.headers.authorization || '').split(' ');
      const proof = req.headers.dpop;
      if (scheme !== 'DPoP' || !value || !proof) return wrong(res, 'no DPoP token and proof', 'invalid_token');
      const { payload, protectedHeader } = await jwtVerify(proof, EmbeddedJWK, {
        typ: 'dpop+jwt',
        maxTokenAge: '60s',
      });
      const htm = req.headers['x-forwarded-method'] ?? req.method;
      const htu = req.headers['x-forwarded-uri'] ?? url;
      if (payload.htm !== htm || payload.htu !== htu || seen.has(payload.jti)) {
        return wrong(res, 'a DPoP proof for another request, or replayed', 'invalid_dpop_proof');
      }
      seen.add(payload.jti);
      if (payload.ath !== crypto.createHash('sha256').update(value).digest('base64url')) {
        return wrong(res, 'a DPoP proof for another token', 'invalid_dpop_proof');
      }
      if (payload.nonce !== nonce) {
        stats.nonce_challenges += 1;
        return refuse(res, 'use_dpop_nonce');
      }
      const { token, dead, wrong: reason } = await lookup(provider, value);
      if (reason) return wrong(res, reason, 'invalid_token');
      if (dead) {
        stats.refused += 1;
        return refuse(res, 'invalid_token');
      }
      if (token.jkt !== (await calculateJwkThumbprint(protectedHeader.jwk))) {
        return wrong(res, 'a DPoP proof by another key than the token is bound to', 'invalid_token');
      }
      return serve(res, token.clientId, token, { 'dpop-nonce': nonce });
    } catch {
      return wrong(res, 'an invalid DPoP proof', 'invalid_dpop_proof');
    }
  };
}
