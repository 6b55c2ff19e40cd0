//! Renewal: refreshing ahead of expiry or after it, refresh tokens rotated or kept, and how long a
//! token is taken to last.

#[path = "../support/mod.rs"]
mod support;

mod after_expiry;
mod lifetimes;
mod rotation;
mod timing;
