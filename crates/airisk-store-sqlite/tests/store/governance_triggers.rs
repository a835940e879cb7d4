//! The database refuses to rewrite prompt history, whatever SQL reaches it.

use std::sync::Arc;

use airisk_core::governance::prompt_registry::PromptRegistry;
use airisk_core::ports::{SystemClock, UuidV7Generator};
use airisk_core::request::CorrelationId;
use airisk_core::security::rbac::Role;
use airisk_core::security::tenant_context::{ActorId, Principal};

use crate::support::{TempDb, tenant};

#[tokio::test]
async fn prompt_versions_and_label_history_refuse_update_delete_and_replace() {
    let db = TempDb::new();
    {
        let store = Arc::new(db.open());
        let prompts = PromptRegistry::new(
            store.clone(),
            Arc::new(SystemClock),
            Arc::new(UuidV7Generator),
        );
        let admin = Principal::human(ActorId::parse("ada").unwrap(), tenant("acme"), Role::Admin);
        prompts
            .register_prompt(&admin, &CorrelationId::generate(), "p", "v1 text", "first")
            .await
            .unwrap();
    }
    let raw = db.raw();
    // A label-move row to attack (inserted raw: the store only writes one with an approval).
    raw.execute(
        "INSERT INTO prompt_label_moves (tenant_id, name, id, body) VALUES ('acme', 'p', 'm1', '{}')",
        [],
    )
    .unwrap();
    for sql in [
        "UPDATE prompt_versions SET body = '{}'",
        "DELETE FROM prompt_versions",
        "INSERT OR REPLACE INTO prompt_versions (tenant_id, name, version, body) VALUES ('acme', 'p', 1, '{}')",
        "UPDATE prompt_label_moves SET body = '{\"x\":1}'",
        "DELETE FROM prompt_label_moves",
        "INSERT OR REPLACE INTO prompt_label_moves (tenant_id, name, id, body) VALUES ('acme', 'p', 'm1', '{\"x\":1}')",
    ] {
        let err = raw.execute(sql, []).unwrap_err().to_string();
        assert!(
            err.contains("immutable") || err.contains("append-only"),
            "{sql}: {err}"
        );
    }
    let body: String = raw
        .query_row(
            "SELECT body FROM prompt_versions WHERE name = 'p' AND version = 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(body.contains("v1 text"), "version 1 unchanged: {body}");
    let moves: i64 = raw
        .query_row(
            "SELECT count(*) FROM prompt_label_moves WHERE body = '{}'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(moves, 1);
}
