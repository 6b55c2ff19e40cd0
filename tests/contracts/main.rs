//! The repository's own checks: the references of `ARCHITECTURE.md`, the events table, the
//! compiler diagnostics and the size of the public surface.

mod diagnostics;
mod events;
mod references;
mod surface;
