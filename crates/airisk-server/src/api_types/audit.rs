//! The audit routes' bodies (`/v1/audit/…`): appends, receipts, entries, verification,
//! checkpoints and proofs.

use airisk_core::governance::audit_record::AuditReceipt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::{AuditMetadata, ts};

/// An application event to append to the caller's tenant's ledger. The actor, tenant and
/// correlation id are the request's, never the body's.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppendAuditBody {
    /// What was done, e.g. `report.generate` (lower-case letters, digits, `.`, `_`, `-`; at most
    /// 128).
    #[schema(pattern = "^[a-z0-9._-]+$", min_length = 1, max_length = 128)]
    pub action: String,
    /// The kind of thing acted on (one line, no control characters; at most 64 bytes of UTF-8).
    #[schema(
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$",
        min_length = 1,
        max_length = 64
    )]
    pub resource_type: String,
    /// Which one (one line, no control characters; at most 256 bytes of UTF-8).
    #[schema(
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$",
        min_length = 1,
        max_length = 256
    )]
    pub resource_id: String,
    /// Why, in words (no control characters but tab and line feed; at most 4096 bytes of UTF-8;
    /// empty is the same as absent).
    #[serde(default)]
    #[schema(
        pattern = "^[^\\u0000-\\u0008\\u000B-\\u001F\\u007F-\\u009F]*$",
        max_length = 4096
    )]
    pub reason: Option<String>,
    /// Extra structured context (a JSON object, at most 64 KiB as canonical JSON).
    #[serde(default)]
    #[schema(value_type = Option<AuditMetadata>)]
    pub metadata: Option<Value>,
    /// Context the caller marks sensitive (a JSON object; keys must not repeat `metadata`'s):
    /// each value is sealed under the tenant's data key before the record is built, so the
    /// ledger holds only ciphertext (`sealed_metadata` in the leaf). Never logged.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub sensitive_metadata: Option<Value>,
    /// The data subject the sensitive values are about (e.g. a customer id: 1 to 128 visible
    /// ASCII characters, compared exactly, case included; nothing is trimmed or folded). With it,
    /// `sensitive_metadata` is sealed under that subject's own data key, so one person's values
    /// can be erased alone (`POST /v1/tenant/shred` with `subject`). Without sensitive values it
    /// applies to nothing and is not used. Stored only as a keyed pseudonym, never in plaintext;
    /// never logged.
    #[serde(default)]
    #[schema(pattern = "^[!-~]+$", min_length = 1, max_length = 128)]
    pub data_subject: Option<String>,
}

/// What an append returns once the record is durable.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReceiptView {
    /// The record's id.
    pub id: String,
    /// Its tenant.
    pub tenant_id: String,
    /// Its position in the tenant's ledger, gapless from 0.
    pub seq: u64,
    /// SHA-256(0x00 || leaf), hex.
    pub leaf_hash: String,
    /// When it was recorded.
    pub recorded_at: String,
}

impl From<&AuditReceipt> for ReceiptView {
    fn from(r: &AuditReceipt) -> Self {
        ReceiptView {
            id: r.id.to_string(),
            tenant_id: r.tenant_id.to_string(),
            seq: r.seq,
            leaf_hash: r.leaf_hash.clone(),
            recorded_at: ts(r.recorded_at),
        }
    }
}

/// One audit entry.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditEntryView {
    /// Position in the ledger.
    pub seq: u64,
    /// SHA-256(0x00 || leaf), hex.
    pub leaf_hash: String,
    /// The exact leaf bytes (RFC 8785 canonical JSON), base64: what the tree hashes.
    pub leaf: String,
    /// The record, decoded from the leaf.
    #[schema(value_type = Object)]
    pub record: Value,
}

/// An audit search's `outcome` filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeParam {
    /// The action was done.
    Success,
    /// The action was refused.
    Denied,
}

/// An audit search's `order`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderParam {
    /// Oldest first.
    Asc,
    /// Newest first.
    Desc,
}

/// A page of audit entries.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditPage {
    /// Matching entries, in the requested order.
    pub entries: Vec<AuditEntryView>,
    /// Pass as `cursor` to continue; absent on the last page.
    pub next_cursor: Option<u64>,
}

/// The outcome of recomputing the caller's tenant's ledger.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VerifyView {
    /// The tenant.
    pub tenant: String,
    /// True when every leaf, root and checkpoint signature checked out.
    pub intact: bool,
    /// Entries read and checked.
    pub entries: u64,
    /// The recomputed root, hex (when intact).
    pub root: Option<String>,
    /// Stored checkpoints whose signature and root were confirmed.
    pub checkpoints_verified: u64,
    /// The first bad entry, where one can be named.
    pub first_bad_seq: Option<u64>,
    /// What is wrong, if anything.
    pub problem: Option<String>,
    /// The size of the kept checkpoint the caller gave (`POST /v1/audit/verify`); absent for a
    /// plain `GET`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept_checkpoint_size: Option<u64>,
    /// True when a kept checkpoint was given and the ledger's first `kept_checkpoint_size`
    /// entries recompute to exactly the root it signed: the ledger still holds what it held then,
    /// and everything since was appended after it (no rollback, no rewrite).
    #[serde(default)]
    pub kept_checkpoint_verified: bool,
}

/// A checkpoint kept from an earlier moment, to check the ledger against (rollback detection).
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyCheckpointBody {
    /// The complete signed note (C2SP tlog-checkpoint text plus signature lines) as kept, e.g.
    /// the `note` of an earlier `GET /v1/audit/checkpoint` or the first line of an export. At
    /// most 8192 bytes.
    #[schema(max_length = 8192, min_length = 1)]
    pub checkpoint: String,
}

/// A signed checkpoint (C2SP tlog-checkpoint signed note).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CheckpointView {
    /// The tree size it commits to.
    pub size: u64,
    /// The root it commits to, hex.
    pub root: String,
    /// The signed note text.
    pub note: String,
    /// When it was signed.
    pub signed_at: String,
    /// The verifier key (`name+keyid+base64`) to check the note with.
    pub verifier_key: String,
}

/// An RFC 6962 inclusion proof of one entry.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InclusionProofView {
    /// The entry.
    pub seq: u64,
    /// The tree size proved against.
    pub tree_size: u64,
    /// The entry's leaf hash, hex.
    pub leaf_hash: String,
    /// The entry's exact leaf bytes, base64.
    pub leaf: String,
    /// The root of the tree of `tree_size` entries, hex.
    pub root: String,
    /// The audit path, hex hashes, leaf to root.
    pub proof: Vec<String>,
    /// The signed checkpoint of exactly `tree_size`, when one is stored.
    pub checkpoint: Option<String>,
    /// The verifier key for the checkpoint.
    pub verifier_key: String,
}

/// An RFC 6962 consistency proof between two tree sizes.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConsistencyProofView {
    /// The older size.
    pub size1: u64,
    /// The newer size.
    pub size2: u64,
    /// Root at `size1`, hex.
    pub root1: String,
    /// Root at `size2`, hex.
    pub root2: String,
    /// The proof, hex hashes.
    pub proof: Vec<String>,
}
