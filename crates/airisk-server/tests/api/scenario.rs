//! The seed's whole scenario over HTTP, ending with an auditor checking an inclusion proof offline
//! with nothing but the verifier key.

use airisk_core::ledger::{Hash, LedgerVerifier, leaf_hash, verify_checkpoint, verify_inclusion};
use airisk_core::security::rbac::Role;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};

use crate::support::{Backend, DIGEST, TestApp, model_body};

on_backends!(register_approve_authorise_verify_and_prove_a_model_end_to_end:
    [memory, sqlite, postgres]);

async fn register_approve_authorise_verify_and_prove_a_model_end_to_end(backend: Backend) {
    let app = TestApp::spawn_backend(backend).await;
    let admin = app.token("ada.admin", "acme", Role::Admin);
    let approver = app.token("bob.approver", "acme", Role::Approver);
    let analyst = app.token("ann.analyst", "acme", Role::Analyst);
    let viewer = app.token("vic.viewer", "acme", Role::Viewer);

    // Register as admin (the matrix: only admin holds register_model).
    let r = app
        .post("/v1/models", &admin, &model_body("credit-scoring", "1.4.0"))
        .await;
    assert_eq!(r.status(), 201);
    let reg: Value = r.json().await.unwrap();
    assert_eq!(reg["model"]["status"], "PENDING");
    assert_eq!(reg["model"]["registered_by"], "ada.admin");
    assert_eq!(reg["approval_request"]["status"], "PENDING");

    // Not deployable yet.
    let r = app
        .post(
            "/v1/models/credit-scoring/versions/1.4.0/deployments",
            &analyst,
            &json!({"sha256": DIGEST}),
        )
        .await;
    let p = crate::support::problem(r, 409).await;
    assert_eq!(p["type"], "urn:airisk:problem:deployment-denied");

    // The registrant cannot approve their own model (four eyes).
    let r = app
        .post(
            "/v1/models/credit-scoring/versions/1.4.0/approve",
            &admin,
            &json!({"reason": "looks fine to me"}),
        )
        .await;
    crate::support::problem(r, 403).await;

    // The approver sees it in their queue, and approves.
    let queue: Value = app
        .get("/v1/approvals?pending_for_me=true", &approver)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(queue["requests"].as_array().unwrap().len(), 1);
    assert_eq!(queue["requests"][0]["id"], reg["approval_request"]["id"]);
    let r = app
        .post(
            "/v1/models/credit-scoring/versions/1.4.0/approve",
            &approver,
            &json!({"reason": "validation report reviewed"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let decided: Value = r.json().await.unwrap();
    assert_eq!(decided["status"], "APPROVED");
    let model: Value = app
        .get("/v1/models/credit-scoring/versions/1.4.0", &viewer)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(model["status"], "APPROVED");
    assert_eq!(model["approved_by"], json!(["bob.approver"]));

    // The wrong artifact is refused; the approved one is authorised.
    let wrong = "0".repeat(64);
    let r = app
        .post(
            "/v1/models/credit-scoring/versions/1.4.0/deployments",
            &analyst,
            &json!({"sha256": wrong}),
        )
        .await;
    let p = crate::support::problem(r, 409).await;
    assert!(p["detail"].as_str().unwrap().contains("SHA-256"));
    let r = app
        .post(
            "/v1/models/credit-scoring/versions/1.4.0/deployments",
            &analyst,
            &json!({"sha256": DIGEST}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let deployment: Value = r.json().await.unwrap();
    assert_eq!(deployment["authorized"], true);
    let deploy_seq = deployment["receipt"]["seq"].as_u64().unwrap();

    // Every step is in the ledger, denials included.
    let page: Value = app
        .get("/v1/audit/events?action=model.", &viewer)
        .await
        .json()
        .await
        .unwrap();
    let actions: Vec<(String, String)> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["record"]["action"].as_str().unwrap().to_owned(),
                e["record"]["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for expected in [
        ("model.register", "success"),
        ("model.authorize_deployment", "denied"),
        ("model.approve", "success"),
        ("model.authorize_deployment", "success"),
    ] {
        assert!(
            actions.contains(&(expected.0.to_owned(), expected.1.to_owned())),
            "{expected:?} missing from {actions:?}"
        );
    }

    // The ledger verifies.
    let r = app
        .request(reqwest::Method::POST, "/v1/audit/checkpoint", &analyst)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cp: Value = r.json().await.unwrap();
    let report: Value = app
        .get("/v1/audit/verify", &viewer)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(report["intact"], true, "{report}");
    assert_eq!(report["entries"], cp["size"]);
    assert!(report["checkpoints_verified"].as_u64().unwrap() >= 1);

    // An auditor fetches an inclusion proof of the deployment record and checks it offline.
    let proof: Value = app
        .get(
            &format!("/v1/audit/proofs/inclusion?seq={deploy_seq}"),
            &viewer,
        )
        .await
        .json()
        .await
        .unwrap();
    let verifier = LedgerVerifier::parse(proof["verifier_key"].as_str().unwrap()).unwrap();
    assert_eq!(
        verifier.to_verifier_key(),
        app.signer.verifier().to_verifier_key()
    );
    let checkpoint = verify_checkpoint(proof["checkpoint"].as_str().unwrap(), &verifier).unwrap();
    assert_eq!(checkpoint.size, proof["tree_size"].as_u64().unwrap());
    let leaf = BASE64.decode(proof["leaf"].as_str().unwrap()).unwrap();
    let record: Value = serde_json::from_slice(&leaf).unwrap();
    assert_eq!(record["action"], "model.authorize_deployment");
    assert_eq!(record["outcome"], "success");
    let path: Vec<Hash> = proof["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| Hash::from_hex(h.as_str().unwrap()).unwrap())
        .collect();
    verify_inclusion(
        deploy_seq,
        checkpoint.size,
        leaf_hash(&leaf),
        &path,
        checkpoint.root,
    )
    .unwrap();

    // A consistency proof from an early size to the checkpoint verifies too.
    let c: Value = app
        .get(
            &format!("/v1/audit/proofs/consistency?from=2&to={}", checkpoint.size),
            &viewer,
        )
        .await
        .json()
        .await
        .unwrap();
    let path: Vec<Hash> = c["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| Hash::from_hex(h.as_str().unwrap()).unwrap())
        .collect();
    airisk_core::ledger::verify_consistency(
        2,
        checkpoint.size,
        Hash::from_hex(c["root1"].as_str().unwrap()).unwrap(),
        checkpoint.root,
        &path,
    )
    .unwrap();
    app.shutdown().await;
}

on_backends!(a_prompt_label_moves_only_with_an_approved_request: [memory, sqlite, postgres]);

async fn a_prompt_label_moves_only_with_an_approved_request(backend: Backend) {
    let app = TestApp::spawn_backend(backend).await;
    let analyst = app.token("ann.analyst", "acme", Role::Analyst);
    let approver = app.token("bob.approver", "acme", Role::Approver);

    let r = app
        .post(
            "/v1/prompts",
            &analyst,
            &json!({"name": "risk/summary", "template": "Summarise {doc}.", "change_reason": "first"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let r = app
        .post(
            "/v1/prompts/risk%2Fsummary/versions",
            &analyst,
            &json!({"template": "Summarise {doc}.\nCite sources.", "change_reason": "citations"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let v2: Value = r.json().await.unwrap();
    assert_eq!(v2["version"], 2);

    // No approval yet: refused.
    let r = app
        .put(
            "/v1/prompts/risk%2Fsummary/labels/production",
            &analyst,
            &json!({"version": 2}),
        )
        .await;
    let p = crate::support::problem(r, 409).await;
    assert_eq!(p["type"], "urn:airisk:problem:approval-required");

    let r = app
        .post(
            "/v1/approvals",
            &analyst,
            &json!({
                "subject": {"kind": "prompt_label", "name": "risk/summary", "version": 2, "label": "production"},
                "justification": "citations reduce hallucination findings"
            }),
        )
        .await;
    assert_eq!(r.status(), 201);
    let request: Value = r.json().await.unwrap();
    let id = request["id"].as_str().unwrap();
    let r = app
        .post(
            &format!("/v1/approvals/{id}/approve"),
            &approver,
            &json!({"reason": "reviewed the diff"}),
        )
        .await;
    assert_eq!(r.status(), 200);

    let r = app
        .put(
            "/v1/prompts/risk%2Fsummary/labels/production",
            &analyst,
            &json!({"version": 2}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let by_label: Value = app
        .get("/v1/prompts/risk%2Fsummary?label=production", &approver)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(by_label["version"], 2);
    let v1: Value = app
        .get("/v1/prompts/risk%2Fsummary?version=1", &approver)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v1["template"], "Summarise {doc}.");

    // The approval was single use.
    let r = app
        .put(
            "/v1/prompts/risk%2Fsummary/labels/production",
            &analyst,
            &json!({"version": 2}),
        )
        .await;
    crate::support::problem(r, 409).await;

    let history: Value = app
        .get("/v1/prompts/risk%2Fsummary/history", &approver)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(history["versions"].as_array().unwrap().len(), 2);
    assert_eq!(
        history["labels"],
        json!([{"label": "production", "version": 2}])
    );
    assert_eq!(history["label_moves"][0]["moved_by"], "ann.analyst");
    let diff: Value = app
        .get("/v1/prompts/risk%2Fsummary/diff?from=1&to=2", &approver)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        diff["lines"],
        json!([{"op": "same", "line": "Summarise {doc}."}, {"op": "added", "line": "Cite sources."}])
    );
    app.shutdown().await;
}

on_backends!(the_export_streams_a_signed_checkpoint_then_every_entry_it_covers:
    [memory, sqlite, postgres]);

async fn the_export_streams_a_signed_checkpoint_then_every_entry_it_covers(backend: Backend) {
    let app = TestApp::spawn_backend(backend).await;
    let analyst = app.token("ann.analyst", "acme", Role::Analyst);
    for i in 0..5 {
        let r = app
            .post(
                "/v1/audit/events",
                &analyst,
                &json!({"action": "report.generate", "resource_type": "report", "resource_id": format!("r-{i}")}),
            )
            .await;
        assert_eq!(r.status(), 201);
    }
    let r = app.get("/v1/audit/export", &analyst).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/x-ndjson");
    let text = r.text().await.unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 6);
    let header = &lines[0];
    assert_eq!(header["type"], "checkpoint");
    assert_eq!(header["tenant_id"], "acme");
    let mut frontier = airisk_core::ledger::Frontier::new();
    for (i, line) in lines.iter().skip(1).enumerate() {
        assert_eq!(line["type"], "entry");
        assert_eq!(line["seq"], i as u64);
        let leaf = BASE64.decode(line["leaf"].as_str().unwrap()).unwrap();
        assert_eq!(leaf_hash(&leaf).to_hex(), line["leaf_hash"]);
        frontier.append(leaf_hash(&leaf)).unwrap();
    }
    let verifier = app.signer.verifier();
    assert_eq!(header["verifier_key"], verifier.to_verifier_key());
    let cp = verify_checkpoint(header["checkpoint"].as_str().unwrap(), &verifier).unwrap();
    assert_eq!(cp.size, 5);
    assert_eq!(cp.root, frontier.root());

    // The auditor's independent Python verifier accepts it, with the key from a trusted channel.
    let file =
        std::env::temp_dir().join(format!("airisk-http-export-{}.jsonl", uuid::Uuid::now_v7()));
    std::fs::write(&file, &text).unwrap();
    let tool = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tools/verify_export.py");
    let out = std::process::Command::new("python3")
        .args([
            tool,
            file.to_str().unwrap(),
            "--verifier-key",
            &verifier.to_verifier_key(),
            "--tenant",
            "acme",
        ])
        .output()
        .expect("python3 must be installed to run the auditor's verifier");
    let _ = std::fs::remove_file(&file);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .starts_with("verified: airisk.test/ledger/acme: 5 entries")
    );
    app.shutdown().await;
}
