//! Request bodies and responses in SCIM's media type.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::error::{ApiError, SCIM_JSON};
use crate::scim::ScimError;

/// A JSON body sent as `application/scim+json`, `application/json` or without a content type
/// (Okta's spec test posts without one). Bad JSON is `400 invalidSyntax` with its position;
/// an oversize body is 413.
#[derive(Debug)]
pub struct ScimBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for ScimBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(ct) = req.headers().get(header::CONTENT_TYPE) {
            let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
            let mime = ct.split(';').next().unwrap_or("").trim();
            if !(mime.is_empty()
                || mime == SCIM_JSON
                || mime == "application/json"
                || mime.ends_with("+json")
                || mime == "text/plain")
            {
                return Err(ScimError::status(
                    415,
                    format!("unsupported content type {mime:?}; send application/scim+json"),
                )
                .into());
            }
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rej| {
            if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::Scim(ScimError::status(413, "the request body is too large"))
            } else {
                ApiError::Scim(ScimError::invalid_syntax(
                    "the request body could not be read",
                ))
            }
        })?;
        let text = std::str::from_utf8(&bytes).map_err(|e| {
            ScimError::invalid_syntax(format!("the body is not UTF-8 (byte {})", e.valid_up_to()))
        })?;
        let value: Value = serde_json::from_str(text).map_err(|e| {
            ScimError::invalid_syntax(format!(
                "malformed JSON at line {}, column {}: {}",
                e.line(),
                e.column(),
                classify(&e)
            ))
        })?;
        Ok(ScimBody(value))
    }
}

fn classify(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Eof => "unexpected end of input",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "invalid data",
        serde_json::error::Category::Io => "read error",
    }
}

/// A SCIM success response.
#[derive(Debug)]
pub struct ScimResponse {
    pub status: StatusCode,
    pub body: Option<Value>,
    pub etag: Option<String>,
    pub location: Option<String>,
}

impl ScimResponse {
    /// 200 with a body.
    pub fn ok(body: Value) -> Self {
        Self {
            status: StatusCode::OK,
            body: Some(body),
            etag: None,
            location: None,
        }
    }
}

impl IntoResponse for ScimResponse {
    fn into_response(self) -> Response {
        let mut headers = HeaderMap::new();
        if let Some(e) = self
            .etag
            .as_deref()
            .and_then(|e| HeaderValue::from_str(e).ok())
        {
            headers.insert(header::ETAG, e);
        }
        if let Some(l) = self
            .location
            .as_deref()
            .and_then(|l| HeaderValue::from_str(l).ok())
        {
            headers.insert(header::LOCATION, l);
        }
        match self.body {
            Some(body) => {
                headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON));
                // `to_vec` writes bytes straight into the buffer; `to_string` goes through
                // `fmt::Write` piece by piece, at about twice the instructions.
                let bytes = serde_json::to_vec(&body).unwrap_or_default();
                (self.status, headers, bytes).into_response()
            }
            None => (self.status, headers).into_response(),
        }
    }
}
