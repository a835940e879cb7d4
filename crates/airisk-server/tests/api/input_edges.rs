//! Input the stores cannot take is refused at the edge with 422, the same on every store, and
//! changes nothing: an `offset` beyond 2^63 - 1 (SQLite answered 500) and a NUL character in a
//! query, path or body string (PostgreSQL answered 503 with Retry-After).

use airisk_core::security::rbac::Role;
use serde_json::json;

use crate::support::{Backend, TestApp, problem};

async fn embedded() -> Vec<TestApp> {
    vec![
        TestApp::spawn_backend(Backend::Memory).await,
        TestApp::spawn_backend(Backend::Sqlite).await,
    ]
}

async fn postgres() -> Vec<TestApp> {
    vec![TestApp::spawn_backend(Backend::Postgres).await]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offset_beyond_2_pow_63_minus_1_is_a_422_on_every_store() {
    offset_beyond_2_pow_63_minus_1_is_a_422(embedded().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "PostgreSQL: needs AIRISK_TEST_DATABASE_URL; run with --ignored (scripts/test.sh does)"]
async fn an_offset_beyond_2_pow_63_minus_1_is_a_422_on_postgres() {
    offset_beyond_2_pow_63_minus_1_is_a_422(postgres().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nul_character_in_any_parameter_is_a_422_on_every_store_and_writes_nothing() {
    nul_character_in_any_parameter_is_a_422_and_writes_nothing(embedded().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "PostgreSQL: needs AIRISK_TEST_DATABASE_URL; run with --ignored (scripts/test.sh does)"]
async fn a_nul_character_in_any_parameter_is_a_422_on_postgres_and_writes_nothing() {
    nul_character_in_any_parameter_is_a_422_and_writes_nothing(postgres().await).await;
}

async fn offset_beyond_2_pow_63_minus_1_is_a_422(apps: Vec<TestApp>) {
    for app in apps {
        let viewer = app.token("vic.viewer", "acme", Role::Viewer);
        for offset in ["9223372036854775808", "18446744073709551615"] {
            let r = app
                .get(&format!("/v1/approvals?offset={offset}"), &viewer)
                .await;
            let p = problem(r, 422).await;
            assert!(p["detail"].as_str().unwrap().contains("offset"), "{p}");
        }
        // Other numbers a database cannot take: answered as absent or out of range, never 500.
        for path in [
            "/v1/audit/events/9223372036854775808",
            "/v1/audit/events?cursor=9223372036854775808",
            "/v1/audit/events?cursor=9223372036854775808&order=desc",
            "/v1/audit/proofs/inclusion?seq=9223372036854775808",
            "/v1/audit/proofs/consistency?from=1&to=9223372036854775808",
        ] {
            let status = app.get(path, &viewer).await.status().as_u16();
            assert!([200, 404, 422].contains(&status), "{path}: {status}");
        }
        // The largest offset a database takes is a valid (empty) page.
        let r = app
            .get("/v1/approvals?offset=9223372036854775807", &viewer)
            .await;
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }
}

async fn nul_character_in_any_parameter_is_a_422_and_writes_nothing(apps: Vec<TestApp>) {
    for app in apps {
        let analyst = app.token("ana.analyst", "acme", Role::Analyst);
        let admin = app.token("ada.admin", "acme", Role::Admin);
        let size = |app: &TestApp| {
            let audit = app.audit.clone();
            async move {
                audit
                    .tree_head(
                        &airisk_core::security::tenant_context::TenantId::parse("acme").unwrap(),
                    )
                    .await
                    .unwrap()
                    .size
            }
        };
        let before = size(&app).await;
        // Query parameters.
        for q in [
            "actor=%00",
            "action=model.%00",
            "correlation_id=a%00b",
            "resource_id=%00",
        ] {
            let r = app.get(&format!("/v1/audit/events?{q}"), &analyst).await;
            let p = problem(r, 422).await;
            assert!(p["detail"].as_str().unwrap().contains("NUL"), "{q}: {p}");
        }
        // Path parameters.
        for path in [
            "/v1/models/credit%00/versions",
            "/v1/models/credit/versions/1.0%00",
            "/v1/prompts/greeting%00",
        ] {
            let p = problem(app.get(path, &analyst).await, 422).await;
            assert!(p["detail"].as_str().unwrap().contains("NUL"), "{path}: {p}");
        }
        // Body strings, as values, nested, and as keys.
        for body in [
            json!({"action": "app.export", "resource_type": "report", "resource_id": "r\u{0}1"}),
            json!({"action": "app.export", "resource_type": "report", "resource_id": "r1",
                   "reason": "month\u{0}end"}),
            json!({"action": "app.export", "resource_type": "report", "resource_id": "r1",
                   "metadata": {"k\u{0}": "v"}}),
        ] {
            let r = app.post("/v1/audit/events", &analyst, &body).await;
            let p = problem(r, 422).await;
            assert!(p["detail"].as_str().unwrap().contains("NUL"), "{body}: {p}");
        }
        let mut model = crate::support::model_body("credit", "1.0");
        model["justification"] = json!("back\u{0}tested");
        let p = problem(app.post("/v1/models", &admin, &model).await, 422).await;
        assert!(p["detail"].as_str().unwrap().contains("NUL"), "{p}");
        assert_eq!(
            size(&app).await,
            before,
            "a refused request wrote to the ledger"
        );
        // The same text without the NUL is fine (the refusal is about the NUL, not the field).
        let r = app
            .post(
                "/v1/audit/events",
                &analyst,
                &json!({"action": "app.export", "resource_type": "report", "resource_id": "r1",
                        "reason": "month end"}),
            )
            .await;
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    }
}
