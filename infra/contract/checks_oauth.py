"""OAuth 2.0: the three authorization servers, by the connector's flow (code + PKCE) and by the
providers' own client helpers (LinkedIn's AuthClient, HubSpot's get_auth_url / TokensApi), which
send no PKCE: PKCE is optional at HubSpot and Salesforce, and LinkedIn's standard web flow has
no PKCE parameters at all (learn.microsoft.com/linkedin/shared/authentication/
authorization-code-flow; PKCE is its separate native-client flow)."""

import json
from urllib.parse import parse_qs, urlparse

import requests
from hubspot import HubSpot
from hubspot.oauth import ApiException as HubspotOAuthError
from hubspot.utils.oauth import get_auth_url
from linkedin_api.clients.auth.client import AuthClient

from harness import REDIRECT_URI, SCOPES, Divergence, check, expect, expect_eq, expect_keys, reroute


def follow_authorize(session, url):
    r = session.get(url, allow_redirects=False, timeout=30)
    expect(r.status_code in (302, 303), f"authorize {urlparse(url).path} answered {r.status_code}: {r.text[:300]}")
    q = {k: v[0] for k, v in parse_qs(urlparse(r.headers["Location"]).query).items()}
    expect("code" in q, f"authorize redirect carries no code: {q}")
    return q


def linkedin_auth_client(ctx):
    c = ctx.clients["linkedin"]
    auth = AuthClient(c["client_id"], c["client_secret"], REDIRECT_URI)
    reroute(auth.session, [("https://www.linkedin.com/", ctx.url("linkedin") + "/")])
    return auth


def hubspot_client(ctx, token=None):
    return HubSpot(access_token=token, host=ctx.url("hubspot"), client_side_validation=True)


# --- LinkedIn ---------------------------------------------------------------------------------


@check
def linkedin_token_answer(ctx):
    t = ctx.tokens("linkedin")
    expect_keys(t, ["access_token", "expires_in", "refresh_token", "refresh_token_expires_in", "scope"], "token answer")
    expect(isinstance(t["expires_in"], int) and t["expires_in"] > 0, f"expires_in {t['expires_in']!r}")


@check
def linkedin_token_scope_is_comma_separated(ctx):
    # LinkedIn answers the granted scopes comma-separated ("scope": "r_ads,r_ads_reporting"),
    # though the authorize request sends them space-separated (authorization-code-flow, step 3).
    scope = ctx.tokens("linkedin")["scope"]
    expect(" " not in scope, f"scope {scope!r} is space-separated")
    expect_eq(set(scope.split(",")), set(SCOPES["linkedin"]), "scopes")


@check
def linkedin_auth_client_without_pkce(ctx):
    auth = linkedin_auth_client(ctx)
    url = auth.generate_member_auth_url(scopes=SCOPES["linkedin"], state="contract42")
    q = follow_authorize(reroute(requests.Session(), [("https://www.linkedin.com/", ctx.url("linkedin") + "/")]), url)
    expect_eq(q.get("state"), "contract42", "state")
    t = auth.exchange_auth_code_for_access_token(q["code"])
    expect_eq(t.status_code, 200, f"accessToken status ({t.response.text[:200]})")
    expect(t.access_token and t.refresh_token and t.expires_in, f"token answer {t.response.text[:200]}")
    r = auth.exchange_refresh_token_for_access_token(t.refresh_token)
    expect_eq(r.status_code, 200, f"refresh status ({r.response.text[:200]})")
    expect(r.access_token and r.refresh_token_expires_in, f"refresh answer {r.response.text[:200]}")


@check
def linkedin_refresh_refused(ctx):
    r = ctx.refresh("linkedin", "AQXnot-a-refresh-token")
    expect_eq(r.status_code, 400, "status")
    expect_keys(r.json(), ["error", "error_description"], "error body")
    expect_eq(r.json()["error"], "invalid_grant", "error")


@check
def linkedin_authorize_denied(ctx):
    ctx.call_admin("POST", "/providers/linkedin/deny-next-authorize")
    q, _ = ctx.authorize("linkedin", denied=True)
    expect_eq(q.get("error"), "user_cancelled_authorize", "error")


# --- HubSpot ----------------------------------------------------------------------------------


@check
def hubspot_token_answer(ctx):
    t = ctx.tokens("hubspot")
    expect_keys(t, ["access_token", "refresh_token", "expires_in", "token_type"], "token answer")
    expect_eq(t["token_type"], "bearer", "token_type")


@check
def hubspot_authorize_without_pkce(ctx):
    q, _ = ctx.authorize("hubspot", with_pkce=False)
    r = ctx.exchange("hubspot", q["code"])
    expect_eq(r.status_code, 200, f"token status ({r.text[:200]})")


@check
def hubspot_oauth_via_client_library(ctx):
    # hubspot.utils.oauth.get_auth_url sends client_id, redirect_uri, scope, state: no
    # response_type and no PKCE, as HubSpot's own docs' authorize URLs.
    c = ctx.clients["hubspot"]
    url = get_auth_url(c["client_id"], REDIRECT_URI, scope=tuple(SCOPES["hubspot"]), state="contract42")
    q = follow_authorize(reroute(requests.Session(), [("https://app.hubspot.com/", ctx.url("hubspot") + "/")]), url)
    api = hubspot_client(ctx).oauth.tokens_api
    t = api.create(grant_type="authorization_code", code=q["code"], redirect_uri=REDIRECT_URI,
                   client_id=c["client_id"], client_secret=c["client_secret"])
    expect_eq(t.token_type, "bearer", "token_type")
    r = api.create(grant_type="refresh_token", refresh_token=t.refresh_token,
                   client_id=c["client_id"], client_secret=c["client_secret"])
    expect(r.access_token and r.expires_in > 0, f"refresh answer {r}")


@check
def hubspot_access_token_info(ctx):
    token = ctx.token("hubspot")
    info = hubspot_client(ctx).oauth.access_tokens_api.get(token)  # every required field present
    expect(int(info.hub_id) > 0, f"hub_id {info.hub_id!r}")
    expect(set(SCOPES["hubspot"]) <= set(info.scopes), f"scopes {info.scopes}")


@check
def hubspot_refresh_refused(ctx):
    c = ctx.clients["hubspot"]
    try:
        hubspot_client(ctx).oauth.tokens_api.create(grant_type="refresh_token", refresh_token="na1-unknown",
                                                    client_id=c["client_id"], client_secret=c["client_secret"])
    except HubspotOAuthError as e:
        body = json.loads(e.body)
        expect_eq(e.status, 400, "status")
        expect_keys(body, ["status", "message", "correlationId"], "error body")
        expect_eq(body["status"], "BAD_REFRESH_TOKEN", "status field")
    else:
        raise Divergence("a refresh with an unknown token succeeded")


@check
def hubspot_authorize_denied(ctx):
    ctx.call_admin("POST", "/providers/hubspot/deny-next-authorize")
    q, _ = ctx.authorize("hubspot", denied=True)
    expect_eq(q.get("error"), "access_denied", "error")


# --- Salesforce -------------------------------------------------------------------------------


@check
def salesforce_token_answer(ctx):
    t = ctx.tokens("salesforce")
    expect_keys(t, ["access_token", "refresh_token", "instance_url", "id", "token_type", "issued_at", "signature"], "token answer")
    expect_eq(t["token_type"], "Bearer", "token_type")
    expect("expires_in" not in t, "Salesforce token answers carry no expires_in")
    expect(t["issued_at"].isdigit(), f"issued_at {t['issued_at']!r} is not epoch ms")


@check
def salesforce_authorize_without_pkce(ctx):
    q, _ = ctx.authorize("salesforce", with_pkce=False)
    r = ctx.exchange("salesforce", q["code"])
    expect_eq(r.status_code, 200, f"token status ({r.text[:200]})")


@check
def salesforce_refresh_answer(ctx):
    r = ctx.refresh("salesforce", ctx.tokens("salesforce")["refresh_token"])
    expect_eq(r.status_code, 200, f"refresh status ({r.text[:200]})")
    body = r.json()
    expect_keys(body, ["access_token", "instance_url", "id", "token_type", "issued_at", "signature"], "refresh answer")
    expect("refresh_token" not in body, "a Salesforce refresh answer carries no refresh_token")
    ctx.set_tokens("salesforce", body)


@check
def salesforce_refresh_refused(ctx):
    r = ctx.refresh("salesforce", "5Aep861unknown")
    expect_eq(r.status_code, 400, "status")
    expect_eq(r.json(), {"error": "invalid_grant", "error_description": "expired access/refresh token"}, "body")


@check
def salesforce_authorize_denied(ctx):
    ctx.call_admin("POST", "/providers/salesforce/deny-next-authorize")
    q, _ = ctx.authorize("salesforce", denied=True)
    expect_eq(q.get("error"), "access_denied", "error")
    expect(q.get("error_description"), "error_description missing")
