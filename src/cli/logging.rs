//! Logging through `tracing` to stderr, routed around the progress bars so they never tear, every
//! field's control characters escaped.

use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use indicatif::MultiProgress;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::MakeExt;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::{Writer, debug_fn};

use crate::secret::Redactor;
use crate::terminal::escape_control;

/// Where log lines go: straight to stderr, or through the bars while they are drawn.
#[derive(Clone, Default)]
pub struct LogSink {
    bars: Arc<Mutex<Option<MultiProgress>>>,
    /// The plan's secret rules, once a plan is loaded: a logged error may quote a value.
    redactor: Arc<Mutex<Option<Redactor>>>,
}

impl LogSink {
    /// While set, log lines are printed above the bars instead of through them.
    pub fn attach(&self, bars: MultiProgress) {
        *self.bars.lock().unwrap_or_else(|e| e.into_inner()) = Some(bars);
    }

    pub fn detach(&self) {
        *self.bars.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// From now on, every secret value `redactor` knows is masked in log lines.
    pub fn mask_with(&self, redactor: Redactor) {
        *self.redactor.lock().unwrap_or_else(|e| e.into_inner()) = Some(redactor);
    }
}

pub struct LogLine {
    sink: LogSink,
    buffer: Vec<u8>,
}

impl Write for LogLine {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let mut line = std::mem::take(&mut self.buffer);
        if let Some(redactor) = &*self.sink.redactor.lock().unwrap_or_else(|e| e.into_inner()) {
            let text = String::from_utf8_lossy(&line);
            if let std::borrow::Cow::Owned(masked) = redactor.mask_text(&text) {
                line = masked.into_bytes();
            }
        }
        let bars = self.sink.bars.lock().unwrap_or_else(|e| e.into_inner());
        match bars.as_ref() {
            Some(bars) => bars.suspend(|| io::stderr().lock().write_all(&line)),
            None => io::stderr().lock().write_all(&line),
        }
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

impl<'a> MakeWriter<'a> for LogSink {
    type Writer = LogLine;

    fn make_writer(&'a self) -> Self::Writer {
        LogLine {
            sink: self.clone(),
            buffer: Vec::with_capacity(256),
        }
    }
}

/// Installs the subscriber: `-v` info, `-vv` debug, `-vvv` trace; `RUST_LOG` overrides.
/// Colours only on a terminal: a CI log or a file gets plain text.
pub fn init(verbosity: u8, stderr_is_terminal: bool) -> LogSink {
    let sink = LogSink::default();
    let default = match verbosity {
        0 => "warn",
        1 => "flotilla=info",
        2 => "flotilla=debug",
        _ => "flotilla=trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // Fields are escaped one by one, so that a value cannot drive the terminal or forge a line
    // while the subscriber's own colours still work.
    let fields = debug_fn(
        |writer: &mut Writer<'_>, field: &tracing::field::Field, value: &dyn std::fmt::Debug| {
            let text = format!("{value:?}");
            let text = escape_control(&text);
            if field.name() == "message" {
                write!(writer, "{text}")
            } else {
                write!(writer, "{}={text}", field.name())
            }
        },
    )
    .delimited(" ");
    let _ = tracing_subscriber::fmt()
        .fmt_fields(fields)
        .with_env_filter(filter)
        .with_writer(sink.clone())
        .with_ansi(stderr_is_terminal)
        .with_target(false)
        .try_init();
    sink
}
