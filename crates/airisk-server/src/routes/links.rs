//! OpenAPI links: how the response of an operation that creates something supplies the
//! parameters of the operations on it (registering a model leads to reading, approving, rejecting
//! and deploying it; a new prompt to reading, updating, diffing it and moving a label; a new
//! approval request to reading and deciding it). Clients and stateful testers (Schemathesis)
//! follow them.

use serde_json::{Map, Value, json};

/// `(from path, from method, status, link name, operation id, parameters, request body)`.
type LinkSpec = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
    Option<&'static str>,
);

const MODEL: &[(&str, &str)] = &[
    ("name", "$response.body#/model/name"),
    ("version", "$response.body#/model/version"),
];
const MODEL_REQUEST: &[(&str, &str)] = &[("id", "$response.body#/approval_request/id")];
const PROMPT: &[(&str, &str)] = &[("name", "$response.body#/name")];
const PROMPT_VERSION: &[(&str, &str)] = &[
    ("name", "$response.body#/name"),
    ("version", "$response.body#/version"),
];
const PROMPT_DIFF: &[(&str, &str)] = &[
    ("name", "$response.body#/name"),
    ("from", "$response.body#/version"),
    ("to", "$response.body#/version"),
];
const REQUEST: &[(&str, &str)] = &[("id", "$response.body#/id")];
const REQUESTED_MOVE: &[(&str, &str)] = &[
    ("name", "$response.body#/subject/name"),
    ("label", "$response.body#/subject/label"),
];

const LINKS: &[LinkSpec] = &[
    (
        "/v1/models",
        "post",
        "201",
        "GetModelVersion",
        "getModelVersion",
        MODEL,
        None,
    ),
    (
        "/v1/models",
        "post",
        "201",
        "ListModelVersions",
        "listModelVersions",
        &[("name", "$response.body#/model/name")],
        None,
    ),
    (
        "/v1/models",
        "post",
        "201",
        "ApproveModel",
        "approveModel",
        MODEL,
        None,
    ),
    (
        "/v1/models",
        "post",
        "201",
        "RejectModel",
        "rejectModel",
        MODEL,
        None,
    ),
    (
        "/v1/models",
        "post",
        "201",
        "AuthorizeDeployment",
        "authorizeDeployment",
        MODEL,
        None,
    ),
    (
        "/v1/models",
        "post",
        "201",
        "GetApprovalRequest",
        "getApproval",
        MODEL_REQUEST,
        None,
    ),
    (
        "/v1/models",
        "post",
        "201",
        "ApproveRequest",
        "approveRequest",
        MODEL_REQUEST,
        None,
    ),
    (
        "/v1/models",
        "post",
        "201",
        "RejectRequest",
        "rejectRequest",
        MODEL_REQUEST,
        None,
    ),
    (
        "/v1/models",
        "post",
        "201",
        "CancelRequest",
        "cancelRequest",
        MODEL_REQUEST,
        None,
    ),
    (
        "/v1/prompts",
        "post",
        "201",
        "GetPrompt",
        "getPrompt",
        PROMPT_VERSION,
        None,
    ),
    (
        "/v1/prompts",
        "post",
        "201",
        "PromptHistory",
        "promptHistory",
        PROMPT,
        None,
    ),
    (
        "/v1/prompts",
        "post",
        "201",
        "UpdatePrompt",
        "updatePrompt",
        PROMPT,
        None,
    ),
    (
        "/v1/prompts",
        "post",
        "201",
        "PromptDiff",
        "promptDiff",
        PROMPT_DIFF,
        None,
    ),
    (
        "/v1/prompts/{name}/versions",
        "post",
        "201",
        "GetPrompt",
        "getPrompt",
        PROMPT_VERSION,
        None,
    ),
    (
        "/v1/prompts/{name}/versions",
        "post",
        "201",
        "PromptDiff",
        "promptDiff",
        PROMPT_DIFF,
        None,
    ),
    (
        "/v1/approvals",
        "post",
        "201",
        "GetApprovalRequest",
        "getApproval",
        REQUEST,
        None,
    ),
    (
        "/v1/approvals",
        "post",
        "201",
        "ApproveRequest",
        "approveRequest",
        REQUEST,
        None,
    ),
    (
        "/v1/approvals",
        "post",
        "201",
        "RejectRequest",
        "rejectRequest",
        REQUEST,
        None,
    ),
    (
        "/v1/approvals",
        "post",
        "201",
        "CancelRequest",
        "cancelRequest",
        REQUEST,
        None,
    ),
    (
        "/v1/approvals",
        "post",
        "201",
        "MovePromptLabel",
        "movePromptLabel",
        REQUESTED_MOVE,
        Some("$response.body#/subject/version"),
    ),
];

/// Adds every link of [`LINKS`] to `doc` (an OpenAPI document as JSON). A link whose response
/// is missing is skipped, so a renamed route cannot break the document.
pub(super) fn add(doc: &mut Value) {
    for (path, method, status, name, operation_id, parameters, body) in LINKS {
        let pointer = format!(
            "/paths/{}/{method}/responses/{status}",
            path.replace('~', "~0").replace('/', "~1")
        );
        let Some(response) = doc.pointer_mut(&pointer).and_then(Value::as_object_mut) else {
            continue;
        };
        let links = response
            .entry("links")
            .or_insert_with(|| Value::Object(Map::new()));
        let mut link = json!({
            "operationId": operation_id,
            "parameters": parameters.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect::<Map<_, _>>(),
        });
        if let (Some(body), Some(l)) = (body, link.as_object_mut()) {
            l.insert("requestBody".into(), json!({ "version": body }));
        }
        if let Some(links) = links.as_object_mut() {
            links.insert((*name).to_owned(), link);
        }
    }
}
