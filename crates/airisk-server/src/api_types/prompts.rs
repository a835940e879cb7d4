//! The prompt routes' bodies (`/v1/prompts/…`): versions, labels, history and diffs.

use airisk_core::governance::prompt_registry::{DiffLine, LabelMove, PromptVersion};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{integral, ts};

/// A new prompt (version 1).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterPromptBody {
    /// Prompt name: 1 to 128 ASCII letters, digits, `.`, `_`, `-`, `/`, starting with a letter
    /// or digit (percent-encode `/` in paths).
    #[schema(
        pattern = "^[A-Za-z0-9][A-Za-z0-9._/-]*$",
        min_length = 1,
        max_length = 128
    )]
    pub name: String,
    /// The template text: visible text (no tag, bidi-control, zero-width or other hidden
    /// character; line breaks are LF), not blank, at most 262144 bytes of UTF-8.
    #[schema(pattern = "@visible-text", min_length = 1, max_length = 262_144)]
    pub template: String,
    /// Why it exists: visible text, not blank, at most 4096 bytes of UTF-8.
    #[schema(pattern = "@visible-text", min_length = 1, max_length = 4096)]
    pub change_reason: String,
}

/// A new version of an existing prompt.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdatePromptBody {
    /// The new template text (must differ from the latest version's): as for a new prompt.
    #[schema(pattern = "@visible-text", min_length = 1, max_length = 262_144)]
    pub template: String,
    /// Why it changed: visible text, not blank, at most 4096 bytes of UTF-8.
    #[schema(pattern = "@visible-text", min_length = 1, max_length = 4096)]
    pub change_reason: String,
}

/// Where to move a label.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveLabelBody {
    /// The version the label should point to. An APPROVED, unused approval request for exactly
    /// this move must exist.
    #[serde(deserialize_with = "integral::u32")]
    #[schema(minimum = 0, maximum = 4_294_967_295_u64, format = Int64)]
    pub version: u32,
}

/// One immutable prompt version.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PromptVersionView {
    /// Prompt name.
    pub name: String,
    /// Version number, from 1.
    pub version: u32,
    /// The template.
    pub template: String,
    /// SHA-256 of the template's UTF-8 bytes, hex.
    pub template_sha256: String,
    /// Who wrote it.
    pub author: String,
    /// Why it changed.
    pub change_reason: String,
    /// When.
    pub created_at: String,
    /// `true` when the template was erased by crypto-shredding the tenant's data keys: the
    /// template is then empty. Absent otherwise.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub erased: bool,
}

impl From<&PromptVersion> for PromptVersionView {
    fn from(p: &PromptVersion) -> Self {
        PromptVersionView {
            name: p.name().to_owned(),
            version: p.version(),
            template: p.template().to_owned(),
            template_sha256: p.template_sha256().to_hex(),
            author: p.author().to_string(),
            change_reason: p.change_reason().to_owned(),
            created_at: ts(p.created_at()),
            erased: p.is_erased(),
        }
    }
}

/// One move of a label.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LabelMoveView {
    /// The move's id.
    pub id: String,
    /// Prompt name.
    pub name: String,
    /// The label.
    pub label: String,
    /// Where it pointed before.
    pub from_version: Option<u32>,
    /// Where it points now.
    pub to_version: u32,
    /// Who moved it.
    pub moved_by: String,
    /// When.
    pub moved_at: String,
    /// The approval request that allowed it.
    pub approval_request_id: String,
}

impl From<&LabelMove> for LabelMoveView {
    fn from(m: &LabelMove) -> Self {
        LabelMoveView {
            id: m.id.to_string(),
            name: m.name.clone(),
            label: m.label.clone(),
            from_version: m.from_version,
            to_version: m.to_version,
            moved_by: m.moved_by.to_string(),
            moved_at: ts(m.moved_at),
            approval_request_id: m.approval_request_id.to_string(),
        }
    }
}

/// A label and the version it points to.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LabelView {
    /// The label.
    pub label: String,
    /// The version.
    pub version: u32,
}

/// A prompt's versions and label moves.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PromptHistoryView {
    /// Every version, oldest first.
    pub versions: Vec<PromptVersionView>,
    /// Every label move, oldest first.
    pub label_moves: Vec<LabelMoveView>,
    /// Where each label points now.
    pub labels: Vec<LabelView>,
}

/// One line of a diff.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DiffLineView {
    /// `same`, `removed` or `added`.
    pub op: String,
    /// The line.
    pub line: String,
}

impl From<&DiffLine> for DiffLineView {
    fn from(d: &DiffLine) -> Self {
        let (op, line) = match d {
            DiffLine::Same(l) => ("same", l),
            DiffLine::Removed(l) => ("removed", l),
            DiffLine::Added(l) => ("added", l),
        };
        DiffLineView {
            op: op.to_owned(),
            line: line.clone(),
        }
    }
}

/// A line diff between two versions.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DiffView {
    /// The older version.
    pub from: u32,
    /// The newer version.
    pub to: u32,
    /// The lines.
    pub lines: Vec<DiffLineView>,
}
