//! The console's stylesheet and script, compiled into the binary (no CDN, nothing fetched).

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::error::ConsoleError;
use super::requests::ConsolePath;

/// Where the stylesheet is served.
pub(crate) const CSS_PATH: &str = "/console/assets/console.css";
/// Where the script is served.
pub(crate) const JS_PATH: &str = "/console/assets/console.js";

const CSS: &str = include_str!("../../assets/console.css");
const JS: &str = include_str!("../../assets/console.js");

/// GET `/console/assets/{file}`.
pub(crate) async fn serve(
    ConsolePath(file): ConsolePath<String>,
) -> Result<Response, ConsoleError> {
    let (body, content_type) = match file.as_str() {
        "console.css" => (CSS, "text/css; charset=utf-8"),
        "console.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return Err(ConsoleError::not_found("asset")),
    };
    let mut response = body.into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Not personal, and fixed per build: a short cache keeps pages quick without stale upgrades.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    Ok(response)
}
