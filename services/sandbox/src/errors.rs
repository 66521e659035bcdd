//! Error bodies in each provider's real wire shape.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::config::Provider;

pub fn correlation_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// LinkedIn REST error: `{"status":..,"serviceErrorCode":..,"code":"..","message":".."}`.
pub fn linkedin(status: StatusCode, code: &str, service_code: Option<u32>, msg: &str) -> Response {
    let mut body = json!({"status": status.as_u16(), "code": code, "message": msg});
    if let (Some(sc), Some(obj)) = (service_code, body.as_object_mut()) {
        obj.insert("serviceErrorCode".into(), Value::from(sc));
    }
    (status, Json(body)).into_response()
}

pub fn linkedin_bad_request(msg: &str) -> Response {
    linkedin(StatusCode::BAD_REQUEST, "ILLEGAL_ARGUMENT", Some(100), msg)
}

/// HubSpot API error: `{"status":"error","message":..,"correlationId":..,"category":..}`.
/// The answer carries the same id in `X-HubSpot-Correlation-Id`, as HubSpot's do.
pub fn hubspot(status: StatusCode, category: &str, msg: &str) -> Response {
    let id = correlation_id();
    (
        status,
        [("x-hubspot-correlation-id", id.clone())],
        Json(json!({
            "status": "error",
            "message": msg,
            "correlationId": id,
            "category": category,
        })),
    )
        .into_response()
}

pub fn hubspot_validation(msg: &str) -> Response {
    hubspot(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", msg)
}

/// Salesforce REST error: `[{"message":..,"errorCode":..}]`.
pub fn salesforce(status: StatusCode, code: &str, msg: &str) -> Response {
    (status, Json(json!([{"message": msg, "errorCode": code}]))).into_response()
}

/// What a provider answers while it is down.
pub fn unavailable(p: Provider) -> Response {
    let s = StatusCode::SERVICE_UNAVAILABLE;
    match p {
        Provider::Linkedin => linkedin(s, "SERVICE_UNAVAILABLE", None, "Service Unavailable"),
        Provider::Hubspot => hubspot(
            s,
            "SERVICE_UNAVAILABLE",
            "The service is temporarily unavailable",
        ),
        Provider::Salesforce => salesforce(
            s,
            "SERVER_UNAVAILABLE",
            "The server is temporarily unavailable",
        ),
    }
}

/// Unknown route under a provider prefix.
pub fn not_found(p: Provider) -> Response {
    let s = StatusCode::NOT_FOUND;
    match p {
        Provider::Linkedin => linkedin(s, "NOT_FOUND", None, "Resource not found"),
        Provider::Hubspot => hubspot(s, "OBJECT_NOT_FOUND", "Resource not found"),
        Provider::Salesforce => salesforce(s, "NOT_FOUND", "The requested resource does not exist"),
    }
}

/// A method the route does not take, in the provider's shape (not an empty 405).
pub fn method_not_allowed(p: Provider) -> Response {
    let s = StatusCode::METHOD_NOT_ALLOWED;
    match p {
        Provider::Linkedin => linkedin(s, "METHOD_NOT_ALLOWED", None, "Method not allowed"),
        Provider::Hubspot => hubspot(s, "METHOD_NOT_ALLOWED", "Method not allowed"),
        Provider::Salesforce => salesforce(
            s,
            "METHOD_NOT_ALLOWED",
            "HTTP Method is not allowed for this resource",
        ),
    }
}
