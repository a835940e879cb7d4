//! Graceful shutdown with writes in flight: every write acknowledged with a 2xx is in the ledger
//! afterwards, the ledger verifies, and a final checkpoint covers all of it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use airisk_core::governance::audit_logger::{AuditLogger, CheckpointPolicy};
use airisk_core::ledger::{LedgerName, leaf_hash};
use airisk_core::ports::{AuditRepository, SystemClock, UuidV7Generator};
use airisk_core::security::rbac::Role;
use airisk_testkit::fixtures::tenant;
use serde_json::{Value, json};

use crate::support::{Backend, TestApp};

on_backends!(shutdown_loses_no_acknowledged_write: [memory, sqlite, postgres]
    (flavor = "multi_thread", worker_threads = 2));

async fn shutdown_loses_no_acknowledged_write(backend: Backend) {
    let mut app = TestApp::spawn_backend(backend).await;
    let analyst = app.token("ann", "acme", Role::Analyst);
    let admin = app.token("ada", "acme", Role::Admin);
    let acknowledged = Arc::new(AtomicUsize::new(0));
    // Told (not polled) when the 200th write is acknowledged.
    let two_hundred = Arc::new(tokio::sync::Notify::new());
    let mut writers = Vec::new();
    for w in 0..8 {
        // Each writer has its own connection pool, so some requests are mid-flight at the stop.
        let client = reqwest::Client::new();
        let url = app.url("/v1/audit/events");
        let models = app.url("/v1/models");
        let token = analyst.clone();
        let admin = admin.clone();
        let acked = acknowledged.clone();
        let two_hundred = two_hundred.clone();
        writers.push(tokio::spawn(async move {
            let mut receipts: Vec<Value> = Vec::new();
            for i in 0..10_000 {
                let sent = if i % 5 == 0 {
                    client
                        .post(&models)
                        .bearer_auth(&admin)
                        .json(&crate::support::model_body(&format!("m{w}"), &format!("{i}")))
                        .send()
                        .await
                } else {
                    client
                        .post(&url)
                        .bearer_auth(&token)
                        .json(&json!({"action": "load.write", "resource_type": "w", "resource_id": format!("{w}-{i}")}))
                        .send()
                        .await
                };
                let Ok(r) = sent else { break };
                if !r.status().is_success() {
                    // 503 while stopping is acceptable; it was not acknowledged.
                    continue;
                }
                let Ok(v) = r.json::<Value>().await else { break };
                if acked.fetch_add(1, Ordering::Relaxed) + 1 == 200 {
                    two_hundred.notify_one();
                }
                receipts.push(v);
            }
            receipts
        }));
    }
    tokio::time::timeout(Duration::from_secs(120), two_hundred.notified())
        .await
        .expect("200 writes acknowledged within 2 minutes");
    let server = app.begin_shutdown();
    server.await.unwrap().unwrap();
    let mut receipts = Vec::new();
    for w in writers {
        receipts.extend(w.await.unwrap());
    }
    assert!(receipts.len() >= 200);

    let acme = tenant("acme");
    let repo: &dyn AuditRepository = app.audit.as_ref();
    let head = repo.tree_head(&acme).await.unwrap();
    let entries = repo.entries(&acme, 0, head.size as usize).await.unwrap();
    for r in &receipts {
        // An audit receipt, or a model registration whose model.register record we look up.
        if let Some(seq) = r["seq"].as_u64() {
            let e = &entries[seq as usize];
            assert_eq!(
                e.leaf_hash.to_hex(),
                r["leaf_hash"],
                "acknowledged entry {seq} changed"
            );
            assert_eq!(leaf_hash(&e.leaf), e.leaf_hash);
        } else {
            let name = r["model"]["name"].as_str().unwrap();
            let version = r["model"]["version"].as_str().unwrap();
            let found = app
                .governance
                .model(
                    &acme,
                    &airisk_core::governance::model_registry::ModelName::parse(name).unwrap(),
                    &airisk_core::governance::model_registry::ModelVersionTag::parse(version)
                        .unwrap(),
                )
                .await
                .unwrap();
            assert!(found.is_some(), "acknowledged model {name}@{version} lost");
        }
    }
    // The final flush signed a checkpoint over everything, and the whole ledger verifies.
    let latest = repo.latest_checkpoint(&acme).await.unwrap().unwrap();
    assert_eq!(latest.size, head.size);
    let logger = AuditLogger::new(
        app.audit.clone(),
        Arc::new(UuidV7Generator),
        Arc::new(SystemClock),
        LedgerName::parse("airisk.test/ledger").unwrap(),
        None,
        CheckpointPolicy::default(),
    );
    let report = logger
        .verify(&acme, Some(&app.signer.verifier()), None, |_, _| {})
        .await
        .unwrap();
    assert!(report.is_intact(), "{report:?}");
    // New connections are refused once stopped.
    assert!(reqwest::get(app.url("/healthz")).await.is_err());
}
