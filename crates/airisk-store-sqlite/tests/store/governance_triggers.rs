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

/// The one change the trigger lets through (migration 0007) is sealing a plaintext template in
/// place exactly as the store writes it: `json_patch` of the template and `"sealed":true`. Any
/// other field changed with it, a template that is not a `v1.` value, a second seal of a sealed
/// row and a change of the row's key are refused, whatever SQL reaches the file.
#[tokio::test]
async fn only_sealing_a_plaintext_template_in_place_gets_past_the_trigger() {
    let db = TempDb::new();
    {
        let store = Arc::new(db.open());
        let prompts = PromptRegistry::new(
            store.clone(),
            Arc::new(SystemClock),
            Arc::new(UuidV7Generator),
        );
        let admin = Principal::human(ActorId::parse("ada").unwrap(), tenant("acme"), Role::Admin);
        for name in ["p", "q"] {
            prompts
                .register_prompt(
                    &admin,
                    &CorrelationId::generate(),
                    name,
                    "plain text",
                    "first",
                )
                .await
                .unwrap();
        }
    }
    let raw = db.raw();
    let seal = |extra: &str, template: &str| {
        format!(
            "UPDATE prompt_versions SET body = json_patch(body, json_object('template', '{template}', \
             'sealed', json('true'){extra})) WHERE name = 'p'"
        )
    };
    for sql in [
        // Another field changed with the seal.
        seal(", 'author', 'mallory'", "v1.dabc.AAAA"),
        seal(", 'template_sha256', '00'", "v1.dabc.AAAA"),
        // Not a ciphertext.
        seal("", "other plain text"),
        // Not the store's exact form (the sealed flag missing, or a rewritten body).
        "UPDATE prompt_versions SET body = json_set(body, '$.template', 'v1.dabc.AAAA') WHERE name = 'p'".to_owned(),
        "UPDATE prompt_versions SET body = '{\"template\":\"v1.dabc.AAAA\",\"sealed\":true}' WHERE name = 'p'".to_owned(),
        // The row's key.
        format!("{} ", seal("", "v1.dabc.AAAA")).replace("SET body", "SET name = 'z', body"),
    ] {
        let err = raw.execute(&sql, []).unwrap_err().to_string();
        assert!(err.contains("immutable"), "{sql}: {err}");
    }
    // The exact seal passes, once.
    assert_eq!(raw.execute(&seal("", "v1.dabc.AAAA"), []).unwrap(), 1);
    let err = raw
        .execute(&seal("", "v1.dabc.BBBB"), [])
        .unwrap_err()
        .to_string();
    assert!(err.contains("immutable"), "a sealed row is final: {err}");
    let (p, q): (String, String) = raw
        .query_row(
            "SELECT (SELECT body FROM prompt_versions WHERE name = 'p'),
                    (SELECT body FROM prompt_versions WHERE name = 'q')",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let p: serde_json::Value = serde_json::from_str(&p).unwrap();
    let q: serde_json::Value = serde_json::from_str(&q).unwrap();
    assert_eq!(p["template"], "v1.dabc.AAAA");
    assert_eq!(p["sealed"], true);
    assert_eq!(p["author"], q["author"], "nothing else changed");
    assert_eq!(p["template_sha256"], q["template_sha256"]);
    assert_eq!(q["template"], "plain text", "the other row is untouched");
}
