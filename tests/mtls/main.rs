//! Mutual TLS client authentication (RFC 8705) end to end: the layer's auth calls and requests
//! over a hyper-util client whose rustls connector presents a client certificate, against the
//! OAuth2 emulation's TLS listener, which verifies it (`tls_client_auth`,
//! `self_signed_tls_client_auth`), binds the tokens to it and counts every violation. The same
//! through the adapters: reqwest (`ReqwestTransport` and `AuthMiddleware` with a
//! `reqwest::Identity`, feature `reqwest`) and tonic (a TLS `Channel` with an `Identity` under
//! `GrpcAuthLayer`, against a gRPC server that checks each token's binding to its connection,
//! feature `tonic`); the demo with a spec file's `client_auth = "tls_client_auth"`; and against
//! a real provider, panva's oidc-provider over HTTPS (`oidc`), clean and under faults.
//!
//! Certificates are made per test with rcgen; nothing is read from disk but what the demo test
//! writes for the demo.

#[path = "../support/mod.rs"]
mod support;

mod certs;
mod demo;
mod discovery;
mod faults;
mod grpc;
mod layer;
mod oidc;
mod reqwest;
