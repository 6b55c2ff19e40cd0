// A real OpenID provider (panva/oidc-provider) for the end-to-end tests: one client, `orders`,
// authenticating with `private_key_jwt` (its public keys given as the first argument, a JWKS)
// for the client credentials grant, with revocation and introspection on. Listens on a free
// loopback port and prints `{"issuer": ...}` once ready.
import http from 'node:http';
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
    },
    scopes: ['read'],
  });
  server.on('request', provider.callback());
  console.log(JSON.stringify({ issuer }));
});
