//! Telemetry: the process's logging. One JSON object per line on stderr (flattened events, no
//! span context), filtered by an `EnvFilter` directive such as `info` or
//! `airisk_server=debug,info`. Secrets never reach a log line: nothing logs them.
//!
//! A line is `{"timestamp":"2026-11-30T21:23:45.123456Z","level":"INFO",<the event's fields,
//! message first>,"target":"airisk_server::http"}` — the keys and values `tracing-subscriber`'s
//! own JSON formatter writes with `flatten_event(true)`, written straight into the line buffer
//! instead of through a `serde_json` map per event. An audited request writes two lines; with
//! this formatter and no spans the server's CPU per HTTP audit append went from 82–93 µs to
//! 72–84 µs (docs/AUDIT_STORAGE.md, issue 18).
//!
//! Spans are never printed, so they are switched off at their call sites unless the filter has a
//! span directive (`[name]` or `[{field=…}]`), which needs them to select events; the
//! `#[tracing::instrument]` spans on the request path are then not created at all.
//!
//! The string escaping is the one RFC 8785 and serde_json share (`"`, `\`, the control
//! characters). The ledger's canonical JSON writer escapes the same way, but it builds the bytes
//! that are hashed, into a `String`; this one streams `Debug` and `Display` values into the log
//! line without allocating, so the two are kept apart.

use std::fmt::{self, Write as _};
use std::io;

use anyhow::{Context, anyhow};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;

/// Installs the JSON logger with the filter directive `filter`, once per process.
///
/// # Errors
/// An invalid filter directive, or a logger already installed.
pub fn init(filter: &str) -> anyhow::Result<()> {
    subscriber(filter, io::stderr)?
        .try_init()
        .map_err(|e| anyhow!("could not install the logger: {e}"))
}

/// The subscriber [`init`] installs, writing its lines to `writer`.
///
/// # Errors
/// An invalid filter directive.
pub fn subscriber<W>(filter: &str, writer: W) -> anyhow::Result<impl Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let env_filter =
        EnvFilter::try_new(filter).with_context(|| format!("invalid log filter {filter:?}"))?;
    // A span directive is the only reader of spans: without one, none is created (a global
    // filter: the call sites of spans are switched off). Events and `enabled!` hints pass.
    let spans_wanted = filter.contains('[');
    let no_spans =
        tracing_subscriber::filter::filter_fn(move |meta| spans_wanted || !meta.is_span());
    Ok(tracing_subscriber::registry()
        .with(env_filter)
        .with(no_spans)
        .with(
            tracing_subscriber::fmt::layer()
                .event_format(JsonLine)
                .with_writer(writer),
        ))
}

/// The line format: see the module documentation.
struct JsonLine;

impl<S, N> FormatEvent<S, N> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut out: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        out.write_str("{\"timestamp\":\"")?;
        SystemTime.format_time(&mut out)?;
        out.write_str("\",\"level\":\"")?;
        out.write_str(meta.level().as_str())?;
        out.write_char('"')?;
        // The message first, then the other fields in the order the call site names them.
        let mut fields = Fields {
            out: &mut out,
            message: true,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.message = false;
        event.record(&mut fields);
        fields.result?;
        out.write_str(",\"target\":")?;
        string(&mut out, meta.target())?;
        out.write_str("}\n")
    }
}

/// Writes one event's fields as `,"name":value` pairs: only `message` when `message` is set, all
/// the others when it is not.
struct Fields<'a, 'w> {
    out: &'a mut Writer<'w>,
    message: bool,
    result: fmt::Result,
}

impl Fields<'_, '_> {
    /// The field's key, or `None` when this pass skips it. `r#type` is written `type`, as
    /// tracing-subscriber does.
    fn key<'f>(&self, field: &'f Field) -> Option<&'f str> {
        let name = field.name();
        if (name == "message") != self.message || self.result.is_err() {
            return None;
        }
        Some(name.strip_prefix("r#").unwrap_or(name))
    }

    fn pair(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if let Some(key) = self.key(field) {
            self.result = self
                .out
                .write_char(',')
                .and_then(|()| string(self.out, key))
                .and_then(|()| self.out.write_char(':'))
                .and_then(|()| value(self.out));
        }
    }
}

impl Visit for Fields<'_, '_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.pair(field, |out| {
            out.write_char('"')?;
            write!(Escaped(out), "{value:?}")?;
            out.write_char('"')
        });
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.pair(field, |out| string(out, value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.pair(field, |out| write!(out, "{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.pair(field, |out| write!(out, "{value}"));
    }

    // Beyond 64 bits, a string: what tracing-subscriber writes (few JSON readers take them).
    fn record_i128(&mut self, field: &Field, value: i128) {
        self.pair(field, |out| write!(out, "\"{value}\""));
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        self.pair(field, |out| write!(out, "\"{value}\""));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.pair(field, |out| write!(out, "{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // JSON has no NaN or infinity: serde_json writes them as null.
        self.pair(field, |out| {
            if value.is_finite() {
                write!(out, "{value:?}")
            } else {
                out.write_str("null")
            }
        });
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.pair(field, |out| {
            out.write_char('"')?;
            write!(Escaped(out), "{value}")?;
            out.write_char('"')
        });
    }
}

/// Writes `s` as a JSON string, quotes included.
fn string(out: &mut Writer<'_>, s: &str) -> fmt::Result {
    out.write_char('"')?;
    Escaped(out).write_str(s)?;
    out.write_char('"')
}

/// Escapes what it is given for the inside of a JSON string: `"`, `\` and the control
/// characters; everything else (all of Unicode) passes as it is, as serde_json writes it.
struct Escaped<'a, 'w>(&'a mut Writer<'w>);

impl fmt::Write for Escaped<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut clean = 0;
        for (i, b) in s.bytes().enumerate() {
            let escape = match b {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0x08 => "\\b",
                0x0c => "\\f",
                0..0x20 => "",
                _ => continue,
            };
            self.0.write_str(&s[clean..i])?;
            if escape.is_empty() {
                write!(self.0, "\\u{b:04x}")?;
            } else {
                self.0.write_str(escape)?;
            }
            clean = i + 1;
        }
        self.0.write_str(&s[clean..])
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex, PoisonError};

    use serde_json::Value;
    use tracing::{debug, error, info, info_span, trace, warn};
    use tracing_subscriber::fmt::MakeWriter;

    use super::subscriber;

    /// Collects the lines a subscriber writes.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl Lines {
        fn text(&self) -> String {
            let bytes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            String::from_utf8(bytes.clone()).expect("log lines are UTF-8")
        }
    }

    impl io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let mut bytes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            bytes.extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl MakeWriter<'_> for Lines {
        type Writer = Self;

        fn make_writer(&self) -> Self {
            self.clone()
        }
    }

    #[derive(Debug)]
    struct Failure(&'static str);

    impl std::fmt::Display for Failure {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Failure {}

    const HOSTILE: &str = "quote \" backslash \\ slash / newline \n return \r tab \t \
                           nul \0 bell \x07 backspace \x08 formfeed \x0c unit \x1f del \x7f \
                           é 漢字 👩‍💻 \u{2028} \u{feff} end";

    /// Events of every shape a call site can write, hostile strings included.
    fn emit() {
        info!("plain message");
        info!(
            route = "/v1/models",
            status = 200_u64,
            latency_ms = 1.5_f64,
            "request"
        );
        warn!(hostile = HOSTILE, "message with {} args and {HOSTILE}", 3);
        let failure = Failure("refused: \"x\"\n");
        error!(
            error = &failure as &(dyn std::error::Error + 'static),
            shown = %failure,
            listed = ?vec!["a\"b", "c\\d", "\u{1}"],
            negative = -42_i64,
            flag = true,
            nan = f64::NAN,
            infinite = f64::NEG_INFINITY,
            tiny = 1e-300_f64,
            r#type = "kind",
            "dotted.name" = 7_u64,
            "control \u{1} {}",
            "\u{1f}"
        );
        debug!(target: "custom::target", big = u128::MAX, small = i128::MIN);
        trace!(only = 1_u64);
        info!(message_after = "x", "the message is written first");
    }

    fn lines(text: &str) -> Vec<Value> {
        text.lines()
            .map(|line| {
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: not JSON: {line}"))
            })
            .collect()
    }

    #[test]
    fn lines_match_the_tracing_subscriber_json_formatter() {
        let ours = Lines::default();
        let before = chrono::Utc::now();
        tracing::subscriber::with_default(subscriber("trace", ours.clone()).unwrap(), emit);
        let after = chrono::Utc::now();

        let theirs = Lines::default();
        let reference = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_env_filter("trace")
            .with_writer(theirs.clone())
            .finish();
        tracing::subscriber::with_default(reference, emit);

        let (ours_text, theirs_text) = (ours.text(), theirs.text());
        let (mut ours, mut theirs) = (lines(&ours_text), lines(&theirs_text));
        assert_eq!(ours.len(), 7, "{ours_text}");
        assert_eq!(ours.len(), theirs.len(), "{ours_text}\n{theirs_text}");
        for (line, raw) in ours.iter_mut().zip(ours_text.lines()) {
            assert!(raw.starts_with("{\"timestamp\":\""), "{raw}");
            let stamp = line["timestamp"].as_str().unwrap().to_owned();
            assert_eq!(stamp.len(), "2026-11-30T21:23:45.123456Z".len(), "{stamp}");
            let parsed = chrono::DateTime::parse_from_rfc3339(&stamp).unwrap();
            // Microseconds: `before` may be later than the truncated stamp by less than one.
            let slack = chrono::Duration::microseconds(1);
            assert!(parsed >= before - slack && parsed <= after, "{stamp}");
            line.as_object_mut().unwrap().remove("timestamp");
        }
        for line in &mut theirs {
            line.as_object_mut().unwrap().remove("timestamp");
        }
        assert_eq!(ours, theirs);

        // The hostile text survives the round trip; the message comes before the other fields.
        assert_eq!(ours[2]["hostile"], HOSTILE);
        let last = ours_text.lines().last().unwrap();
        assert!(
            last.find("\"message\"").unwrap() < last.find("\"message_after\"").unwrap(),
            "{last}"
        );
        assert_eq!(ours[4]["target"], "custom::target");
        assert_eq!(ours[3]["nan"], Value::Null);
    }

    #[test]
    fn spans_exist_only_for_a_span_directive() {
        let without = Lines::default();
        tracing::subscriber::with_default(subscriber("debug", without.clone()).unwrap(), || {
            // `enabled!` hints (AuditLogger::append asks before it gathers a line's fields)
            // are not spans: they pass.
            assert!(tracing::enabled!(target: "audit", tracing::Level::INFO));
            assert!(!tracing::enabled!(target: "audit", tracing::Level::TRACE));
            let span = info_span!("request", id = 1_u64);
            assert!(span.is_disabled(), "a span nothing reads was created");
            let _entered = span.enter();
            info!("inside");
        });
        let without = lines(&without.text());
        assert_eq!(without.len(), 1);
        assert!(without[0].get("span").is_none() && without[0].get("spans").is_none());

        let with = Lines::default();
        let filter = "warn,[request]=debug";
        tracing::subscriber::with_default(subscriber(filter, with.clone()).unwrap(), || {
            debug!("outside the span: filtered out");
            let span = info_span!("request", id = 1_u64);
            assert!(!span.is_disabled(), "the span directive needs the span");
            let _entered = span.enter();
            debug!("inside the span: kept");
        });
        let with = lines(&with.text());
        assert_eq!(with.len(), 1, "{with:?}");
        assert_eq!(with[0]["message"], "inside the span: kept");
    }

    #[test]
    fn an_invalid_filter_is_refused() {
        let error = subscriber("airisk=loudest", Lines::default())
            .err()
            .expect("an invalid level is refused");
        assert!(
            format!("{error:#}").contains("invalid log filter"),
            "{error:#}"
        );
    }
}
