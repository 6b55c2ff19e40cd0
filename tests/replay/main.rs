//! Replays of requests answered 401: storms, the replay budget, bodies that cannot be copied,
//! and revocation.

#[path = "../support/mod.rs"]
mod support;

mod bodies;
mod budget;
mod revocation;
mod storms;
