//! The three OAuth 2.0 authorization servers: authorize (consents at once), token (code, with
//! PKCE S256 where the provider does it and the client asked for it; refresh), with each
//! provider's own success and error shapes.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::config::Provider;
use crate::errors::correlation_id;
use crate::state::AppState;
use crate::util::{form_get, parse_form, percent_encode, random_token};

/// LinkedIn's refresh tokens live 365 days from the member's authorization; a refresh does not
/// extend them (its answer's `refresh_token_expires_in` is the life left).
const REFRESH_TTL_MS: i64 = 365 * 86_400_000;

/// How long a provider's refresh tokens live, as the real one's documented policy says: LinkedIn's
/// 365 days; HubSpot's until the app is uninstalled (revoked); Salesforce's until revoked (the
/// connected app's default policy). Expired or revoked, each answers a refused refresh with the
/// same words, as the real ones do.
fn refresh_life_ms(p: Provider) -> Option<i64> {
    match p {
        Provider::Linkedin => Some(REFRESH_TTL_MS),
        Provider::Hubspot | Provider::Salesforce => None,
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct CodeGrant {
    client_id: String,
    redirect_uri: String,
    challenge: String,
    scope: String,
    expires_ms: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct AccessEntry {
    grant: u64,
    expires_ms: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Grant {
    revoked: bool,
    scope: String,
    created_ms: i64,
}

/// Codes, tokens and grants of one provider. Kept across restarts through serde (persist.rs)
/// when the sandbox has a state directory: whatever is added here must be serde too.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct OAuthState {
    codes: HashMap<String, CodeGrant>,
    access: HashMap<String, AccessEntry>,
    refresh: HashMap<String, u64>,
    grants: HashMap<u64, Grant>,
    next_grant: u64,
    /// Grants revoked through the provider's revocation endpoint (`GET /admin/providers/{p}`
    /// shows it as `revocations`).
    revocations: u64,
}

/// Why an access token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenProblem {
    Missing,
    Invalid,
    Expired { ago_ms: i64 },
    Revoked,
}

impl OAuthState {
    pub fn check_access(&self, token: &str, now_ms: i64) -> Result<u64, TokenProblem> {
        let entry = self.access.get(token).ok_or(TokenProblem::Invalid)?;
        if self.grants.get(&entry.grant).is_none_or(|g| g.revoked) {
            return Err(TokenProblem::Revoked);
        }
        if entry.expires_ms <= now_ms {
            return Err(TokenProblem::Expired {
                ago_ms: now_ms - entry.expires_ms,
            });
        }
        Ok(entry.grant)
    }

    /// Make every live access token expired now. Returns how many were affected.
    pub fn expire_all(&mut self, now_ms: i64) -> usize {
        let mut n = 0;
        for e in self.access.values_mut() {
            if e.expires_ms > now_ms {
                e.expires_ms = now_ms;
                n += 1;
            }
        }
        n
    }

    /// Revoke every grant: refresh tokens and their access tokens stop working.
    pub fn revoke_all(&mut self) -> usize {
        let mut n = 0;
        for g in self.grants.values_mut() {
            if !g.revoked {
                g.revoked = true;
                n += 1;
            }
        }
        n
    }

    /// Revokes the grant a refresh or access token belongs to, as the providers' revocation
    /// endpoints do: its refresh and access tokens stop working. `false`: the token is unknown
    /// or its grant was already revoked.
    pub fn revoke_token(&mut self, token: &str) -> bool {
        let grant = self
            .refresh
            .get(token)
            .copied()
            .or_else(|| self.access.get(token).map(|e| e.grant));
        match grant.and_then(|g| self.grants.get_mut(&g)) {
            Some(g) if !g.revoked => {
                g.revoked = true;
                self.revocations += 1;
                true
            }
            _ => false,
        }
    }

    pub fn revocations(&self) -> u64 {
        self.revocations
    }

    pub fn live_grants(&self) -> usize {
        self.grants.values().filter(|g| !g.revoked).count()
    }

    fn issue_access(&mut self, p: Provider, grant: u64, now_ms: i64, ttl_ms: i64) -> String {
        let prefix = match p {
            Provider::Linkedin => "AQV",
            Provider::Hubspot => "CNb",
            Provider::Salesforce => "00DDn0000000001!AR",
        };
        let t = random_token(prefix);
        self.access.insert(
            t.clone(),
            AccessEntry {
                grant,
                expires_ms: now_ms.saturating_add(ttl_ms),
            },
        );
        t
    }

    fn issue_refresh(&mut self, p: Provider, grant: u64) -> String {
        let prefix = match p {
            Provider::Linkedin => "AQX",
            Provider::Hubspot => "na1-",
            Provider::Salesforce => "5Aep861",
        };
        let t = random_token(prefix);
        self.refresh.insert(t.clone(), grant);
        t
    }
}

fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    if !(43..=128).contains(&verifier.len()) {
        return false;
    }
    let digest = Sha256::digest(verifier.as_bytes());
    URL_SAFE_NO_PAD.encode(digest) == challenge
}

fn redirect(location: &str) -> Response {
    (
        StatusCode::FOUND,
        [(header::LOCATION, location.to_string())],
    )
        .into_response()
}

fn with_params(base: &str, params: &[(&str, &str)]) -> String {
    let mut s = base.to_string();
    let mut sep = if base.contains('?') { '&' } else { '?' };
    for (k, v) in params {
        s.push(sep);
        sep = '&';
        s.push_str(k);
        s.push('=');
        s.push_str(&percent_encode(v));
    }
    s
}

fn authorize_page_error(msg: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": "invalid_request", "error_description": msg})),
    )
        .into_response()
}

/// `GET <prefix>/.../authorize`: validates the request, then consents at once (or denies when
/// the admin asked for it) and redirects back with `code` and `state`.
pub async fn authorize(
    State((s, p)): State<(AppState, Provider)>,
    RawQuery(q): RawQuery,
) -> Response {
    let params = parse_form(q.as_deref().unwrap_or(""));
    let get = |k: &str| form_get(&params, k).unwrap_or("");
    let client_id = get("client_id");
    let redirect_uri = get("redirect_uri");
    let state = form_get(&params, "state");
    if s.config.check_client_credentials && client_id != s.config.client(p).client_id {
        return authorize_page_error("invalid client_id");
    }
    if !(redirect_uri.starts_with("http://") || redirect_uri.starts_with("https://")) {
        return authorize_page_error("redirect_uri must be an absolute http(s) URL");
    }
    let back = |error: &str, desc: &str| {
        let mut ps = vec![("error", error), ("error_description", desc)];
        if let Some(st) = state {
            ps.push(("state", st));
        }
        redirect(&with_params(redirect_uri, &ps))
    };
    // response_type: LinkedIn and Salesforce require `code`; HubSpot's authorize URL has no
    // such parameter (client_id, scope, redirect_uri, state), so it may be left out there. Any
    // other value is refused: the sandbox has only the authorization code flow.
    let response_type = form_get(&params, "response_type");
    let response_type_ok = matches!(
        (p, response_type),
        (_, Some("code")) | (Provider::Hubspot, None)
    );
    if !response_type_ok {
        return match p {
            Provider::Salesforce => {
                back("unsupported_response_type", "response type not supported")
            }
            Provider::Linkedin | Provider::Hubspot => {
                back("unsupported_response_type", "response_type must be code")
            }
        };
    }
    // PKCE: LinkedIn's 3-legged web flow has none (a challenge sent anyway is ignored, and the
    // token request needs no verifier). HubSpot and Salesforce enforce it only when the
    // authorize request carried a challenge; S256 is the only method modelled (Salesforce's
    // docs leave the method out: S256 is implied there).
    let challenge = match p {
        Provider::Linkedin => "",
        Provider::Hubspot | Provider::Salesforce => get("code_challenge"),
    };
    if !challenge.is_empty() {
        let method_ok = matches!(
            (p, form_get(&params, "code_challenge_method")),
            (_, Some("S256")) | (Provider::Salesforce, None)
        );
        if !method_ok {
            return back(
                "invalid_request",
                "code_challenge_method must be S256 when a code_challenge is sent",
            );
        }
    }
    {
        let mut c = s.controls(p);
        if c.deny_next_authorize {
            c.deny_next_authorize = false;
            return match p {
                Provider::Linkedin => back(
                    "user_cancelled_authorize",
                    "The user cancelled the authorization",
                ),
                Provider::Hubspot => back("access_denied", "The user denied access"),
                Provider::Salesforce => back("access_denied", "end-user denied authorization"),
            };
        }
    }
    let now = s.clock.now_ms();
    let code = random_token("");
    s.oauth(p).codes.insert(
        code.clone(),
        CodeGrant {
            client_id: client_id.to_string(),
            redirect_uri: redirect_uri.to_string(),
            challenge: challenge.to_string(),
            scope: get("scope").to_string(),
            expires_ms: now.saturating_add(s.config.code_ttl.as_millis() as i64),
        },
    );
    let mut ps = vec![("code", code.as_str())];
    if let Some(st) = state {
        ps.push(("state", st));
    }
    redirect(&with_params(redirect_uri, &ps))
}

#[derive(Debug)]
enum TokErr {
    InvalidRequest(&'static str),
    UnsupportedGrant,
    InvalidClientId,
    InvalidClientSecret,
    RedirectMismatch,
    BadCode,
    BadVerifier,
    BadRefresh,
}

fn token_error(p: Provider, e: TokErr) -> Response {
    let bad = StatusCode::BAD_REQUEST;
    match p {
        Provider::Hubspot => {
            let (status, msg) = match e {
                TokErr::InvalidRequest(m) => ("BAD_REQUEST", m),
                TokErr::UnsupportedGrant => ("BAD_GRANT_TYPE", "unsupported grant_type"),
                TokErr::InvalidClientId => ("BAD_CLIENT_ID", "missing or invalid client_id"),
                TokErr::InvalidClientSecret => {
                    ("BAD_CLIENT_SECRET", "missing or invalid client_secret")
                }
                TokErr::RedirectMismatch => (
                    "BAD_REDIRECT_URI",
                    "redirect_uri does not match the one used to authorize",
                ),
                TokErr::BadCode => ("BAD_AUTH_CODE", "missing or unknown auth code"),
                TokErr::BadVerifier => (
                    "BAD_AUTH_CODE",
                    "code_verifier does not match the code_challenge",
                ),
                TokErr::BadRefresh => ("BAD_REFRESH_TOKEN", "missing or unknown refresh token"),
            };
            (
                bad,
                Json(json!({"status": status, "message": msg, "correlationId": correlation_id()})),
            )
                .into_response()
        }
        Provider::Linkedin => {
            let (status, error, desc) = match e {
                TokErr::InvalidRequest(m) => (bad, "invalid_request", m),
                TokErr::UnsupportedGrant => (
                    bad,
                    "unsupported_grant_type",
                    "grant_type must be authorization_code or refresh_token",
                ),
                TokErr::InvalidClientId | TokErr::InvalidClientSecret => (
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    "Client authentication failed",
                ),
                TokErr::RedirectMismatch | TokErr::BadCode | TokErr::BadVerifier => (
                    bad,
                    "invalid_grant",
                    "Unable to retrieve access token: appid/redirect uri/code verifier does not match authorization code. Or authorization code expired.",
                ),
                TokErr::BadRefresh => (
                    bad,
                    "invalid_grant",
                    "The provided authorization grant or refresh token is invalid, expired or revoked.",
                ),
            };
            (
                status,
                Json(json!({"error": error, "error_description": desc})),
            )
                .into_response()
        }
        Provider::Salesforce => {
            let (error, desc) = match e {
                TokErr::InvalidRequest(m) => ("invalid_request", m),
                TokErr::UnsupportedGrant => ("unsupported_grant_type", "grant type not supported"),
                TokErr::InvalidClientId => ("invalid_client_id", "client identifier invalid"),
                TokErr::InvalidClientSecret => ("invalid_client", "invalid client credentials"),
                TokErr::RedirectMismatch => (
                    "redirect_uri_mismatch",
                    "redirect_uri must match configuration",
                ),
                TokErr::BadCode => ("invalid_grant", "authentication failure"),
                TokErr::BadVerifier => ("invalid_grant", "invalid code verifier"),
                TokErr::BadRefresh => ("invalid_grant", "expired access/refresh token"),
            };
            (
                bad,
                Json(json!({"error": error, "error_description": desc})),
            )
                .into_response()
        }
    }
}

/// `POST <prefix>/.../token`: form body, grant_type authorization_code or refresh_token.
pub async fn token(
    State((s, p)): State<(AppState, Provider)>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return token_error(
            p,
            TokErr::InvalidRequest("body must be application/x-www-form-urlencoded"),
        );
    }
    let params = parse_form(&body);
    let get = |k: &str| form_get(&params, k).unwrap_or("");
    // Client authentication: form fields, or HTTP Basic.
    let (mut client_id, mut client_secret) = (
        get("client_id").to_string(),
        get("client_secret").to_string(),
    );
    if let Some((id, secret)) = basic_auth(&headers) {
        client_id = id;
        client_secret = secret;
    }
    if s.config.check_client_credentials {
        let expected = s.config.client(p);
        if client_id != expected.client_id {
            return token_error(p, TokErr::InvalidClientId);
        }
        if client_secret != expected.client_secret {
            return token_error(p, TokErr::InvalidClientSecret);
        }
    }
    let now = s.clock.now_ms();
    let ttl_ms = s.config.access_token_ttl.as_millis() as i64;
    let rotate = s.controls(p).rotate_refresh;
    match get("grant_type") {
        "authorization_code" => {
            let code = get("code");
            if code.is_empty() {
                return token_error(p, TokErr::InvalidRequest("code is required"));
            }
            let mut o = s.oauth(p);
            // Single use: the code is gone whatever happens next.
            let Some(cg) = o.codes.remove(code) else {
                return token_error(p, TokErr::BadCode);
            };
            if cg.expires_ms <= now || cg.client_id != client_id {
                return token_error(p, TokErr::BadCode);
            }
            if cg.redirect_uri != get("redirect_uri") {
                return token_error(p, TokErr::RedirectMismatch);
            }
            // PKCE only when the authorize request carried a challenge (never for LinkedIn).
            if !cg.challenge.is_empty() && !pkce_matches(get("code_verifier"), &cg.challenge) {
                return token_error(p, TokErr::BadVerifier);
            }
            o.next_grant += 1;
            let grant = o.next_grant;
            o.grants.insert(
                grant,
                Grant {
                    revoked: false,
                    scope: cg.scope.clone(),
                    created_ms: now,
                },
            );
            let access = o.issue_access(p, grant, now, ttl_ms);
            let refresh = o.issue_refresh(p, grant);
            drop(o);
            success(&s, p, &access, Some(&refresh), &cg.scope, ttl_ms, now, now)
        }
        "refresh_token" => {
            let rt = get("refresh_token");
            if rt.is_empty() {
                return token_error(p, TokErr::BadRefresh);
            }
            let mut o = s.oauth(p);
            let Some(&grant) = o.refresh.get(rt) else {
                return token_error(p, TokErr::BadRefresh);
            };
            let (scope, created) = match o.grants.get(&grant) {
                Some(g)
                    if !g.revoked
                        && refresh_life_ms(p)
                            .is_none_or(|life| g.created_ms.saturating_add(life) > now) =>
                {
                    (g.scope.clone(), g.created_ms)
                }
                _ => return token_error(p, TokErr::BadRefresh),
            };
            let access = o.issue_access(p, grant, now, ttl_ms);
            let refresh = if rotate {
                o.refresh.remove(rt);
                Some(o.issue_refresh(p, grant))
            } else if p == Provider::Salesforce {
                None
            } else {
                Some(rt.to_string())
            };
            drop(o);
            success(
                &s,
                p,
                &access,
                refresh.as_deref(),
                &scope,
                ttl_ms,
                now,
                created,
            )
        }
        "" => token_error(p, TokErr::InvalidRequest("grant_type is required")),
        _ => token_error(p, TokErr::UnsupportedGrant),
    }
}

#[allow(clippy::too_many_arguments)]
fn success(
    s: &AppState,
    p: Provider,
    access: &str,
    refresh: Option<&str>,
    scope: &str,
    ttl_ms: i64,
    now: i64,
    grant_created: i64,
) -> Response {
    let body = match p {
        Provider::Linkedin => {
            let mut b = json!({
                "access_token": access,
                "expires_in": ttl_ms / 1000,
                "scope": linkedin_scope(scope),
            });
            if let (Some(r), Some(o)) = (refresh, b.as_object_mut()) {
                o.insert("refresh_token".into(), r.into());
                o.insert(
                    "refresh_token_expires_in".into(),
                    ((grant_created + REFRESH_TTL_MS - now) / 1000).into(),
                );
            }
            b
        }
        Provider::Hubspot => {
            json!({
                "token_type": "bearer",
                "access_token": access,
                "refresh_token": refresh,
                "expires_in": ttl_ms / 1000,
            })
        }
        Provider::Salesforce => {
            let org = s.world().sf_org_id();
            let id = format!(
                "{}/id/{org}/005Dn0000000001AAA",
                s.provider_base(Provider::Salesforce)
            );
            let issued_at = now.to_string();
            let mut h = Sha256::new();
            h.update(s.config.client(p).client_secret.as_bytes());
            h.update(id.as_bytes());
            h.update(issued_at.as_bytes());
            let mut b = json!({
                "access_token": access,
                "signature": STANDARD.encode(h.finalize()),
                "scope": if scope.is_empty() { "api refresh_token" } else { scope },
                "instance_url": s
                    .controls(p)
                    .hostile
                    .as_ref()
                    .and_then(|h| h.instance_url.clone())
                    .unwrap_or_else(|| s.provider_base(Provider::Salesforce)),
                "id": id,
                "token_type": "Bearer",
                "issued_at": issued_at,
            });
            if let (Some(r), Some(o)) = (refresh, b.as_object_mut()) {
                o.insert("refresh_token".into(), r.into());
            }
            b
        }
    };
    (
        StatusCode::OK,
        [(header::CACHE_CONTROL, "no-cache, no-store")],
        Json(body),
    )
        .into_response()
}

/// LinkedIn answers the granted scopes comma-separated (`r_ads,r_ads_reporting`), whichever way
/// the authorize request separated them (LinkedIn takes spaces, `%20`, or commas there).
fn linkedin_scope(requested: &str) -> String {
    requested
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(",")
}

fn basic_auth(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let b64 = v.strip_prefix("Basic ")?;
    let raw = STANDARD.decode(b64.trim()).ok()?;
    let raw = String::from_utf8(raw).ok()?;
    let (id, secret) = raw.split_once(':')?;
    Some((
        crate::util::form_decode(id)?,
        crate::util::form_decode(secret)?,
    ))
}

/// `GET /hubspot/oauth/v1/access-tokens/{token}`: HubSpot's token metadata.
pub async fn hubspot_token_info(
    State((s, _)): State<(AppState, Provider)>,
    axum::extract::Path(token): axum::extract::Path<String>,
) -> Response {
    let now = s.clock.now_ms();
    let o = s.oauth(Provider::Hubspot);
    match o.check_access(&token, now) {
        Ok(grant) => {
            let expires_in = o
                .access
                .get(&token)
                .map(|e| (e.expires_ms - now) / 1000)
                .unwrap_or(0);
            let scopes: Vec<String> = o
                .grants
                .get(&grant)
                .map(|g| g.scope.split_whitespace().map(String::from).collect())
                .unwrap_or_default();
            Json(json!({
                "token": token,
                "user": "demo@revenueproven.test",
                "hub_domain": "demo.revenueproven.test",
                "scopes": scopes,
                "hub_id": s.world().hub_id(),
                "app_id": 1234567,
                "expires_in": expires_in,
                "user_id": 1,
                "token_type": "access",
            }))
            .into_response()
        }
        Err(_) => crate::errors::hubspot(
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            "The access token is unknown or expired",
        ),
    }
}

/// HubSpot's `DELETE /oauth/v1/refresh-tokens/{token}`: deletes the refresh token (the app's
/// grant for that account): 204, or 404 for an unknown token.
pub async fn hubspot_revoke(
    State((s, p)): State<(AppState, Provider)>,
    axum::extract::Path(token): axum::extract::Path<String>,
) -> Response {
    if s.oauth(p).revoke_token(&token) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        crate::errors::hubspot(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "The refresh token is unknown or was already deleted",
        )
    }
}

/// Salesforce's `POST /services/oauth2/revoke` (form `token=`, an access or refresh token) and
/// LinkedIn's `POST /oauth/v2/revoke` (form `client_id`, `client_secret`, `token`): revoke the
/// token's grant; 200 with an empty body, 400 for an unknown token, LinkedIn 401 for a wrong
/// client.
pub async fn revoke(State((s, p)): State<(AppState, Provider)>, body: String) -> Response {
    let form = parse_form(&body);
    if p == Provider::Linkedin && s.config.check_client_credentials {
        let c = s.config.client(p);
        if form_get(&form, "client_id") != Some(c.client_id.as_str())
            || form_get(&form, "client_secret") != Some(c.client_secret.as_str())
        {
            return (
                StatusCode::UNAUTHORIZED,
                Json(json!({"error": "invalid_client", "error_description": "Client authentication failed"})),
            )
                .into_response();
        }
    }
    let token = form_get(&form, "token").unwrap_or("");
    if !token.is_empty() && s.oauth(p).revoke_token(token) {
        return StatusCode::OK.into_response();
    }
    let body = match p {
        Provider::Salesforce => {
            json!({"error": "invalid_token", "error_description": "invalid token"})
        }
        _ => {
            json!({"error": "invalid_request", "error_description": "the token is unknown or already revoked"})
        }
    };
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

/// Bearer token of a request (`Authorization: Bearer x`; Salesforce also takes `OAuth x`).
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    v.strip_prefix("Bearer ")
        .or_else(|| v.strip_prefix("OAuth "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linkedin_scopes_are_answered_comma_separated() {
        assert_eq!(
            linkedin_scope("r_ads r_ads_reporting  r_organization_social"),
            "r_ads,r_ads_reporting,r_organization_social"
        );
        assert_eq!(
            linkedin_scope("r_ads,r_ads_reporting"),
            "r_ads,r_ads_reporting"
        );
        assert_eq!(linkedin_scope(""), "");
    }

    #[test]
    fn revoking_either_token_revokes_the_grant_once() {
        let mut o = OAuthState::default();
        o.grants.insert(
            1,
            Grant {
                revoked: false,
                scope: String::new(),
                created_ms: 0,
            },
        );
        let access = o.issue_access(Provider::Hubspot, 1, 0, 60_000);
        let refresh = o.issue_refresh(Provider::Hubspot, 1);
        assert_eq!(o.check_access(&access, 0), Ok(1));
        assert!(!o.revoke_token("unknown"));
        assert!(o.revoke_token(&refresh));
        assert_eq!(o.check_access(&access, 0), Err(TokenProblem::Revoked));
        assert!(!o.revoke_token(&access), "already revoked");
        assert_eq!((o.revocations(), o.live_grants()), (1, 0));
    }

    #[test]
    fn pkce_s256_matches_rfc7636_example() {
        assert!(pkce_matches(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
        assert!(!pkce_matches(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXX",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
    }
}
