//! The one error type of the request path and its one error → HTTP status table.
//!
//! Every failure a client can cause maps to a 4xx with a JSON body
//! `{"error": "<message naming the field or problem>", "kind": "<machine kind>"}`;
//! only faults of the server itself are 5xx.

use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("request body is empty")]
    EmptyBody,
    #[error("request body is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("field `{0}` is missing")]
    MissingField(&'static str),
    #[error("header `{0}` is missing")]
    MissingHeader(&'static str),
    #[error("field `{field}` is invalid: {reason}")]
    InvalidField { field: &'static str, reason: String },
    #[error("field `image` is not valid base64: {0}")]
    InvalidBase64(String),
    #[error("field `image` is empty")]
    EmptyImage,
    #[error("field `image` is not a supported image: {0}")]
    UnsupportedImage(String),
    #[error("field `image` could not be decoded: {0}")]
    CorruptImage(String),
    #[error("image is {width}x{height} = {pixels} pixels, more than the limit of {limit} pixels")]
    ImageTooLarge {
        width: u32,
        height: u32,
        pixels: u64,
        limit: u64,
    },
    #[error("request body is larger than the limit of {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("no function named `{0}` is served here")]
    UnknownFunction(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("method not allowed: {0}")]
    MethodNotAllowed(String),
    #[error("function `{0}` is not ready yet (model loading or warming up)")]
    NotReady(String),
    #[error("server is overloaded: {0}")]
    Overloaded(String),
    #[error("request timed out after {0:?}")]
    Timeout(std::time::Duration),
    #[error("inference failed: {0}")]
    Inference(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// The status table: the only place an error becomes an HTTP status.
    pub fn status(&self) -> StatusCode {
        use Error::*;
        match self {
            EmptyBody
            | InvalidJson(_)
            | MissingField(_)
            | MissingHeader(_)
            | InvalidField { .. }
            | InvalidBase64(_)
            | EmptyImage
            | CorruptImage(_) => StatusCode::BAD_REQUEST,
            UnsupportedImage(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ImageTooLarge { .. } | BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            UnknownFunction(_) | NotFound(_) => StatusCode::NOT_FOUND,
            MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            NotReady(_) | Overloaded(_) => StatusCode::SERVICE_UNAVAILABLE,
            Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Inference(_) | Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Stable machine-readable kind, also the `kind` label of the error metric.
    pub fn kind(&self) -> &'static str {
        use Error::*;
        match self {
            EmptyBody => "empty_body",
            InvalidJson(_) => "invalid_json",
            MissingField(_) => "missing_field",
            MissingHeader(_) => "missing_header",
            InvalidField { .. } => "invalid_field",
            InvalidBase64(_) => "invalid_base64",
            EmptyImage => "empty_image",
            UnsupportedImage(_) => "unsupported_image",
            CorruptImage(_) => "corrupt_image",
            ImageTooLarge { .. } => "image_too_large",
            BodyTooLarge { .. } => "body_too_large",
            UnknownFunction(_) => "unknown_function",
            NotFound(_) => "not_found",
            MethodNotAllowed(_) => "method_not_allowed",
            NotReady(_) => "not_ready",
            Overloaded(_) => "overloaded",
            Timeout(_) => "timeout",
            Inference(_) => "inference",
            Internal(_) => "internal",
        }
    }

    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidField {
            field,
            reason: reason.into(),
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        metrics::counter!("nuclio_ort_errors_total", "kind" => self.kind()).increment(1);
        let body = serde_json::json!({ "error": self.to_string(), "kind": self.kind() });
        let mut response = (status, axum::Json(body)).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            // Tell well-behaved clients (and load generators) when to come back.
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_faults_are_4xx_and_server_faults_5xx() {
        let client = [
            Error::EmptyBody,
            Error::InvalidJson("x".into()),
            Error::MissingField("image"),
            Error::invalid("threshold", "NaN"),
            Error::InvalidBase64("x".into()),
            Error::EmptyImage,
            Error::UnsupportedImage("x".into()),
            Error::CorruptImage("x".into()),
            Error::ImageTooLarge {
                width: 1,
                height: 1,
                pixels: 1,
                limit: 0,
            },
            Error::BodyTooLarge { limit: 1 },
            Error::UnknownFunction("f".into()),
        ];
        for e in client {
            assert!(e.status().is_client_error(), "{e:?} -> {}", e.status());
        }
        assert!(Error::Inference("x".into()).status().is_server_error());
        assert_eq!(
            Error::NotReady("f".into()).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
