//! A capture of tracing output, for the tests that check what reaches the logs.
//!
//! NOTE: tracing caches each callsite's interest process-wide; a test binary that checks logs
//! should capture in every test it runs, so that no test on another thread without a subscriber
//! makes a callsite look uninteresting.
#![allow(dead_code, unreachable_pub)]

use std::sync::{Arc, Mutex};

use tracing_subscriber::fmt::format::FmtSpan;

/// Everything the tracing events of one thread wrote, at every level.
#[derive(Clone, Default)]
pub struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    /// Captures this thread's tracing output, every level, until the guard drops.
    pub fn start() -> (Self, tracing::subscriber::DefaultGuard) {
        Self::start_with(FmtSpan::NONE)
    }

    /// As [`start`](Self::start), with a line for each span that closes, its fields included.
    pub fn start_with_spans() -> (Self, tracing::subscriber::DefaultGuard) {
        Self::start_with(FmtSpan::CLOSE)
    }

    fn start_with(spans: FmtSpan) -> (Self, tracing::subscriber::DefaultGuard) {
        let capture = Capture::default();
        let writer = capture.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_span_events(spans)
            .finish();
        (capture, tracing::subscriber::set_default(subscriber))
    }

    /// What was captured so far.
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}
