//! [`CapturedLogs`]: a writer for a `tracing` subscriber that keeps everything it is given, so a
//! test can read back the log lines a run wrote (and check what they hold, and what they never
//! hold).

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

/// Everything written to it, shared by its clones: hand a subscriber [`CapturedLogs::writer`]
/// (or a clone, as a `Write`), then read [`CapturedLogs::text`].
#[derive(Debug, Clone, Default)]
pub struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl CapturedLogs {
    /// An empty capture.
    pub fn new() -> Self {
        Self::default()
    }

    /// What a subscriber's `with_writer` takes: each call hands out a writer into this capture
    /// (`tracing_subscriber` makes a writer per event from any `Fn() -> impl Write`).
    pub fn writer(&self) -> impl Fn() -> CapturedLogs + Send + Sync + 'static {
        let capture = self.clone();
        move || capture.clone()
    }

    /// Everything written so far, as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        let bytes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_writer_of_a_capture_writes_into_the_same_text() {
        let logs = CapturedLogs::new();
        let make = logs.writer();
        make().write_all(b"one\n").unwrap();
        make().write_all(b"two\n").unwrap();
        logs.clone().write_all(b"three\n").unwrap();
        assert_eq!(logs.text(), "one\ntwo\nthree\n");
        assert_eq!(CapturedLogs::new().text(), "");
    }
}
