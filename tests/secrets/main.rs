//! Secrets never reach an error or a log. Every test in this binary captures tracing output
//! (see `support::capture`).

#[path = "../support/mod.rs"]
mod support;

mod logs;
mod secrets;
