// A real OpenID provider (panva/oidc-provider) for the end-to-end tests: one client, `orders`,
// authenticating with `private_key_jwt` (its public keys given as the first argument, a JWKS)
// for the client credentials grant, with revocation, introspection and DPoP on (a DPoP proof
// at the token endpoint must carry the provider's nonce). Beside it, `GET /resource`: a
// protected resource taking only DPoP-bound tokens the provider issued, each with a proof
// verified by `jose` (signature with the embedded key, `typ`, `htm`, `htu`, `ath`, a fresh
// `jti`, the token bound to the proof's key) and carrying the resource's own nonce.
// Listens on a free loopback port and prints `{"issuer": ...}` once ready.
import crypto from 'node:crypto';
import http from 'node:http';
import { calculateJwkThumbprint, EmbeddedJWK, jwtVerify } from 'jose';
import Provider from 'oidc-provider';

const jwks = JSON.parse(process.argv[2]);
const server = http.createServer();
server.listen(0, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients: [{
      client_id: 'orders',
      token_endpoint_auth_method: 'private_key_jwt',
      token_endpoint_auth_signing_alg: 'ES256',
      jwks,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
    }],
    features: {
      clientCredentials: { enabled: true },
      revocation: { enabled: true },
      introspection: { enabled: true },
      devInteractions: { enabled: false },
      dPoP: { enabled: true, nonceSecret: crypto.randomBytes(32), requireNonce: () => true },
    },
    scopes: ['read'],
  });
  const resource = protectedResource(provider, `${issuer}/resource`);
  const callback = provider.callback();
  server.on('request', (req, res) => {
    if (req.url.split('?')[0] === '/resource') {
      resource(req, res);
    } else {
      callback(req, res);
    }
  });
  console.log(JSON.stringify({ issuer }));
});

/** The resource at `url`: 200 with `{"ok":true}` for a live DPoP-bound token and a valid
 * proof, else 401 with a `DPoP` challenge. */
function protectedResource(provider, url) {
  const nonce = crypto.randomBytes(16).toString('base64url');
  const seen = new Set();
  const refuse = (res, error) => {
    res.writeHead(401, {
      'www-authenticate': `DPoP error="${error}", algs="ES256 EdDSA RS256 PS256"`,
      'dpop-nonce': nonce,
    });
    res.end();
  };
  return async (req, res) => {
    try {
      const [scheme, token] = (req.headers.authorization || '').split(' ');
      const proof = req.headers.dpop;
      if (scheme !== 'DPoP' || !token || !proof) return refuse(res, 'invalid_token');
      const { payload, protectedHeader } = await jwtVerify(proof, EmbeddedJWK, {
        typ: 'dpop+jwt',
        maxTokenAge: '60s',
      });
      if (payload.htm !== req.method || payload.htu !== url || seen.has(payload.jti)) {
        return refuse(res, 'invalid_dpop_proof');
      }
      seen.add(payload.jti);
      if (payload.ath !== crypto.createHash('sha256').update(token).digest('base64url')) {
        return refuse(res, 'invalid_dpop_proof');
      }
      if (payload.nonce !== nonce) return refuse(res, 'use_dpop_nonce');
      const issued = await provider.ClientCredentials.find(token);
      const jkt = await calculateJwkThumbprint(protectedHeader.jwk);
      if (!issued || issued.isExpired || issued.jkt !== jkt) return refuse(res, 'invalid_token');
      res.writeHead(200, { 'content-type': 'application/json', 'dpop-nonce': nonce });
      res.end('{"ok":true}');
    } catch {
      refuse(res, 'invalid_dpop_proof');
    }
  };
}
