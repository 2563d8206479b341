//! Request bodies and responses in SCIM's media type.

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;

use super::error::{ApiError, SCIM_JSON};
use crate::scim::ScimError;
use crate::scim::resource::{Preconditions, Projection};
use crate::scim::schema::Resource;

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

/// `attributes` / `excludedAttributes` on single-resource requests (RFC 7644 §3.9).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectionParams {
    pub attributes: Option<String>,
    pub excluded_attributes: Option<String>,
}

impl ProjectionParams {
    /// The projection these parameters ask of a `res` resource.
    pub fn projection(&self, res: Resource) -> Result<Projection, ApiError> {
        Ok(Projection::parse(
            res,
            self.attributes.as_deref(),
            self.excluded_attributes.as_deref(),
        )?)
    }

    /// Whether the request named attributes at all (either parameter).
    pub fn given(&self) -> bool {
        self.attributes.is_some() || self.excluded_attributes.is_some()
    }
}

/// `If-Match` / `If-None-Match` (RFC 7644 §3.14).
pub fn preconditions(headers: &HeaderMap) -> Preconditions<'_> {
    Preconditions {
        if_match: headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()),
        if_none_match: headers
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok()),
    }
}

/// The body of a [`ScimResponse`].
#[derive(Debug)]
pub enum Payload {
    /// No body (204, 304).
    Empty,
    /// A document, serialized when the response is sent.
    Json(Value),
    /// A document already written as bytes (lists and groups are streamed into a buffer).
    Written(Vec<u8>),
}

/// A SCIM success response: every handler's answer.
#[derive(Debug)]
pub struct ScimResponse {
    pub status: StatusCode,
    pub body: Payload,
    pub etag: Option<String>,
    pub location: Option<String>,
}

impl ScimResponse {
    /// 200 with a body.
    pub fn ok(body: Value) -> Self {
        Self::json(StatusCode::OK, body)
    }

    /// `status` with a document.
    pub fn json(status: StatusCode, body: Value) -> Self {
        Self {
            status,
            body: Payload::Json(body),
            etag: None,
            location: None,
        }
    }

    /// `status` with a document already written.
    pub fn written(status: StatusCode, body: Vec<u8>) -> Self {
        Self {
            status,
            body: Payload::Written(body),
            etag: None,
            location: None,
        }
    }

    /// `status` without a body.
    pub fn empty(status: StatusCode) -> Self {
        Self {
            status,
            body: Payload::Empty,
            etag: None,
            location: None,
        }
    }

    /// With an `ETag`.
    pub fn with_etag(mut self, etag: String) -> Self {
        self.etag = Some(etag);
        self
    }

    /// With a `Location`, when there is one.
    pub fn with_location(mut self, location: Option<String>) -> Self {
        self.location = location;
        self
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
        let bytes = match self.body {
            Payload::Empty => return (self.status, headers).into_response(),
            // `to_vec` writes bytes straight into the buffer; `to_string` goes through
            // `fmt::Write` piece by piece, at about twice the instructions.
            Payload::Json(body) => serde_json::to_vec(&body).unwrap_or_default(),
            Payload::Written(bytes) => bytes,
        };
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON));
        (self.status, headers, Body::from(bytes)).into_response()
    }
}
