//! What the layer reports (feature `metrics`): the facade's counters, histograms and gauges, and
//! the `auth_call` span, for a scripted sequence on the paused clock; and the demo's Prometheus
//! endpoint against an emulation's own counts.

#[path = "../support/mod.rs"]
mod support;

mod demo;
mod facade;
