"""HubSpot CRM through hubspot-api-client with client_side_validation on: a response missing a
field HubSpot's OpenAPI spec requires fails to deserialize instead of becoming None. The client
sends list parameters repeated (`properties=a&properties=b`, collection format "multi") and
Python booleans as `True`/`False` (rest.py: urlencode of the value)."""

import json
import re
import time

from hubspot import HubSpot
from hubspot.crm.associations.v4 import BatchInputPublicFetchAssociationsBatchRequest
from hubspot.crm.companies import Filter, FilterGroup, PublicObjectSearchRequest

from harness import check, expect, expect_eq, expect_keys

COMPANY = ["name", "domain", "website", "country", "createdate", "hs_lastmodifieddate"]
CONTACT = ["email", "firstname", "lastname", "jobtitle", "associatedcompanyid", "lastmodifieddate"]
DEAL = ["dealname", "amount", "deal_currency_code", "dealstage", "pipeline", "createdate", "closedate", "hs_lastmodifieddate"]
RATE = "X-HubSpot-RateLimit-"


def comma(props):
    """The connector's form, one `properties=a,b,c`; the repeated form has its own check."""
    return [",".join(props)]


def hs(ctx, token=None):
    return HubSpot(access_token=token or ctx.token("hubspot"), host=ctx.url("hubspot"), client_side_validation=True)


def api_error(fn):
    """Call fn, which must fail with an HTTP error: (status, JSON body, headers)."""
    try:
        fn()
    except Exception as e:  # each hubspot.* package has its own ApiException class
        if getattr(e, "status", None) is None:
            raise
        return e.status, json.loads(e.body or "{}"), e.headers or {}
    raise AssertionError("the call succeeded")


def search(ctx, filters, sorts="hs_lastmodifieddate", properties=COMPANY, limit=100, after="0", client=None, info=False):
    req = PublicObjectSearchRequest(
        filter_groups=[FilterGroup(filters=[Filter(**f) for f in filters])],
        sorts=[{"propertyName": sorts, "direction": "ASCENDING"}],
        properties=properties, limit=limit, after=after)
    api = (client or hs(ctx)).crm.companies.search_api
    return api.do_search_with_http_info(req) if info else api.do_search(req)


def all_companies(ctx):
    if "companies" not in ctx.memo:
        out, after = [], None
        api = hs(ctx).crm.companies.basic_api
        while True:
            page = api.get_page(limit=100, after=after, properties=comma(COMPANY))
            out += page.results
            if page.paging is None:
                break
            after = page.paging.next.after
        ctx.memo["companies"] = out
    return ctx.memo["companies"]


@check
def hubspot_list_paging_comma_properties(ctx):
    # The connector's form: one `properties=a,b,c`; pages by paging.next.after, none on the last.
    api = hs(ctx).crm.companies.basic_api
    first = api.get_page(limit=50, properties=comma(COMPANY))
    expect(first.paging and first.paging.next.after and first.paging.next.link, f"first page paging {first.paging}")
    for r in first.results:
        expect_keys(r.properties, COMPANY, f"company {r.id} properties")
        expect(r.archived is False, f"company {r.id} archived {r.archived!r}")
    companies = all_companies(ctx)
    ids = [int(r.id) for r in companies]
    expect_eq(ids, sorted(ids), "list order (ids ascending)")
    want = {c["hubspot_id"] for c in ctx.truth("companies")["companies"]}
    expect_eq({str(i) for i in ids}, {str(i) for i in want}, "listed ids")


@check
def hubspot_list_repeated_properties(ctx):
    # hubspot-api-client sends properties=name&properties=domain&... (collection format multi),
    # which HubSpot reads as the same list as the comma form.
    page = hs(ctx).crm.companies.basic_api.get_page(limit=5, properties=COMPANY)
    for r in page.results:
        expect_keys(r.properties, COMPANY, f"company {r.id} properties (repeated form)")


@check
def hubspot_list_with_associations(ctx):
    truth = {str(d["hubspot_id"]): d for d in ctx.truth("deals")["deals"]}
    page = hs(ctx).crm.deals.basic_api.get_page(limit=100, properties=comma(DEAL), associations=["companies"])
    expect(page.results, "no deals")
    for r in page.results:
        expect_keys(r.properties, DEAL, f"deal {r.id} properties")
        company = truth[r.id]["hubspot_company_id"]
        got = r.associations["companies"].results if r.associations and "companies" in r.associations else []
        # HubSpot may list a pair twice (deal_to_company and deal_to_company_unlabeled)
        expect_eq({a.id for a in got}, {str(company)} if company else set(), f"deal {r.id} associated companies")
        expect(not got or "deal_to_company" in {a.type for a in got}, f"deal {r.id} association types {got}")
    contacts = hs(ctx).crm.contacts.basic_api.get_page(limit=20, properties=comma(CONTACT), associations=["companies"])
    for r in contacts.results:
        expect_keys(r.properties, CONTACT, f"contact {r.id} properties")


@check
def hubspot_list_archived_capital_true(ctx):
    # archived=True, as Python's urlencode writes the client's bool; HubSpot reads it as true.
    victim = all_companies(ctx)[-1].id
    ctx.call_admin("DELETE", f"/crm/companies/{victim}")
    page = hs(ctx).crm.companies.basic_api.get_page(limit=100, archived=True)
    expect(page.results, "archived=True listed nothing")
    for r in page.results:
        expect(r.archived is True and r.archived_at is not None, f"record {r.id}: archived {r.archived}, archivedAt {r.archived_at}")
    expect(victim in {r.id for r in page.results}, f"the archived company {victim} is not listed")


@check
def hubspot_get_by_id(ctx):
    c = all_companies(ctx)[0]
    r = hs(ctx).crm.companies.basic_api.get_by_id(c.id, properties=comma(COMPANY))
    expect_eq(r.id, c.id, "id")
    expect_keys(r.properties, COMPANY, "properties")


@check
def hubspot_search_modified_window(ctx):
    now = ctx.sandbox_now()
    r = search(ctx, [{"property_name": "hs_lastmodifieddate", "operator": "GTE", "value": "0"},
                     {"property_name": "hs_lastmodifieddate", "operator": "LT", "value": str(now)}])
    live = len(ctx.get_admin("/truth?include=companies")["companies"])  # every one modified before now
    expect_eq((r.total, len(r.results)), (live, min(live, 100)), "total, results")
    stamps = [r.properties["hs_lastmodifieddate"] for r in r.results]
    expect_eq(stamps, sorted(stamps, key=lambda s: (s or "")), "order by hs_lastmodifieddate")
    for x in r.results:
        expect_keys(x.properties, COMPANY + ["hs_object_id"], f"search result {x.id}")
    if r.total > 100:
        expect(r.paging and r.paging.next.after.isdigit(), f"paging {r.paging}")


@check
def hubspot_search_contacts_and_deals(ctx):
    # contacts filter and sort on lastmodifieddate, deals on hs_lastmodifieddate (the connector's)
    for api, modified, props in [(hs(ctx).crm.contacts.search_api, "lastmodifieddate", CONTACT),
                                 (hs(ctx).crm.deals.search_api, "hs_lastmodifieddate", DEAL)]:
        req = PublicObjectSearchRequest(
            filter_groups=[FilterGroup(filters=[Filter(property_name=modified, operator="GTE", value="0")])],
            sorts=[{"propertyName": modified, "direction": "ASCENDING"}], properties=props, limit=100, after="0")
        r = api.do_search(req)
        expect(r.total > 0 and r.results, f"{modified} search: total {r.total}")
        for x in r.results:
            expect_keys(x.properties, props, f"record {x.id}")


@check
def hubspot_search_by_object_id(ctx):
    ids = sorted(int(c.id) for c in all_companies(ctx))
    r = search(ctx, [{"property_name": "hs_object_id", "operator": "GT", "value": str(ids[9])}], sorts="hs_object_id", limit=10)
    expect_eq([int(x.id) for x in r.results], ids[10:20], "ids after the 10th")


@check
def hubspot_search_not_in(ctx):
    ids = sorted(str(c["hubspot_id"]) for c in ctx.get_admin("/truth?include=companies")["companies"])  # live now
    r = search(ctx, [{"property_name": "hs_object_id", "operator": "NOT_IN", "values": ids[:3]}], limit=200)
    expect_eq(r.total, len(ids) - 3, "total")
    expect(not set(ids[:3]) & {x.id for x in r.results}, "NOT_IN returned an excluded id")


@check
def hubspot_search_contains_token(ctx):
    made = ctx.call_admin("POST", "/crm/companies", {"name": "Zyxwvut Contract Widgets", "website": "zyxwvut.example", "country": "US"})
    r = search(ctx, [{"property_name": "name", "operator": "CONTAINS_TOKEN", "value": "zyxwvut"}])
    expect_eq([x.id for x in r.results], [str(made["hubspot_id"])], "CONTAINS_TOKEN matches (case-insensitive token)")


@check
def hubspot_search_paging_cap(ctx):
    status, body, _ = api_error(lambda: search(ctx, [{"property_name": "hs_lastmodifieddate", "operator": "GTE", "value": "0"}], after="10000"))
    expect_eq(status, 400, "status for after=10000")
    expect_eq(body.get("category"), "VALIDATION_ERROR", "category")


@check
def hubspot_association_batch_read(ctx):
    deals = [d for d in ctx.truth("deals")["deals"] if d["hubspot_company_id"] and not d["archived"]][:5]
    body = BatchInputPublicFetchAssociationsBatchRequest(inputs=[{"id": str(d["hubspot_id"])} for d in deals])
    r = hs(ctx).crm.associations.v4.batch_api.get_page("deals", "companies", body)
    got = {x._from.id: [t.to_object_id for t in x.to] for x in r.results}
    expect_eq(got, {str(d["hubspot_id"]): [str(d["hubspot_company_id"])] for d in deals}, "associations")
    contacts = [c for c in hs(ctx).crm.contacts.basic_api.get_page(limit=20, properties=["associatedcompanyid"]).results
                if c.properties.get("associatedcompanyid")][:5]
    body = BatchInputPublicFetchAssociationsBatchRequest(inputs=[{"id": c.id} for c in contacts])
    r = hs(ctx).crm.associations.v4.batch_api.get_page("contacts", "companies", body)
    got = {x._from.id: [t.to_object_id for t in x.to] for x in r.results}
    expect_eq(got, {c.id: [c.properties["associatedcompanyid"]] for c in contacts}, "contact associations")


@check
def hubspot_association_batch_error_subcategory(ctx):
    # 207 with errors[]; each names its subCategory ("crm.associations.NO_ASSOCIATIONS_FOUND" for
    # a record without a company), which clients use to tell that benign case from a failure.
    # Read raw: hubspot-api-client 12.0.0's StandardError requires `links` and `errors`, which
    # HubSpot's real 207 answers leave out (answers captured from HubSpot: status, category,
    # subCategory, message, context only), so its validation would refuse HubSpot itself.
    lone = ctx.call_admin("POST", "/crm/deals", {"name": "Contract deal without company", "amount": "10.00", "currency": "USD"})
    body = BatchInputPublicFetchAssociationsBatchRequest(inputs=[{"id": str(lone["hubspot_id"])}])
    raw = hs(ctx).crm.associations.v4.batch_api.get_page("deals", "companies", body, _preload_content=False)
    expect_eq(raw.status, 207, "status")
    answer = json.loads(raw.data)
    expect_keys(answer, ["status", "results", "numErrors", "errors", "startedAt", "completedAt"], "207 answer")
    expect_eq(answer["numErrors"], 1, "numErrors")
    err = answer["errors"][0]
    expect_keys(err, ["status", "category", "subCategory", "message", "context"], "error")
    expect_eq((err["category"], err["subCategory"]), ("OBJECT_NOT_FOUND", "crm.associations.NO_ASSOCIATIONS_FOUND"),
              "category, subCategory")
    expect_eq(err["context"].get("fromObjectId"), [str(lone["hubspot_id"])], "context.fromObjectId")


@check
def hubspot_deal_pipelines(ctx):
    r = hs(ctx).crm.pipelines.pipelines_api.get_all("deals")
    expect_eq({p.id for p in r.results}, {"default", "75314512"}, "pipelines")
    outcomes = set()
    for p in r.results:
        for s in p.stages:
            expect_keys(s.metadata, ["isClosed", "probability"], f"stage {s.id} metadata")
            outcomes.add((s.metadata["isClosed"], s.metadata["probability"]))
    expect({("true", "1.0"), ("true", "0.0")} <= outcomes, f"no won and lost stages: {outcomes}")


@check
def hubspot_validation_error(ctx):
    status, body, _ = api_error(lambda: search(ctx, [], limit=201))
    expect_eq(status, 400, "status for limit=201")
    expect_keys(body, ["status", "message", "correlationId", "category"], "error body")
    expect_eq(body["category"], "VALIDATION_ERROR", "category")


@check
def hubspot_invalid_token(ctx):
    status, body, _ = api_error(lambda: hs(ctx, token="CNbnot-a-token").crm.companies.basic_api.get_page(limit=1))
    expect_eq(status, 401, "status")
    expect_eq((body.get("status"), body.get("category")), ("error", "INVALID_AUTHENTICATION"), "status, category")


def rate_limited(ctx, limit):
    class On:
        def __enter__(self):
            ctx.call_admin("PUT", "/providers/hubspot/rate-limit", limit)

        def __exit__(self, *_):
            ctx.call_admin("DELETE", "/providers/hubspot/rate-limit")
    return On()


@check
def hubspot_oauth_calls_have_no_daily_headers(ctx):
    # "OAuth authenticated calls will not include X-HubSpot-RateLimit-Daily or
    # X-HubSpot-RateLimit-Daily-Remaining" (HubSpot changelog, "Rate limit headers will now
    # appear for OAuth authenticated calls"); the rolling-window ones are there.
    with rate_limited(ctx, {"max": 100, "interval_ms": 10000}):
        _, _, headers = hs(ctx).crm.companies.basic_api.get_page_with_http_info(limit=1)
        names = {k.lower() for k in headers}
        for h in ("Interval-Milliseconds", "Max", "Remaining"):
            expect((RATE + h).lower() in names, f"no {RATE}{h}")
        daily = sorted(n for n in names if n.startswith((RATE + "daily").lower()))
        expect(not daily, f"an OAuth call's answer carries {daily}")
        r = ctx.refresh("hubspot", ctx.tokens("hubspot")["refresh_token"])
        expect_eq(r.status_code, 200, "refresh")
        ctx.set_tokens("hubspot", r.json())
        daily = sorted(n for n in r.headers if n.lower().startswith((RATE + "daily").lower()))
        expect(not daily, f"the token answer carries {daily}")


@check
def hubspot_search_has_no_rate_limit_headers(ctx):
    # Search answers carry no X-HubSpot-RateLimit-* headers (developers.hubspot.com/docs/api/crm/search, "Limitations").
    with rate_limited(ctx, {"max": 100, "interval_ms": 10000}):
        _, _, headers = search(ctx, [{"property_name": "hs_lastmodifieddate", "operator": "GTE", "value": "0"}], limit=1, info=True)
        rate = sorted(k for k in headers if k.lower().startswith(RATE.lower()))
        expect(not rate, f"a search answer carries {rate}")


@check
def hubspot_search_five_per_second(ctx):
    # Search has its own limit, five requests per second (crm/search docs, "Limitations"),
    # answered 429 even while the ten-secondly budget has room.
    with rate_limited(ctx, {"max": 100, "interval_ms": 10000}):
        client = hs(ctx)
        started, results = time.monotonic(), []
        for _ in range(7):
            try:
                search(ctx, [{"property_name": "hs_object_id", "operator": "GT", "value": "0"}], limit=1, client=client)
                results.append(200)
            except Exception as e:
                if getattr(e, "status", None) is None:
                    raise
                results.append((e.status, json.loads(e.body or "{}").get("errorType")))
        elapsed = time.monotonic() - started
    # Searches just before this one may share its second: at most five succeed, then a 429.
    expect(elapsed < 1.0, f"7 searches took {elapsed:.2f} s: cannot judge a per-second limit")
    expect((429, "RATE_LIMIT") in results, f"7 searches within {elapsed:.2f} s: {results}")
    expect(results.index((429, "RATE_LIMIT")) <= 5, f"more than five searches in a second passed: {results}")


@check
def hubspot_ten_secondly_limit(ctx):
    with rate_limited(ctx, {"max": 3, "interval_ms": 10000}):
        api = hs(ctx).crm.companies.basic_api
        for _ in range(3):
            api.get_page(limit=1)
        status, body, _ = api_error(lambda: api.get_page(limit=1))
    expect_eq(status, 429, "status over the limit")
    expect_keys(body, ["status", "message", "errorType", "correlationId", "policyName"], "429 body")
    expect_eq((body["errorType"], body["policyName"]), ("RATE_LIMIT", "TEN_SECONDLY_ROLLING"), "errorType, policyName")


@check
def hubspot_expired_token_then_refresh(ctx):
    ctx.call_admin("POST", "/providers/hubspot/tokens/expire")
    status, body, _ = api_error(lambda: hs(ctx).crm.companies.basic_api.get_page(limit=1))
    expect_eq((status, body.get("category")), (401, "EXPIRED_AUTHENTICATION"), "status, category")
    expect(re.search(r"expired \d+ minute\(s\) ago", body.get("message", "")), f"message {body.get('message')!r}")
    c = ctx.clients["hubspot"]
    t = hs(ctx).oauth.tokens_api.create(grant_type="refresh_token", refresh_token=ctx.tokens("hubspot")["refresh_token"],
                                        client_id=c["client_id"], client_secret=c["client_secret"])
    ctx.set_tokens("hubspot", {"access_token": t.access_token})
    hs(ctx).crm.companies.basic_api.get_page(limit=1)


@check
def hubspot_revoked_grant(ctx):
    ctx.call_admin("POST", "/providers/hubspot/grants/revoke")
    try:
        status, body, _ = api_error(lambda: hs(ctx).crm.companies.basic_api.get_page(limit=1))
        expect_eq((status, body.get("category")), (401, "INVALID_AUTHENTICATION"), "status, category")
        refused = ctx.refresh("hubspot", ctx.tokens("hubspot")["refresh_token"])
        expect_eq((refused.status_code, refused.json().get("status")), (400, "BAD_REFRESH_TOKEN"), "refresh after revocation")
    finally:
        ctx.forget("hubspot")
