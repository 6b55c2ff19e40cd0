//! One auth call however many requests wait for it: waiters, cancellation, services and layers
//! sharing a slot or not, and the token each request carries.

#[path = "../support/mod.rs"]
mod support;

mod apply;
mod flight;
mod keyed;
mod keyed_store;
mod paused_clock;
mod waiters;
