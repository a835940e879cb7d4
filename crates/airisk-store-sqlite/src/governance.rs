//! Governance state on SQLite: the writer side applies a change set's mutations inside the
//! request's savepoint (the audit events follow in the same savepoint), the reader side answers the
//! [`GovernanceStore`](airisk_core::ports::GovernanceStore) queries.
//!
//! Each row keeps the domain value as JSON in `body`, next to the columns queries use.

use airisk_core::governance::approval_workflow::{ApprovalRequest, Subject};
use airisk_core::governance::model_registry::ModelVersion;
use airisk_core::governance::prompt_registry::{LabelMove, PromptVersion};
use airisk_core::ports::{
    ApprovalFilter, ApprovalWithSubject, Mutation, Page, StoreError, SubjectState,
};
use airisk_core::security::tenant_context::TenantId;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::error::{corrupt, map_sqlite, to_sql_int};

fn to_json<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Refused {
        message: format!("cannot encode a governance value: {e}"),
    })
}

fn from_json<T: DeserializeOwned>(text: &str, what: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| corrupt(format!("stored {what} does not decode: {e}")))
}

fn conflict(what: String) -> StoreError {
    StoreError::Conflict { what }
}

/// Runs one cached statement with `params` on the writer's connection; returns rows changed.
fn execute(
    conn: &Connection,
    sql: &str,
    params: &[&dyn rusqlite::ToSql],
) -> Result<usize, StoreError> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.execute(params))
        .map_err(|e| map_sqlite(&e))
}

/// Applies one mutation on the writer's connection (inside the request's savepoint).
pub(crate) fn apply(conn: &Connection, mutation: &Mutation) -> Result<(), StoreError> {
    match mutation {
        Mutation::InsertApproval(r) => {
            execute(
                conn,
                "INSERT INTO approval_requests
                     (tenant_id, id, status, subject_type, subject_id, requested_by, created_at, version, body)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    r.tenant_id().as_str(),
                    r.id().to_string(),
                    r.status().as_str(),
                    r.subject().resource_type(),
                    r.subject().resource_id(),
                    r.requested_by().as_str(),
                    r.created_at().to_rfc3339(),
                    to_sql_int(r.version(), "version")?,
                    to_json(r)?,
                ],
            )?;
        }
        Mutation::UpdateApproval {
            expected_version,
            request,
        } => {
            let changed = execute(
                conn,
                "UPDATE approval_requests SET status = ?1, version = ?2, body = ?3
                 WHERE tenant_id = ?4 AND id = ?5 AND version = ?6",
                params![
                    request.status().as_str(),
                    to_sql_int(request.version(), "version")?,
                    to_json(request)?,
                    request.tenant_id().as_str(),
                    request.id().to_string(),
                    to_sql_int(*expected_version, "version")?,
                ],
            )?;
            if changed == 0 {
                return Err(conflict(format!(
                    "approval request {} is no longer at version {expected_version}",
                    request.id()
                )));
            }
        }
        Mutation::InsertModel(m) => {
            execute(
                conn,
                "INSERT INTO model_versions (tenant_id, name, version, status, row_version, body)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    m.tenant_id().as_str(),
                    m.model_name().as_str(),
                    m.version().as_str(),
                    m.status().as_str(),
                    to_sql_int(m.row_version(), "row version")?,
                    to_json(m)?,
                ],
            )?;
        }
        Mutation::UpdateModel {
            expected_version,
            model,
        } => {
            let changed = execute(
                conn,
                "UPDATE model_versions SET status = ?1, row_version = ?2, body = ?3
                 WHERE tenant_id = ?4 AND name = ?5 AND version = ?6 AND row_version = ?7",
                params![
                    model.status().as_str(),
                    to_sql_int(model.row_version(), "row version")?,
                    to_json(model)?,
                    model.tenant_id().as_str(),
                    model.model_name().as_str(),
                    model.version().as_str(),
                    to_sql_int(*expected_version, "row version")?,
                ],
            )?;
            if changed == 0 {
                return Err(conflict(format!(
                    "model {}@{} is no longer at row version {expected_version}",
                    model.model_name(),
                    model.version()
                )));
            }
        }
        Mutation::InsertPromptVersion(p) => {
            execute(
                conn,
                "INSERT INTO prompt_versions (tenant_id, name, version, body) VALUES (?1, ?2, ?3, ?4)",
                params![p.tenant_id().as_str(), p.name(), p.version(), to_json(p)?],
            )
            .map_err(|e| match e {
                // The no-replace trigger fires before the primary key does: on a plain insert its
                // refusal means exactly "this version exists".
                StoreError::Refused { .. } => conflict(format!(
                    "prompt {}@{} exists",
                    p.name(),
                    p.version()
                )),
                other => other,
            })?;
        }
        Mutation::SealPromptVersion(p) => seal_prompt_version(conn, p)?,
        Mutation::MoveLabel {
            expected_from,
            label_move: m,
        } => {
            let current: Option<u32> = conn
                .prepare_cached(
                    "SELECT version FROM prompt_labels WHERE tenant_id = ?1 AND name = ?2 AND label = ?3",
                )
                .and_then(|mut s| {
                    s.query_row(params![m.tenant_id.as_str(), m.name, m.label], |row| {
                        row.get(0)
                    })
                    .optional()
                })
                .map_err(|e| map_sqlite(&e))?;
            if current != *expected_from {
                return Err(conflict(format!(
                    "label {} of {} moved since it was read",
                    m.label, m.name
                )));
            }
            execute(
                conn,
                "INSERT INTO prompt_labels (tenant_id, name, label, version) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (tenant_id, name, label) DO UPDATE SET version = excluded.version",
                params![m.tenant_id.as_str(), m.name, m.label, m.to_version],
            )?;
            execute(
                conn,
                "INSERT INTO prompt_label_moves (tenant_id, name, id, body) VALUES (?1, ?2, ?3, ?4)",
                params![m.tenant_id.as_str(), m.name, m.id.to_string(), to_json(m)?],
            )?;
        }
        Mutation::InsertDataKey(k) => {
            execute(
                conn,
                "INSERT INTO data_keys (tenant_id, kid, wrapped, created_at, subject)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    k.tenant_id.as_str(),
                    k.kid.as_str(),
                    k.wrapped,
                    k.created_at.to_rfc3339(),
                    k.subject.as_ref().map(|s| s.as_str())
                ],
            )
            .map_err(|e| match e {
                StoreError::Refused { .. } => conflict(format!("data key {} exists", k.kid)),
                other => other,
            })?;
        }
        Mutation::RewrapDataKey(k) => {
            let changed = execute(
                conn,
                "UPDATE data_keys SET wrapped = ?1
                 WHERE tenant_id = ?2 AND kid = ?3 AND wrapped IS NOT NULL",
                params![k.wrapped, k.tenant_id.as_str(), k.kid.as_str()],
            )?;
            if changed == 0 {
                return Err(conflict(format!("data key {} is not live", k.kid)));
            }
        }
        Mutation::ShredDataKeys { tenant } => {
            // secure_delete overwrites the freed bytes in the database file (the WAL keeps its
            // old page images until a checkpoint; see docs/ENCRYPTION.md).
            conn.pragma_update(None, "secure_delete", "ON")
                .map_err(|e| map_sqlite(&e))?;
            execute(
                conn,
                "UPDATE data_keys SET wrapped = NULL, subject = NULL
                 WHERE tenant_id = ?1 AND (wrapped IS NOT NULL OR subject IS NOT NULL)",
                params![tenant.as_str()],
            )?;
        }
        Mutation::ShredSubjectKeys { tenant, subject } => {
            conn.pragma_update(None, "secure_delete", "ON")
                .map_err(|e| map_sqlite(&e))?;
            execute(
                conn,
                "UPDATE data_keys SET wrapped = NULL, subject = NULL
                 WHERE tenant_id = ?1 AND subject = ?2",
                params![tenant.as_str(), subject.as_str()],
            )?;
        }
        _ => {
            return Err(StoreError::Refused {
                message: "this store does not know that mutation".to_owned(),
            });
        }
    }
    Ok(())
}

/// Seals a stored plaintext prompt version in place (`airisk keys seal-existing`): checks, in
/// the writer's transaction, that the row is still plaintext (else Conflict) and that its
/// template hashes to its stored digest and the new row's (else Refused), then replaces only the
/// template and sets `sealed`, with `json_patch`, the one change the `prompt_versions_no_update`
/// trigger (migration 0007) lets through. `secure_delete` overwrites the freed plaintext bytes in
/// the database file; the command then checkpoints the WAL and vacuums (docs/ENCRYPTION.md).
fn seal_prompt_version(conn: &Connection, p: &PromptVersion) -> Result<(), StoreError> {
    let body: Option<String> = conn
        .prepare_cached(
            "SELECT body FROM prompt_versions WHERE tenant_id = ?1 AND name = ?2 AND version = ?3",
        )
        .and_then(|mut s| {
            s.query_row(
                params![p.tenant_id().as_str(), p.name(), p.version()],
                |row| row.get(0),
            )
            .optional()
        })
        .map_err(|e| map_sqlite(&e))?;
    let Some(body) = body else {
        return Err(conflict(format!(
            "prompt {}@{} is not stored",
            p.name(),
            p.version()
        )));
    };
    let stored: PromptVersion = from_json(&body, "prompt version")?;
    if stored.is_sealed() {
        return Err(conflict(format!(
            "prompt {}@{} is sealed already",
            p.name(),
            p.version()
        )));
    }
    let digest =
        airisk_core::governance::model_registry::Sha256Digest::of(stored.template().as_bytes());
    if !p.is_sealed()
        || !digest.matches(stored.template_sha256())
        || !stored.differs_only_in_template(p)
    {
        return Err(StoreError::Refused {
            message: format!(
                "prompt {}@{}: only sealing its own plaintext template in place is allowed",
                p.name(),
                p.version()
            ),
        });
    }
    conn.pragma_update(None, "secure_delete", "ON")
        .map_err(|e| map_sqlite(&e))?;
    let changed = execute(
        conn,
        "UPDATE prompt_versions
         SET body = json_patch(body, json_object('template', ?4, 'sealed', json('true')))
         WHERE tenant_id = ?1 AND name = ?2 AND version = ?3",
        params![p.tenant_id().as_str(), p.name(), p.version(), p.template()],
    )?;
    if changed != 1 {
        return Err(conflict(format!(
            "prompt {}@{} changed while it was sealed",
            p.name(),
            p.version()
        )));
    }
    Ok(())
}

/// Up to `limit` prompt versions of a tenant stored with a plaintext template, by name and
/// version.
pub(crate) fn unsealed_prompt_versions(
    tx: &rusqlite::Transaction<'_>,
    tenant: &TenantId,
    limit: u32,
) -> Result<Vec<PromptVersion>, StoreError> {
    let mut stmt = tx
        .prepare_cached(
            "SELECT body FROM prompt_versions
             WHERE tenant_id = ?1 AND json_extract(body, '$.sealed') IS NOT 1
             ORDER BY name, version LIMIT ?2",
        )
        .map_err(|e| map_sqlite(&e))?;
    let rows = stmt
        .query_map(params![tenant.as_str(), i64::from(limit)], |row| {
            row.get::<_, String>(0)
        })
        .map_err(|e| map_sqlite(&e))?;
    rows.map(|r| {
        r.map_err(|e| map_sqlite(&e))
            .and_then(|b| from_json(&b, "prompt version"))
    })
    .collect()
}

/// One approval request.
pub(crate) fn approval(
    tx: &rusqlite::Transaction<'_>,
    tenant: &TenantId,
    id: Uuid,
) -> Result<Option<ApprovalRequest>, StoreError> {
    let body: Option<String> = tx
        .prepare_cached("SELECT body FROM approval_requests WHERE tenant_id = ?1 AND id = ?2")
        .and_then(|mut s| {
            s.query_row(params![tenant.as_str(), id.to_string()], |row| row.get(0))
                .optional()
        })
        .map_err(|e| map_sqlite(&e))?;
    body.map(|b| from_json(&b, "approval request")).transpose()
}

/// One approval request and the stored state of its subject, read in the one read transaction
/// `tx` (one snapshot, one use of a reader connection).
pub(crate) fn approval_with_subject(
    tx: &rusqlite::Transaction<'_>,
    tenant: &TenantId,
    id: Uuid,
) -> Result<Option<ApprovalWithSubject>, StoreError> {
    let Some(request) = approval(tx, tenant, id)? else {
        return Ok(None);
    };
    let subject = match request.subject() {
        Subject::Model { name, version } => {
            SubjectState::Model(model(tx, tenant, name.as_str(), version.as_str())?.map(Box::new))
        }
        Subject::PromptLabel { name, label, .. } => SubjectState::PromptLabel {
            points_at: tx
                .prepare_cached(
                    "SELECT version FROM prompt_labels \
                     WHERE tenant_id = ?1 AND name = ?2 AND label = ?3",
                )
                .and_then(|mut s| {
                    s.query_row(
                        params![tenant.as_str(), name.as_str(), label.as_str()],
                        |row| row.get::<_, u32>(0),
                    )
                    .optional()
                })
                .map_err(|e| map_sqlite(&e))?,
        },
    };
    Ok(Some(ApprovalWithSubject { request, subject }))
}

/// One model version and its approval request, read in the one read transaction `tx`.
pub(crate) fn model_with_approval(
    tx: &rusqlite::Transaction<'_>,
    tenant: &TenantId,
    name: &str,
    version: &str,
) -> Result<Option<ApprovalWithSubject>, StoreError> {
    let Some(model) = model(tx, tenant, name, version)? else {
        return Ok(None);
    };
    let id = model.approval_request_id();
    let request = approval(tx, tenant, id)?.ok_or_else(|| {
        corrupt(format!(
            "model {name}@{version} names a missing approval {id}"
        ))
    })?;
    Ok(Some(ApprovalWithSubject {
        request,
        subject: SubjectState::Model(Some(Box::new(model))),
    }))
}

/// Approval requests matching `filter`, oldest first.
pub(crate) fn approvals(
    tx: &rusqlite::Transaction<'_>,
    tenant: &TenantId,
    filter: &ApprovalFilter,
    page: Page,
) -> Result<Vec<ApprovalRequest>, StoreError> {
    // Fixed SQL with "IS NULL OR" guards: one cached statement for every filter combination.
    let subject = filter
        .subject
        .as_ref()
        .map(|s| (s.resource_type(), s.resource_id()));
    let mut stmt = tx
        .prepare_cached(
            "SELECT body FROM approval_requests
             WHERE tenant_id = ?1
               AND (?2 IS NULL OR status = ?2)
               AND (?3 IS NULL OR (subject_type = ?3 AND subject_id = ?4))
               AND (?5 IS NULL OR requested_by = ?5)
               AND (?6 IS NULL OR requested_by <> ?6)
             ORDER BY created_at, rowid
             LIMIT ?7 OFFSET ?8",
        )
        .map_err(|e| map_sqlite(&e))?;
    let rows = stmt
        .query_map(
            params![
                tenant.as_str(),
                filter.status.map(|s| s.as_str()),
                subject.as_ref().map(|(t, _)| *t),
                subject.as_ref().map(|(_, i)| i.as_str()),
                filter.requested_by.as_ref().map(|a| a.as_str()),
                filter.not_requested_by.as_ref().map(|a| a.as_str()),
                i64::from(page.limit.min(1000)),
                to_sql_int(page.offset, "offset")?,
            ],
            |row| row.get::<_, String>(0),
        )
        .map_err(|e| map_sqlite(&e))?;
    rows.map(|r| {
        r.map_err(|e| map_sqlite(&e))
            .and_then(|b| from_json(&b, "approval request"))
    })
    .collect()
}

/// One model version.
pub(crate) fn model(
    tx: &rusqlite::Transaction<'_>,
    tenant: &TenantId,
    name: &str,
    version: &str,
) -> Result<Option<ModelVersion>, StoreError> {
    let body: Option<String> = tx
        .prepare_cached(
            "SELECT body FROM model_versions WHERE tenant_id = ?1 AND name = ?2 AND version = ?3",
        )
        .and_then(|mut s| {
            s.query_row(params![tenant.as_str(), name, version], |row| row.get(0))
                .optional()
        })
        .map_err(|e| map_sqlite(&e))?;
    body.map(|b| from_json(&b, "model version")).transpose()
}

fn bodies<T: DeserializeOwned>(
    tx: &rusqlite::Transaction<'_>,
    sql: &str,
    tenant: &TenantId,
    name: &str,
    what: &str,
) -> Result<Vec<T>, StoreError> {
    let mut stmt = tx.prepare_cached(sql).map_err(|e| map_sqlite(&e))?;
    let rows = stmt
        .query_map(params![tenant.as_str(), name], |row| {
            row.get::<_, String>(0)
        })
        .map_err(|e| map_sqlite(&e))?;
    rows.map(|r| {
        r.map_err(|e| map_sqlite(&e))
            .and_then(|b| from_json(&b, what))
    })
    .collect()
}

/// Every version of a model, in registration order.
pub(crate) fn model_versions(
    tx: &rusqlite::Transaction<'_>,
    tenant: &TenantId,
    name: &str,
) -> Result<Vec<ModelVersion>, StoreError> {
    bodies(
        tx,
        "SELECT body FROM model_versions WHERE tenant_id = ?1 AND name = ?2 ORDER BY rowid",
        tenant,
        name,
        "model version",
    )
}

/// Every version of a prompt, in version order.
pub(crate) fn prompt_versions(
    tx: &rusqlite::Transaction<'_>,
    tenant: &TenantId,
    name: &str,
) -> Result<Vec<PromptVersion>, StoreError> {
    bodies(
        tx,
        "SELECT body FROM prompt_versions WHERE tenant_id = ?1 AND name = ?2 ORDER BY version",
        tenant,
        name,
        "prompt version",
    )
}

/// Every label move of a prompt, oldest first.
pub(crate) fn label_moves(
    tx: &rusqlite::Transaction<'_>,
    tenant: &TenantId,
    name: &str,
) -> Result<Vec<LabelMove>, StoreError> {
    bodies(
        tx,
        "SELECT body FROM prompt_label_moves WHERE tenant_id = ?1 AND name = ?2 ORDER BY rowid",
        tenant,
        name,
        "label move",
    )
}

/// Where each label of a prompt points.
pub(crate) fn prompt_labels(
    tx: &rusqlite::Transaction<'_>,
    tenant: &TenantId,
    name: &str,
) -> Result<Vec<(String, u32)>, StoreError> {
    let mut stmt = tx
        .prepare_cached(
            "SELECT label, version FROM prompt_labels WHERE tenant_id = ?1 AND name = ?2 ORDER BY label",
        )
        .map_err(|e| map_sqlite(&e))?;
    let rows = stmt
        .query_map(params![tenant.as_str(), name], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, u32>(1)?))
        })
        .map_err(|e| map_sqlite(&e))?;
    rows.map(|r| r.map_err(|e| map_sqlite(&e))).collect()
}

/// Every data key of a tenant, oldest first.
pub(crate) fn data_keys(
    tx: &rusqlite::Transaction<'_>,
    tenant: &TenantId,
) -> Result<Vec<airisk_core::security::envelope::WrappedDataKey>, StoreError> {
    let mut stmt = tx
        .prepare_cached(
            "SELECT kid, wrapped, created_at, subject FROM data_keys WHERE tenant_id = ?1 ORDER BY created_at, rowid",
        )
        .map_err(|e| map_sqlite(&e))?;
    let rows = stmt
        .query_map(params![tenant.as_str()], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, Option<String>>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, Option<String>>(3)?,
            ))
        })
        .map_err(|e| map_sqlite(&e))?;
    let mut out = Vec::new();
    for row in rows {
        let (kid, wrapped, created_at, subject) = row.map_err(|e| map_sqlite(&e))?;
        let kid = airisk_core::security::encryption::EncryptionKeyId::parse(&kid)
            .map_err(|e| corrupt(format!("stored data key id: {e}")))?;
        let created_at = chrono::DateTime::parse_from_rfc3339(&created_at)
            .map_err(|e| corrupt(format!("stored data key time: {e}")))?
            .with_timezone(&chrono::Utc);
        out.push(airisk_core::security::envelope::WrappedDataKey {
            tenant_id: tenant.clone(),
            kid,
            wrapped,
            created_at,
            subject: subject
                .as_deref()
                .map(airisk_core::security::data_subject::SubjectPseudonym::parse)
                .transpose()
                .map_err(|e| corrupt(format!("stored data key subject: {e}")))?,
        });
    }
    Ok(out)
}
