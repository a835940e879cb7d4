//! Every service method runs in a span that ties its log lines to the request (tenant, actor,
//! action, correlation id) and records nothing else: no template, justification or reason.

use std::io::Write;
use std::sync::{Arc, Mutex};

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::FmtSpan;

use crate::support::{World, admin, approver, register_input};
use airisk_core::request::CorrelationId;

/// Collects what the subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// The JSON lines of every span closed while `run` ran.
async fn closed_spans<F: std::future::Future<Output = ()>>(run: F) -> Vec<serde_json::Value> {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_span_events(FmtSpan::CLOSE)
        .with_max_level(tracing::Level::INFO)
        .with_writer(captured.clone())
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    run.await;
    drop(guard);
    let bytes = captured.0.lock().unwrap().clone();
    String::from_utf8(bytes)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn span_named<'a>(lines: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    lines
        .iter()
        .find(|l| l["span"]["name"] == name)
        .unwrap_or_else(|| panic!("no span {name} in {lines:#?}"))
}

#[tokio::test(flavor = "current_thread")]
async fn a_command_span_names_tenant_actor_action_and_correlation_and_no_text() {
    let w = World::new();
    let correlation = CorrelationId::parse("req-7f3a").unwrap();
    let input = register_input("credit-scoring", "1.0.0");
    let justification = input.justification.clone();
    let lines = closed_spans(async {
        let registered = w
            .models
            .register_model(&admin(), &correlation, input)
            .await
            .unwrap();
        w.workflow
            .approve(
                &approver(),
                &correlation,
                registered.request.id(),
                "secret-reason-text",
            )
            .await
            .unwrap();
    })
    .await;

    let register = &span_named(&lines, "register_model")["span"];
    assert_eq!(register["tenant_id"], "acme");
    assert_eq!(register["actor"], "ada@acme.example");
    assert_eq!(register["action"], "model.register");
    assert_eq!(register["correlation_id"], "req-7f3a");
    let approve = &span_named(&lines, "approve")["span"];
    assert_eq!(approve["actor"], "bob@acme.example");
    assert_eq!(approve["action"], "approval.approve");

    let all = serde_json::to_string(&lines).unwrap();
    assert!(!all.contains(&justification), "{all}");
    assert!(!all.contains("secret-reason-text"), "{all}");
    assert!(!all.contains("s3://models"), "{all}");
}
