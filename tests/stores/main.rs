//! Token stores: sessions shared between processes, leases, the Redis store and a fleet of
//! processes.

#[path = "../support/mod.rs"]
mod support;

mod fleet;
mod leases;
#[cfg(feature = "redis")]
mod redis;
mod sessions;
