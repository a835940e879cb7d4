//! Every service method runs in a span that ties its log lines to the request (tenant, actor,
//! action, correlation id) and records nothing else: no template, justification or reason.

use airisk_testkit::CapturedLogs;
use tracing_subscriber::fmt::format::FmtSpan;

use crate::support::{World, admin, approver, register_input};
use airisk_core::request::CorrelationId;

/// The JSON lines of every span closed while `run` ran.
async fn closed_spans<F: std::future::Future<Output = ()>>(run: F) -> Vec<serde_json::Value> {
    let captured = CapturedLogs::new();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_span_events(FmtSpan::CLOSE)
        .with_max_level(tracing::Level::INFO)
        .with_writer(captured.writer())
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    run.await;
    drop(guard);
    captured
        .text()
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
