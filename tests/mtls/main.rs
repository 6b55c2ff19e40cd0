//! Mutual TLS client authentication (RFC 8705) end to end: the layer's auth calls and requests
//! over a hyper-util client whose rustls connector presents a client certificate, against the
//! OAuth2 emulation's TLS listener, which verifies it (`tls_client_auth`,
//! `self_signed_tls_client_auth`), binds the tokens to it and counts every violation.
//!
//! Certificates are made per test with rcgen; nothing is read from disk but what the demo test
//! writes for the demo.

#[path = "../support/mod.rs"]
mod support;

mod certs;
mod demo;
mod discovery;
mod faults;
mod layer;
