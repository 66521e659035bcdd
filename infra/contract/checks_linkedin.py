"""LinkedIn Marketing API through linkedin-api-client's RestliClient, which encodes Rest.li 2.0
queries itself (sorted keys, percent-encoded URNs in List(..)), sends `LinkedIn-Version` and
`X-RestLi-Protocol-Version: 2.0.0`, and tunnels a query longer than 4,000 characters as a POST
with `X-HTTP-Method-Override: GET` (linkedin_api/clients/restli/utils/query_tunneling.py)."""

from collections import Counter
from datetime import date, timedelta

import requests
from linkedin_api.clients.restli.client import RestliClient
from linkedin_api.clients.restli.utils.query_tunneling import MAX_QUERY_STRING_LENGTH
from linkedin_api.common.errors import ResponseFormattingError

from checks_oauth import linkedin_auth_client
from harness import Divergence, check, expect, expect_eq, expect_keys, reroute

VERSION = "202611"  # active: LinkedIn serves each monthly version for at least a year
SUNSET = "202501"  # sunset in 2026 (learn.microsoft.com/linkedin/marketing/versioning)
FIELDS = "impressions,clicks,totalEngagements,dateRange,pivotValues"


def restli(ctx):
    client = RestliClient()
    reroute(client.session, [("https://api.linkedin.com/", ctx.url("linkedin") + "/")])
    return client


def call(ctx, method, version=VERSION, token=None, **kwargs):
    client = restli(ctx)
    try:
        return getattr(client, method)(access_token=token or ctx.token("linkedin"), version_string=version, **kwargs)
    except ResponseFormattingError:  # not JSON: say what came instead
        r = client.session.reroute.last
        raise Divergence(f"{r.request.method} {r.url[:120]}.. answered {r.status_code} {r.text[:200]!r}")


def ok(resp, what):
    expect(resp.status_code == 200, f"{what} answered {resp.status_code}: {resp.response.text[:300]}")
    return resp


def rdate(iso):
    d = date.fromisoformat(iso)
    return {"year": d.year, "month": d.month, "day": d.day}


def engagement(ctx):
    return ctx.truth("engagement,ads")


def last_month(ctx):
    """The last 30 days of engagement: well under the 15,000-element cap."""
    end = max(r["date"] for r in engagement(ctx)["engagement"])
    return (date.fromisoformat(end) - timedelta(days=29)).isoformat(), end


def analytics(ctx, facet, urns, span=None, **kw):
    start, end = span or last_month(ctx)
    return call(ctx, "finder", resource_path="/adAnalytics", finder_name="statistics", query_params={
        "pivots": ["MEMBER_COMPANY", "CAMPAIGN"],
        "timeGranularity": "DAILY",
        "dateRange": {"start": rdate(start), "end": rdate(end)},
        facet: urns,
        "fields": FIELDS,
    }, **kw)


def as_rows(elements):
    out = Counter()
    for e in elements:
        expect_keys(e, ["pivotValues", "dateRange", "impressions", "clicks", "totalEngagements"], "analytics element")
        org = next(v for v in e["pivotValues"] if v.startswith("urn:li:organization:"))
        camp = next(v for v in e["pivotValues"] if v.startswith("urn:li:sponsoredCampaign:"))
        s = e["dateRange"]["start"]
        day = date(s["year"], s["month"], s["day"]).isoformat()
        out[(day, int(org.rsplit(":", 1)[1]), int(camp.rsplit(":", 1)[1]),
             e["impressions"], e["clicks"], e["totalEngagements"])] += 1
    return out


def truth_rows(ctx, keep):
    start, end = last_month(ctx)
    return Counter((r["date"], r["org_id"], r["campaign_id"], r["impressions"], r["clicks"], r["engagements"])
                   for r in engagement(ctx)["engagement"] if start <= r["date"] <= end and keep(r))


@check
def linkedin_ad_accounts_search(ctx):
    r = ok(call(ctx, "finder", resource_path="/adAccounts", finder_name="search",
                query_params={"start": 0, "count": 100}), "adAccounts q=search")
    for e in r.elements:
        expect_keys(e, ["id", "name", "currency", "status"], "ad account")
    want = {a["id"] for a in engagement(ctx)["ad_accounts"]}
    expect_eq({e["id"] for e in r.elements}, want, "ad account ids")
    expect_eq((r.paging.start, r.paging.total), (0, len(want)), "paging start, total")


@check
def linkedin_ad_accounts_search_criteria_and_paging(ctx):
    seen = []
    for start in (0, 1):
        r = ok(call(ctx, "finder", resource_path="/adAccounts", finder_name="search", query_params={
            "search": {"status": {"values": ["ACTIVE"]}}, "start": start, "count": 1}),
            "adAccounts q=search&search=(status:(values:List(ACTIVE)))")
        expect_eq(len(r.elements), 1, f"elements at start={start}, count=1")
        expect_eq(r.paging.total, 2, "paging.total")
        seen.append(r.elements[0]["id"])
    expect(seen[0] != seen[1], f"start=1 repeated start=0's account {seen}")


@check
def linkedin_ad_account_users(ctx):
    r = ok(call(ctx, "finder", resource_path="/adAccountUsers", finder_name="authenticatedUser"),
           "adAccountUsers q=authenticatedUser")
    expect(r.elements, "no roles for the authenticated member")
    for e in r.elements:
        expect_keys(e, ["account", "user", "role"], "ad account user")
        expect(e["user"].startswith("urn:li:person:"), f"user {e['user']!r}")
        expect(e["account"].startswith("urn:li:sponsoredAccount:"), f"account {e['account']!r}")


@check
def linkedin_ad_campaigns_search(ctx):
    truth = engagement(ctx)
    for account in truth["ad_accounts"]:
        r = ok(call(ctx, "finder", resource_path="/adAccounts/{id}/adCampaigns", path_keys={"id": account["id"]},
                    finder_name="search", query_params={"start": 0, "count": 100}), "adCampaigns q=search")
        for e in r.elements:
            expect_keys(e, ["id", "name", "status", "account"], "campaign")
            expect_eq(e["account"], f"urn:li:sponsoredAccount:{account['id']}", "campaign account")
        want = {c["id"] for c in truth["campaigns"] if c["account_id"] == account["id"]}
        expect_eq({e["id"] for e in r.elements}, want, f"campaigns of {account['id']}")


@check
def linkedin_ad_analytics_by_accounts(ctx):
    urns = [f"urn:li:sponsoredAccount:{a['id']}" for a in engagement(ctx)["ad_accounts"]]
    r = ok(analytics(ctx, "accounts", urns), "adAnalytics q=statistics accounts=List(..)")
    expect(r.paging.total is None, "adAnalytics does not page: no paging.total")
    expect_eq(as_rows(r.elements), truth_rows(ctx, lambda _: True), "rows")


@check
def linkedin_ad_analytics_truncates_at_15000(ctx):
    # "does not support pagination": a larger answer is cut at 15,000 elements (Ads Reporting
    # docs); the connector halves its range on a full answer.
    rows = engagement(ctx)["engagement"]
    expect(len(rows) > 15000, f"only {len(rows)} engagement rows: cannot reach the cap")
    span = (min(r["date"] for r in rows), max(r["date"] for r in rows))
    urns = [f"urn:li:sponsoredAccount:{a['id']}" for a in engagement(ctx)["ad_accounts"]]
    r = ok(analytics(ctx, "accounts", urns, span=span), "adAnalytics over the whole year")
    expect_eq(len(r.elements), 15000, "elements of a truncated answer")


@check
def linkedin_ad_analytics_by_campaigns(ctx):
    truth = engagement(ctx)
    ids = [c["id"] for c in truth["campaigns"] if c["account_id"] == truth["ad_accounts"][0]["id"]]
    r = ok(analytics(ctx, "campaigns", [f"urn:li:sponsoredCampaign:{i}" for i in ids]),
           "adAnalytics q=statistics campaigns=List(..)")
    expect_eq(as_rows(r.elements), truth_rows(ctx, lambda row: row["campaign_id"] in ids), "rows")


@check
def linkedin_ad_analytics_query_tunnelling(ctx):
    # Enough campaign URNs that the encoded query passes the client's 4,000 characters: it then
    # sends POST with X-HTTP-Method-Override: GET and the query as a form body, which LinkedIn
    # accepts for every API ("Query Tunneling", learn.microsoft.com/linkedin/shared/api-guide/
    # concepts/query-tunneling). Campaigns that do not exist just match no rows.
    real = [c["id"] for c in engagement(ctx)["campaigns"]]
    ids = real + list(range(690000001, 690000001 + 100))
    r = ok(analytics(ctx, "campaigns", [f"urn:li:sponsoredCampaign:{i}" for i in ids]), "tunnelled adAnalytics")
    sent = r.response.request
    expect(sent.method == "POST" and sent.headers.get("X-HTTP-Method-Override") == "GET"
           and len(sent.body) > MAX_QUERY_STRING_LENGTH, "the client did not tunnel the query")
    expect_eq(as_rows(r.elements), truth_rows(ctx, lambda _: True), "rows")


def org_ids(ctx, n):
    return sorted({r["org_id"] for r in engagement(ctx)["engagement"]})[:n]


@check
def linkedin_organizations_batch_get(ctx):
    ids = org_ids(ctx, 20)
    missing = 1999999
    r = ok(call(ctx, "batch_get", resource_path="/organizations", ids=ids + [missing]), "organizations ids=List(..)")
    expect_eq(set(r.results), {str(i) for i in ids}, "results keys")
    for key, o in r.results.items():
        expect_keys(o, ["id", "localizedName"], f"organization {key}")
        expect_eq(o["id"], int(key), "organization id")
        for loc in o.get("locations", []):
            expect_keys(loc, ["locationType"], "location")
    expect_eq((r.statuses or {}).get(str(missing)), 404, "status of an unknown id")
    expect(str(missing) in (r.errors or {}), f"no error for the unknown id: {r.errors}")


@check
def linkedin_organizations_per_id_errors(ctx):
    ids = org_ids(ctx, 3)
    ctx.call_admin("PUT", "/providers/linkedin/organization-errors", {"ids": [ids[0]], "status": 500})
    try:
        r = ok(call(ctx, "batch_get", resource_path="/organizations", ids=ids), "organizations with a failing id")
        expect_eq((r.statuses or {}).get(str(ids[0])), 500, "status of the failing id")
        expect(str(ids[0]) in (r.errors or {}), "no errors entry for the failing id")
        expect_eq(set(r.results), {str(i) for i in ids[1:]}, "results keys")
    finally:
        ctx.call_admin("DELETE", "/providers/linkedin/organization-errors")


@check
def linkedin_organization_get(ctx):
    i = org_ids(ctx, 1)[0]
    r = ok(call(ctx, "get", resource_path="/organizations/{id}", path_keys={"id": i}), "organizations/{id}")
    expect_eq(r.entity.get("id"), i, "id")


@check
def linkedin_no_ad_account(ctx):
    ctx.call_admin("PUT", "/providers/linkedin/ad-accounts", {"visible": False})
    try:
        r = ok(call(ctx, "finder", resource_path="/adAccounts", finder_name="search"), "adAccounts (hidden)")
        expect_eq(r.elements, [], "elements")
    finally:
        ctx.call_admin("PUT", "/providers/linkedin/ad-accounts", {"visible": True})


@check
def linkedin_sunset_version_is_426(ctx):
    r = call(ctx, "finder", version=SUNSET, resource_path="/adAccounts", finder_name="search")
    expect_eq(r.status_code, 426, f"status for LinkedIn-Version {SUNSET} ({r.response.text[:200]})")
    expect_eq(r.response.json().get("code"), "NONEXISTENT_VERSION", "code")


@check
def linkedin_missing_version_is_400(ctx):
    # The client cannot omit the header on /rest (no version means the retired /v2 base).
    r = requests.get(f"{ctx.url('linkedin')}/rest/adAccounts", params={"q": "search"}, timeout=30, headers={
        "Authorization": f"Bearer {ctx.token('linkedin')}", "X-RestLi-Protocol-Version": "2.0.0"})
    expect_eq(r.status_code, 400, "status")
    expect_eq(r.json().get("code"), "VERSION_MISSING", "code")


@check
def linkedin_invalid_token_is_401(ctx):
    r = call(ctx, "finder", token="AQVnot-a-token", resource_path="/adAccounts", finder_name="search")
    expect_eq(r.status_code, 401, "status")
    body = r.response.json()
    expect_eq((body.get("status"), body.get("serviceErrorCode"), body.get("code")),
              (401, 65600, "INVALID_ACCESS_TOKEN"), "status, serviceErrorCode, code")


@check
def linkedin_expired_token_then_refresh(ctx):
    ctx.call_admin("POST", "/providers/linkedin/tokens/expire")
    r = call(ctx, "finder", resource_path="/adAccounts", finder_name="search")
    expect_eq(r.status_code, 401, "status with an expired token")
    body = r.response.json()
    expect_eq((body.get("serviceErrorCode"), body.get("code")), (65600, "EXPIRED_ACCESS_TOKEN"), "error")
    fresh = linkedin_auth_client(ctx).exchange_refresh_token_for_access_token(ctx.tokens("linkedin")["refresh_token"])
    expect_eq(fresh.status_code, 200, f"refresh ({fresh.response.text[:200]})")
    ctx.set_tokens("linkedin", {"access_token": fresh.access_token})
    ok(call(ctx, "finder", resource_path="/adAccounts", finder_name="search"), "adAccounts with the refreshed token")


@check
def linkedin_revoked_grant(ctx):
    ctx.call_admin("POST", "/providers/linkedin/grants/revoke")
    try:
        r = call(ctx, "finder", resource_path="/adAccounts", finder_name="search")
        body = r.response.json()
        expect_eq((r.status_code, body.get("serviceErrorCode"), body.get("code")),
                  (401, 65601, "REVOKED_ACCESS_TOKEN"), "status, serviceErrorCode, code")
        refused = ctx.refresh("linkedin", ctx.tokens("linkedin")["refresh_token"])
        expect_eq((refused.status_code, refused.json().get("error")), (400, "invalid_grant"), "refresh after revocation")
    finally:
        ctx.forget("linkedin")
