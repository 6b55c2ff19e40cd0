//! The repository's own checks: the references of `ARCHITECTURE.md`, the events table and the
//! compiler diagnostics.

mod diagnostics;
mod events;
mod references;
