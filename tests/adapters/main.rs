//! The layer in its settings: reqwest, gRPC, the token handle, `AuthService` as a tower service
//! and real hyper servers end to end.

#[path = "../support/mod.rs"]
mod support;

mod e2e;
mod grpc;
mod handle;
mod origins;
mod reqwest;
mod revoke;
mod service;
