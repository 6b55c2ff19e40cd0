//! Mutual TLS client authentication (RFC 8705 `tls_client_auth`): the auth calls and the API
//! requests go through a hyper-util client whose rustls connector presents the client's
//! certificate; the token endpoint authenticates the client by it, and binds the tokens to it.
//! Against a local emulation whose TLS listener checks the certificate; the certificates are
//! made here with rcgen (in production they are files: see `tls_client`).
//!
//! ```text
//! cargo run --example mtls
//! ```

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tower::{ServiceBuilder, ServiceExt};
use tower_token_auth::provider::oauth2::{self, ClientAuth};
use tower_token_auth::AuthLayer;
use tower_token_auth_emulation::{Api, ClientAuth as Registered, Config, Discovery, Emulation};
use tower_token_auth_emulation::{Mtls, OAuthExtensions};

/// A client that trusts `server_ca_pem` and presents the certificate chain `cert_pem` with its
/// key `key_pem` on every TLS connection: the auth transport and the API's transport alike.
fn tls_client(
    server_ca_pem: &[u8],
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<Client<HttpsConnector<HttpConnector>, Full<Bytes>>, tower::BoxError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(server_ca_pem) {
        roots.add(cert?)?;
    }
    let chain = CertificateDer::pem_slice_iter(cert_pem).collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_slice(key_pem)?;
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_client_auth_cert(chain, key)?;
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .build();
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

#[tokio::main]
async fn main() -> Result<(), tower::BoxError> {
    // The client's certificate, issued by a CA the authorization server trusts for it.
    let ca_key = rcgen::KeyPair::generate()?;
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key)?;
    let client_key = rcgen::KeyPair::generate()?;
    let client_cert = rcgen::CertificateParams::new(vec!["orders.example.com".to_owned()])?
        .signed_by(&client_key, &ca)?;

    let idp = Emulation::start(
        Api::OAuth2,
        Config {
            extensions: OAuthExtensions {
                client_auth: Registered::TlsClientAuth {
                    san_dns: "orders.example.com".to_owned(),
                },
                mtls: Some(Mtls {
                    client_ca_pem: Some(ca.pem()),
                    ..Mtls::default()
                }),
                discovery: Some(Discovery::default()),
                ..OAuthExtensions::default()
            },
            ..Config::default()
        },
    )
    .await?;
    let server_ca = idp.server_ca_pem().ok_or("no TLS listener")?;

    let client = tls_client(
        server_ca.as_bytes(),
        client_cert.pem().as_bytes(),
        client_key.serialize_pem().as_bytes(),
    )?;
    // The endpoints come from the issuer's metadata: for an mTLS client, its
    // `mtls_endpoint_aliases`.
    let provider = oauth2::Builder::client_credentials_grant(&idp.issuer())
        .discover(&idp.issuer())
        .public_client(&idp.config().client_id)
        .client_auth(ClientAuth::TlsClientAuth)
        .build()?;
    let layer = AuthLayer::new(provider, client.clone());
    let api = ServiceBuilder::new().layer(layer.clone()).service(client);

    // A certificate-bound token is good only over a connection presenting its certificate.
    let url = idp.mtls_resource_url().ok_or("no TLS listener")?;
    for _ in 0..3 {
        let request = http::Request::get(&url).body(Full::default())?;
        let response = api.clone().oneshot(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        println!("GET {url} -> {status} ({} bytes)", body.len());
    }
    let stats = idp.stats();
    println!(
        "logins: {}, by certificate: {}, bound-token uses: {}, violations: {}",
        stats.logins, stats.client_certificates, stats.certificate_bound_uses, stats.violations
    );
    Ok(())
}
