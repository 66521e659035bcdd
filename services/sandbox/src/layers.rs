//! Middleware shared by the three providers: request log, outage, latency (every provider
//! route), and for API routes: rate limits / usage, bearer token check, malformed responses.

use std::time::{Duration, Instant};

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::config::{Provider, RateLimit};
use crate::errors::{self, correlation_id};
use crate::oauth::{TokenProblem, bearer};
use crate::state::{AppState, Controls, Hostile, HostileMode, LoggedRequest, OutageMode};
use crate::util::{fmt_iso, parse_form};

const MAX_BODY: usize = 8 * 1024 * 1024;
const SECRET_KEYS: [&str; 6] = [
    "code",
    "client_secret",
    "refresh_token",
    "code_verifier",
    "access_token",
    "password",
];

fn summarize(headers: &HeaderMap, body: &[u8]) -> Option<String> {
    if body.is_empty() {
        return None;
    }
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let text = String::from_utf8_lossy(body);
    if ct.starts_with("application/x-www-form-urlencoded") {
        let parts: Vec<String> = parse_form(&text)
            .into_iter()
            .map(|(k, v)| {
                if SECRET_KEYS.contains(&k.as_str()) {
                    format!("{k}=***")
                } else {
                    format!("{k}={v}")
                }
            })
            .collect();
        return Some(parts.join("&"));
    }
    let mut s: String = text.chars().take(500).collect();
    if text.chars().count() > 500 {
        s.push('…');
    }
    Some(s)
}

/// Outermost layer of every provider: log, outage, latency.
pub async fn provider_layer(
    State((s, p)): State<(AppState, Provider)>,
    req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let time = fmt_iso(s.clock.now_ms());
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(String::from);
    let (parts, body) = req.into_parts();
    let bytes = match to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return (StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response();
        }
    };
    let body_summary = summarize(&parts.headers, &bytes);
    let req = Request::from_parts(parts, Body::from(bytes));
    let (outage, latency) = {
        let c = s.controls(p);
        (c.outage, c.latency_ms)
    };
    let mut entry = LoggedRequest {
        seq: 0,
        provider: p,
        method,
        path,
        query,
        body: body_summary,
        status: 0,
        time,
        duration_ms: 0,
    };
    let resp = match outage {
        Some(OutageMode::Unavailable) => errors::unavailable(p),
        Some(OutageMode::Timeout) => {
            // Logged with status 0: no response will ever be sent.
            s.record(entry);
            return std::future::pending::<Response>().await;
        }
        None => {
            if latency > 0 {
                tokio::time::sleep(Duration::from_millis(latency)).await;
            }
            next.run(req).await
        }
    };
    entry.status = resp.status().as_u16();
    entry.duration_ms = started.elapsed().as_millis() as u64;
    s.record(entry);
    resp
}

fn unauthorized(p: Provider, problem: TokenProblem) -> Response {
    let s401 = StatusCode::UNAUTHORIZED;
    match p {
        Provider::Linkedin => match problem {
            TokenProblem::Missing => errors::linkedin(
                s401,
                "EMPTY_ACCESS_TOKEN",
                Some(65604),
                "Empty oauth2 access token",
            ),
            TokenProblem::Invalid => errors::linkedin(
                s401,
                "INVALID_ACCESS_TOKEN",
                Some(65600),
                "Invalid access token",
            ),
            TokenProblem::Expired { .. } => errors::linkedin(
                s401,
                "EXPIRED_ACCESS_TOKEN",
                Some(65600),
                "The token used in the request has expired",
            ),
            TokenProblem::Revoked => errors::linkedin(
                s401,
                "REVOKED_ACCESS_TOKEN",
                Some(65601),
                "The token used in the request has been revoked by the user",
            ),
        },
        Provider::Hubspot => match problem {
            TokenProblem::Expired { ago_ms } => {
                let minutes = ago_ms / 60_000;
                errors::hubspot(
                    s401,
                    "EXPIRED_AUTHENTICATION",
                    &format!(
                        "The OAuth token used to make this call expired {minutes} minute(s) ago."
                    ),
                )
            }
            _ => errors::hubspot(
                s401,
                "INVALID_AUTHENTICATION",
                "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
            ),
        },
        Provider::Salesforce => {
            errors::salesforce(s401, "INVALID_SESSION_ID", "Session expired or invalid")
        }
    }
}

fn header_value(v: impl ToString) -> HeaderValue {
    HeaderValue::from_str(&v.to_string()).unwrap_or(HeaderValue::from_static("0"))
}

/// API routes: limits, token check, malformed responses.
pub async fn api_layer(
    State((s, p)): State<(AppState, Provider)>,
    req: Request,
    next: Next,
) -> Response {
    let mut extra: Vec<(&'static str, HeaderValue)> = Vec::new();
    // HubSpot: every API answer carries a correlation id (the one in its error bodies).
    let hubspot_correlation = correlation_id();
    let is_search = p == Provider::Hubspot
        && req.method() == Method::POST
        && req.uri().path().ends_with("/search");
    {
        let mut c = s.controls(p);
        c.requests += 1;
        match p {
            Provider::Hubspot => {
                // Hostile: a 429 whose Retry-After claims years (issue 15.10).
                let throttle = match c.hostile.as_mut() {
                    Some(h) if h.mode == Some(HostileMode::Throttle) => {
                        let left = h.count.get_or_insert(3);
                        (*left > 0).then(|| {
                            *left -= 1;
                            h.retry_after.unwrap_or(315_360_000)
                        })
                    }
                    _ => None,
                };
                if let Some(secs) = throttle {
                    c.rejected += 1;
                    let body = json!({
                        "status": "error",
                        "message": "You have reached your ten_secondly_rolling limit.",
                        "errorType": "RATE_LIMIT",
                        "correlationId": hubspot_correlation,
                        "policyName": "TEN_SECONDLY_ROLLING",
                    });
                    let mut resp =
                        (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
                    extra.push(("retry-after", header_value(secs)));
                    add_headers(&mut resp, extra);
                    set_hubspot_correlation(&mut resp, &hubspot_correlation);
                    return resp;
                }
                if let Some(rl) = c.rate {
                    let refused = if is_search {
                        hubspot_search_window(&mut c, rl, s.clock.now_ms())
                    } else {
                        hubspot_general_window(&mut c, rl, &mut extra)
                    };
                    if let Some((msg, policy, group)) = refused {
                        c.rejected += 1;
                        let mut body = json!({
                            "status": "error",
                            "message": msg,
                            "errorType": "RATE_LIMIT",
                            "correlationId": hubspot_correlation,
                            "policyName": policy,
                        });
                        if let (Some(g), Some(o)) = (group, body.as_object_mut()) {
                            o.insert("groupName".into(), g.into());
                        }
                        let mut resp =
                            (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
                        add_headers(&mut resp, extra);
                        set_hubspot_correlation(&mut resp, &hubspot_correlation);
                        return resp;
                    }
                }
            }
            Provider::Salesforce => {
                c.daily_used += 1;
                match c.daily_limit {
                    Some(limit) => {
                        extra.push((
                            "sforce-limit-info",
                            header_value(format!(
                                "api-usage={}/{}",
                                c.daily_used.min(limit),
                                limit
                            )),
                        ));
                        if c.daily_used > limit {
                            c.rejected += 1;
                            let mut resp = errors::salesforce(
                                StatusCode::FORBIDDEN,
                                "REQUEST_LIMIT_EXCEEDED",
                                "TotalRequests Limit exceeded.",
                            );
                            add_headers(&mut resp, extra);
                            return resp;
                        }
                    }
                    None => extra.push((
                        "sforce-limit-info",
                        header_value(format!("api-usage={}/{}", c.daily_used, u32::MAX)),
                    )),
                }
            }
            Provider::Linkedin => {}
        }
    }

    let check = match bearer(req.headers()) {
        None => Err(TokenProblem::Missing),
        Some(t) => s.oauth(p).check_access(t, s.clock.now_ms()),
    };
    if let Err(problem) = check {
        let mut resp = unauthorized(p, problem);
        add_headers(&mut resp, extra);
        if p == Provider::Hubspot {
            set_hubspot_correlation(&mut resp, &hubspot_correlation);
        }
        return resp;
    }

    // The version after the token: a gateway authenticates before it routes to a versioned
    // API (not verified against LinkedIn; an expired token with a sunset version answers 401,
    // so a client refreshes, and learns of the version with its fresh token).
    if p == Provider::Linkedin {
        match req.headers().get("linkedin-version").map(|v| v.to_str()) {
            None => {
                return errors::linkedin(
                    StatusCode::BAD_REQUEST,
                    "VERSION_MISSING",
                    None,
                    "A version must be present. Please specify a version by adding the LinkedIn-Version header.",
                );
            }
            Some(Ok(v))
                if crate::linkedin_versions::is_active(
                    v,
                    crate::util::to_datetime(s.clock.now_ms()).date_naive(),
                ) => {}
            Some(v) => {
                let shown = v.unwrap_or("?").to_string();
                return errors::linkedin(
                    StatusCode::UPGRADE_REQUIRED,
                    "NONEXISTENT_VERSION",
                    None,
                    &format!("Requested version {shown} is not active"),
                );
            }
        }
    }

    let hostile = s.controls(p).hostile.clone();
    let mode = hostile.as_ref().and_then(|h| h.mode);
    let paging = matches!(
        mode,
        Some(HostileMode::RepeatCursor | HostileMode::EndlessPages)
    ) && p == Provider::Hubspot
        && is_list_page(&req);
    // A hostile cursor serves the first page again: the request goes on without it.
    let (req, cursor_no) = if paging { strip_after(req) } else { (req, 0) };
    let mut resp = next.run(req).await;
    if resp.status().is_success() {
        match (mode, &hostile) {
            (Some(HostileMode::HugeBody), Some(h)) => {
                let mut resp = huge_body(h);
                add_headers(&mut resp, extra);
                return resp;
            }
            (Some(m), _) if paging => {
                let cursor = match m {
                    HostileMode::RepeatCursor => "hostile-1".to_string(),
                    _ => format!("hostile-{}", cursor_no + 1),
                };
                resp = with_next_cursor(resp, &cursor).await;
            }
            _ => {}
        }
        let malformed = {
            let mut c = s.controls(p);
            if c.malformed_next > 0 {
                c.malformed_next -= 1;
                true
            } else {
                false
            }
        };
        if malformed {
            resp = truncate_body(resp).await;
        }
    }
    add_headers(&mut resp, extra);
    if p == Provider::Hubspot {
        set_hubspot_correlation(&mut resp, &hubspot_correlation);
    }
    resp
}

/// HubSpot's general rolling window (real time): counts the request and says so in the
/// `X-HubSpot-RateLimit-Interval-Milliseconds`, `-Max` and `-Remaining` headers; never the
/// `-Daily` ones, which OAuth-authenticated calls (all of the sandbox's) do not carry. The
/// daily cap is still counted and enforced (a sandbox knob). `Some((message, policy, group))`
/// when the request is refused.
fn hubspot_general_window(
    c: &mut Controls,
    rl: RateLimit,
    extra: &mut Vec<(&'static str, HeaderValue)>,
) -> Option<(&'static str, &'static str, Option<&'static str>)> {
    let now = Instant::now();
    let interval = Duration::from_millis(rl.interval_ms);
    while c.window.front().is_some_and(|t| *t + interval <= now) {
        c.window.pop_front();
    }
    let daily_over = c.daily_used >= rl.daily;
    let window_over = c.window.len() >= rl.max as usize;
    if !daily_over && !window_over {
        c.window.push_back(now);
        c.daily_used += 1;
        c.peak_window = c.peak_window.max(c.window.len() as u32);
    }
    extra.push((
        "x-hubspot-ratelimit-interval-milliseconds",
        header_value(rl.interval_ms),
    ));
    extra.push(("x-hubspot-ratelimit-max", header_value(rl.max)));
    extra.push((
        "x-hubspot-ratelimit-remaining",
        header_value((rl.max as usize).saturating_sub(c.window.len())),
    ));
    if daily_over {
        Some(("You have reached your daily limit.", "DAILY", None))
    } else if window_over {
        Some((
            "You have reached your ten_secondly_rolling limit.",
            "TEN_SECONDLY_ROLLING",
            None,
        ))
    } else {
        None
    }
}

/// HubSpot's search limit: its own rolling window (sandbox clock), apart from the general one,
/// and no `X-HubSpot-RateLimit-*` headers. A search counts toward the daily total like any call.
fn hubspot_search_window(
    c: &mut Controls,
    rl: RateLimit,
    now_ms: i64,
) -> Option<(&'static str, &'static str, Option<&'static str>)> {
    let interval = i64::try_from(c.search_limit.interval_ms).unwrap_or(i64::MAX);
    while c
        .search_window
        .front()
        .is_some_and(|t| t.saturating_add(interval) <= now_ms)
    {
        c.search_window.pop_front();
    }
    if c.daily_used >= rl.daily {
        return Some(("You have reached your daily limit.", "DAILY", None));
    }
    if c.search_window.len() >= c.search_limit.max as usize {
        return Some((
            "You have reached your secondly limit.",
            "SECONDLY",
            Some("publicapi:crm-search"),
        ));
    }
    c.search_window.push_back(now_ms);
    c.daily_used += 1;
    c.search_peak_window = c.search_peak_window.max(c.search_window.len() as u32);
    None
}

/// `X-HubSpot-Correlation-Id`, unless the answer already has one (an error body's own).
fn set_hubspot_correlation(resp: &mut Response, id: &str) {
    if !resp.headers().contains_key(HUBSPOT_CORRELATION) {
        resp.headers_mut()
            .insert(HUBSPOT_CORRELATION, header_value(id));
    }
}

const HUBSPOT_CORRELATION: HeaderName = HeaderName::from_static("x-hubspot-correlation-id");

fn add_headers(resp: &mut Response, extra: Vec<(&'static str, HeaderValue)>) {
    for (k, v) in extra {
        resp.headers_mut().insert(HeaderName::from_static(k), v);
    }
}

/// Cut a JSON body in half: what a connection dropped mid-response looks like.
async fn truncate_body(resp: Response) -> Response {
    let (mut parts, body) = resp.into_parts();
    let bytes = to_bytes(body, usize::MAX).await.unwrap_or_default();
    let cut = if bytes.len() > 2 { bytes.len() / 2 } else { 1 };
    let mut out = bytes.slice(..cut.min(bytes.len())).to_vec();
    if out.is_empty() || out == b"{}" {
        out = b"{\"results\":[".to_vec();
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(out))
}

/// Rest.li query tunnelling (LinkedIn API routes): a client whose query is too long for a URL
/// sends `POST` with `X-HTTP-Method-Override: GET`, `Content-Type:
/// application/x-www-form-urlencoded` and the query string as the body. The request goes on as
/// that GET (body query after any URL query). Any other POST is refused in LinkedIn's shape.
pub async fn restli_tunnel(req: Request, next: Next) -> Response {
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let method_override = header_lower(req.headers(), "x-http-method-override");
    let content_type = header_lower(req.headers(), "content-type");
    match method_override.as_deref() {
        Some("get") => {}
        _ => {
            return errors::linkedin(
                StatusCode::METHOD_NOT_ALLOWED,
                "METHOD_NOT_ALLOWED",
                None,
                "POST is not allowed on this resource (a query too long for the URL is tunnelled: POST with X-HTTP-Method-Override: GET and the query as an application/x-www-form-urlencoded body)",
            );
        }
    }
    if !content_type.is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded")) {
        return errors::linkedin_bad_request(
            "A tunnelled query needs Content-Type: application/x-www-form-urlencoded",
        );
    }
    let (mut parts, body) = req.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_BODY).await else {
        return errors::linkedin(
            StatusCode::PAYLOAD_TOO_LARGE,
            "REQUEST_ENTITY_TOO_LARGE",
            None,
            "Request body too large",
        );
    };
    let Ok(tunnelled) = std::str::from_utf8(&bytes) else {
        return errors::linkedin_bad_request("The tunnelled query is not UTF-8");
    };
    let query: Vec<&str> = parts
        .uri
        .query()
        .into_iter()
        .chain(std::iter::once(tunnelled.trim()))
        .filter(|q| !q.is_empty())
        .collect();
    let path_and_query = if query.is_empty() {
        parts.uri.path().to_string()
    } else {
        format!("{}?{}", parts.uri.path(), query.join("&"))
    };
    let Ok(uri) = path_and_query.parse::<axum::http::Uri>() else {
        return errors::linkedin_bad_request(
            "The tunnelled query is not a valid query string (percent-encode it)",
        );
    };
    parts.uri = uri;
    parts.method = Method::GET;
    parts.headers.remove(header::CONTENT_TYPE);
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove("x-http-method-override");
    next.run(Request::from_parts(parts, Body::empty())).await
}

fn header_lower(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase())
}

/// HubSpot's list of an object type: `GET …/crm/v3/objects/{type}`.
fn is_list_page(req: &Request) -> bool {
    let segs: Vec<&str> = req.uri().path().trim_end_matches('/').rsplit('/').collect();
    req.method() == Method::GET && segs.len() >= 2 && segs[1] == "objects"
}

/// The request without its `after` (a hostile cursor the handler would refuse), and the number
/// of the hostile cursor it carried (`hostile-<n>`; 0 for none).
fn strip_after(mut req: Request) -> (Request, u64) {
    let query = req.uri().query().unwrap_or("").to_string();
    let mut n = 0;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|kv| match kv.strip_prefix("after=") {
            Some(v) => {
                n = v
                    .strip_prefix("hostile-")
                    .and_then(|x| x.parse().ok())
                    .unwrap_or(0);
                false
            }
            None => !kv.is_empty(),
        })
        .collect();
    let path = req.uri().path().to_string();
    let uri = if kept.is_empty() {
        path
    } else {
        format!("{path}?{}", kept.join("&"))
    };
    if let Ok(u) = uri.parse() {
        *req.uri_mut() = u;
    }
    (req, n)
}

/// The answer with `paging.next.after` set to `cursor`.
async fn with_next_cursor(resp: Response, cursor: &str) -> Response {
    let (parts, body) = resp.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_BODY).await else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "answer too large").into_response();
    };
    let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    if let Some(o) = v.as_object_mut() {
        o.insert("paging".into(), json!({"next": {"after": cursor}}));
    }
    let mut parts = parts;
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(v.to_string()))
}

/// An answer of `h.bytes` (64 MiB by default) that looks like the start of a JSON document and
/// never ends before the last byte: streamed in 64 KiB chunks, counted as they are written.
fn huge_body(h: &Hostile) -> Response {
    const CHUNK: usize = 64 * 1024;
    let total = h.bytes.unwrap_or(64 * 1024 * 1024);
    let served = h.bytes_served.clone();
    let head: &'static [u8] = b"{\"results\":[";
    let stream = futures::stream::unfold(0u64, move |sent| {
        let served = served.clone();
        async move {
            if sent >= total {
                return None;
            }
            let n = (total - sent).min(CHUNK as u64) as usize;
            let mut chunk = vec![b' '; n];
            if sent == 0 {
                let k = head.len().min(n);
                chunk[..k].copy_from_slice(&head[..k]);
            }
            served.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
            Some((
                Ok::<_, std::io::Error>(bytes::Bytes::from(chunk)),
                sent + n as u64,
            ))
        }
    });
    let mut resp = Response::new(Body::from_stream(stream));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}
