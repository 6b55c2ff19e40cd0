//! Failures of the auth calls, class by class (transient, rejected, unexpected, ambiguous): backoff,
//! faults over real HTTP, bad answers, settings at their extremes and error messages.

#[path = "../support/mod.rs"]
mod support;

mod ambiguous;
mod backoff;
mod bad_answers;
mod faults;
mod messages;
mod rejected;
mod resilience;
mod settings;
mod transient;
