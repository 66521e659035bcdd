"""Salesforce REST through simple-salesforce, `Salesforce(instance_url=.., session_id=..)` as after
an OAuth web-server flow. The library keeps only the host (and port) of instance_url and always
speaks https: `https://<host>/services/data/vXX.X/query/` (trailing slash), `queryAll/`,
`sobjects/<Type>/deleted/?start=..&end=..` with `+00:00` offsets (api.py, util.date_to_iso8601)."""

from datetime import datetime, timedelta, timezone
from urllib.parse import urlparse

import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceError

from harness import check, expect, expect_eq, expect_keys, reroute

VERSION = "60.0"  # the connector's
ACCOUNT = ["Id", "Name", "Website", "BillingCountry", "CreatedDate", "SystemModstamp"]
CONTACT = ["Id", "FirstName", "LastName", "Email", "Title", "AccountId", "SystemModstamp"]
OPPORTUNITY = ["Id", "Name", "AccountId", "Amount", "CurrencyIsoCode", "StageName", "CloseDate", "CreatedDate",
               "IsClosed", "IsWon", "SystemModstamp"]
STAGE = ["Id", "ApiName", "MasterLabel", "IsClosed", "IsWon", "SortOrder", "DefaultProbability", "IsActive"]


def sf(ctx, token=None, keep_path=True):
    """The client for the instance the token answer names. The transport turns the library's
    https into the sandbox's http and, while the sandbox's instance_url has a path (see
    salesforce_instance_url_is_bare_origin), puts back the path the library drops."""
    t = ctx.tokens("salesforce")
    inst = t["instance_url"].rstrip("/")
    u = urlparse(inst)
    dst = inst if keep_path else f"{u.scheme}://{u.netloc}"
    session = reroute(requests.Session(), [(f"https://{u.netloc}/", dst + "/")])
    return Salesforce(instance_url=inst, session_id=token or t["access_token"], version=VERSION, session=session)


def sf_error(fn):
    """Call fn, which must fail: (status, first error's errorCode)."""
    try:
        fn()
    except SalesforceError as e:
        first = e.content[0] if isinstance(e.content, list) and e.content else {}
        return e.status, first.get("errorCode"), first
    raise AssertionError("the call succeeded")


def query(client, q):
    """The connector's form, `GET .../query?q=..` (no trailing slash), through the library's
    restful(): checks that are not about the slash do not fail on it."""
    return client.restful("query", params={"q": q})


def query_everything(client, q):
    r = query(client, q)
    records = r["records"]
    while not r["done"]:
        r = client.query_more(r["nextRecordsUrl"], identifier_is_url=True)
        records += r["records"]
    return records


def soql(fields, sobject, where=""):
    return f"SELECT {', '.join(fields)} FROM {sobject}{where}"


def utc(ms):
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


@check
def salesforce_instance_url_is_bare_origin(ctx):
    # instance_url is an origin (https://MyDomainName.my.salesforce.com); simple-salesforce keeps
    # urlparse(instance_url).hostname (+ port) and drops any path (Salesforce.__init__).
    u = urlparse(ctx.tokens("salesforce")["instance_url"])
    expect(u.path in ("", "/") and not u.query, f"instance_url {u.geturl()} has a path the clients drop")
    r = query(sf(ctx, keep_path=False), "SELECT Id FROM Account LIMIT 1")
    expect_eq(len(r["records"]), 1, "records through the instance_url as given")


@check
def salesforce_query_trailing_slash(ctx):
    r = sf(ctx).query(soql(ACCOUNT, "Account") + " LIMIT 5")  # GET .../query/?q=..
    expect_keys(r, ["totalSize", "done", "records"], "query answer")
    expect_eq(len(r["records"]), 5, "records")
    for rec in r["records"]:
        expect_keys(rec, ["attributes"] + ACCOUNT, "Account")
        expect_eq(rec["attributes"]["type"], "Account", "attributes.type")


@check
def salesforce_query_incremental(ctx):
    r = query(sf(ctx), soql(ACCOUNT, "Account", " WHERE SystemModstamp >= 2025-01-01T00:00:00.000Z"
                                          " ORDER BY SystemModstamp ASC, Id ASC"))
    keys = [(x["SystemModstamp"], x["Id"]) for x in r["records"]]
    expect(keys, "no Accounts")
    expect_eq(keys, sorted(keys), "ORDER BY SystemModstamp ASC, Id ASC")
    for stamp, _ in keys:
        expect(stamp >= "2025-01-01" and stamp.endswith(".000+0000"), f"SystemModstamp {stamp!r} (whole seconds, +0000)")


@check
def salesforce_query_more_by_url_and_locator(ctx):
    client = sf(ctx)
    first = query(client, soql(CONTACT, "Contact"))
    expect(not first["done"] and first.get("nextRecordsUrl", "").startswith(f"/services/data/v{VERSION}/query/"),
           f"first batch: done {first['done']}, nextRecordsUrl {first.get('nextRecordsUrl')!r}")
    expect_eq(len(first["records"]), 2000, "first batch size")
    by_url = client.query_more(first["nextRecordsUrl"], identifier_is_url=True)
    by_locator = client.query_more(first["nextRecordsUrl"].rsplit("/", 1)[1])
    expect_eq(by_url["records"], by_locator["records"], "the same batch by URL and by locator")
    expect(by_url["done"], "second batch not done")
    expect_eq(len(first["records"]) + len(by_url["records"]), first["totalSize"], "records of both batches")
    expect(not {x["Id"] for x in first["records"]} & {x["Id"] for x in by_url["records"]}, "batches overlap")


@check
def salesforce_query_all(ctx):
    client = sf(ctx)
    total = query(client, "SELECT Id FROM Contact")["totalSize"]
    r = client.query_all("SELECT Id FROM Contact")  # query/ then query_more(nextRecordsUrl)
    expect_eq(len({x["Id"] for x in r["records"]}), total, "distinct records of query_all")


@check
def salesforce_opportunities_and_stages(ctx):
    client = sf(ctx)
    opps = query_everything(client, soql(OPPORTUNITY, "Opportunity"))
    expect(opps, "no Opportunities")
    for o in opps:
        expect_keys(o, OPPORTUNITY, "Opportunity")
    stages = query_everything(client, soql(STAGE, "OpportunityStage"))
    for s in stages:
        expect_keys(s, STAGE, "OpportunityStage")
    expect({s["ApiName"] for s in stages} >= {o["StageName"] for o in opps}, "an Opportunity's StageName is no stage")


@check
def salesforce_describe(ctx):
    client = sf(ctx)
    names = {s["name"] for s in (client.describe() or {}).get("sobjects", [])}  # GET .../sobjects
    expect({"Account", "Contact", "Opportunity", "OpportunityStage"} <= names, f"describe lists {sorted(names)[:10]}")
    fields = {f["name"] for f in client.Account.describe()["fields"]}  # GET .../sobjects/Account/describe
    expect(set(ACCOUNT) <= fields, f"Account describe lacks {set(ACCOUNT) - fields}")


@check
def salesforce_deleted(ctx):
    victim = ctx.truth("companies")["companies"][0]["salesforce_id"]
    ctx.call_admin("DELETE", f"/crm/companies/{victim}")
    ctx.call_admin("POST", "/clock/advance", {"seconds": 2})  # the deletion lies inside [start, end]
    now = ctx.sandbox_now()
    r = sf(ctx).Account.deleted(utc(now - 86_400_000), utc(now))  # ?start=..%2B00%3A00&end=..
    expect_keys(r, ["deletedRecords", "earliestDateAvailable", "latestDateCovered"], "deleted answer")
    expect(victim in {d["id"] for d in r["deletedRecords"]}, f"{victim} not among {r['deletedRecords'][:5]}")
    for d in r["deletedRecords"]:
        expect_keys(d, ["id", "deletedDate"], "deleted record")
    # the answer is complete up to latestDateCovered, never past the end asked for
    covered = datetime.strptime(r["latestDateCovered"], "%Y-%m-%dT%H:%M:%S.%f%z")
    expect(covered <= utc(now), f"latestDateCovered {r['latestDateCovered']} after end")


@check
def salesforce_deleted_too_old(ctx):
    now = ctx.sandbox_now()
    status, code, _ = sf_error(lambda: sf(ctx).Account.deleted(utc(now - 31 * 86_400_000), utc(now)))
    expect_eq((status, code), (400, "INVALID_REPLICATION_DATE"), "start 31 days back: status, errorCode")
    status, code, _ = sf_error(lambda: sf(ctx).Account.deleted(utc(now), utc(now - 3_600_000)))
    expect_eq((status, code), (400, "INVALID_REPLICATION_DATE"), "end before start: status, errorCode")


@check
def salesforce_updated(ctx):
    target = ctx.truth("companies")["companies"][1]["salesforce_id"]
    ctx.call_admin("PATCH", f"/crm/companies/{target}", {"website": "https://contract-updated.example"})
    ctx.call_admin("POST", "/clock/advance", {"seconds": 2})
    now = ctx.sandbox_now()
    r = sf(ctx).Account.updated(utc(now - 86_400_000), utc(now))  # GET .../sobjects/Account/updated/
    expect_keys(r, ["ids", "latestDateCovered"], "updated answer")
    expect(target in r["ids"], f"{target} not among the updated ids")


@check
def salesforce_query_errors(ctx):
    client = sf(ctx)
    for q, want in [("SELEKT Id FROM Account", "MALFORMED_QUERY"),
                    ("SELECT NoSuchField__c FROM Account", "INVALID_FIELD"),
                    ("SELECT Id FROM NoSuchObject__c", "INVALID_TYPE")]:
        status, code, first = sf_error(lambda: query(client, q))
        expect_eq((status, code), (400, want), f"{q!r}")
        expect(first.get("message"), f"{want} without a message")


@check
def salesforce_invalid_session(ctx):
    status, code, first = sf_error(lambda: query(sf(ctx, token="00Dnot-a-session"), "SELECT Id FROM Account"))
    expect_eq((status, code, first.get("message")), (401, "INVALID_SESSION_ID", "Session expired or invalid"), "error")


@check
def salesforce_api_usage_header(ctx):
    client = sf(ctx)
    query(client, "SELECT Id FROM Account LIMIT 1")
    usage = client.api_usage.get("api-usage")  # parsed from Sforce-Limit-Info: api-usage=N/LIMIT
    expect(usage is not None and usage.total == 100000 and 0 < usage.used <= usage.total, f"api usage {usage}")


@check
def salesforce_daily_limit(ctx):
    ctx.call_admin("PUT", "/providers/salesforce/rate-limit", {"daily": 1})
    try:
        client = sf(ctx)
        query(client, "SELECT Id FROM Account LIMIT 1")
        status, code, first = sf_error(lambda: query(client, "SELECT Id FROM Account LIMIT 1"))
    finally:
        ctx.call_admin("PUT", "/providers/salesforce/rate-limit", {"daily": 100000})
    expect_eq((status, code), (403, "REQUEST_LIMIT_EXCEEDED"), "status, errorCode")
    expect_eq(first.get("message"), "TotalRequests Limit exceeded.", "message")


@check
def salesforce_revoked_grant(ctx):
    ctx.call_admin("POST", "/providers/salesforce/grants/revoke")
    try:
        status, code, _ = sf_error(lambda: query(sf(ctx), "SELECT Id FROM Account LIMIT 1"))
        expect_eq((status, code), (401, "INVALID_SESSION_ID"), "status, errorCode")
        refused = ctx.refresh("salesforce", ctx.tokens("salesforce")["refresh_token"])
        expect_eq((refused.status_code, refused.json().get("error")), (400, "invalid_grant"), "refresh after revocation")
    finally:
        ctx.forget("salesforce")
