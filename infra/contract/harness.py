"""The contract suite's plumbing: the sandbox process, the OAuth dance, the check registry.

Everything here talks plain HTTP to the sandbox; the checks (checks_*.py) drive the providers'
own client libraries against it.
"""

import base64
import ctypes
import hashlib
import os
import re
import secrets
import signal
import subprocess
import threading
import time
import traceback
from urllib.parse import parse_qs, urlparse

import requests
from requests.adapters import HTTPAdapter

REDIRECT_URI = "http://127.0.0.1:8081/oauth/callback"
SCOPES = {  # what the connector asks for (services/connector/src/providers/oauth/config.rs)
    "linkedin": ["r_ads", "r_ads_reporting", "r_organization_social"],
    "hubspot": ["crm.objects.companies.read", "crm.objects.contacts.read", "crm.objects.deals.read"],
    "salesforce": ["api", "refresh_token"],
}

# ---------------------------------------------------------------------------------------------
# Checks


CHECKS = []


def check(fn):
    """Register a check: a function of the context that raises when the sandbox diverges."""
    CHECKS.append(fn)
    return fn


class Divergence(AssertionError):
    pass


def expect(cond, message):
    if not cond:
        raise Divergence(message)


def expect_eq(got, want, what):
    expect(got == want, f"{what}: got {got!r}, want {want!r}")


def expect_keys(obj, keys, what):
    missing = [k for k in keys if k not in obj]
    expect(not missing, f"{what} lacks {missing} (has {sorted(obj)})")


def run_checks(ctx, selected):
    passed, failed = 0, []
    for fn in selected:
        started = time.monotonic()
        try:
            fn(ctx)
        except Exception as e:  # a check fails on anything it raises
            if getattr(e, "status", None) and getattr(e, "body", None):  # hubspot ApiException
                reason = f"{type(e).__name__} HTTP {e.status}: {e.body}"
            elif getattr(e, "status", None) and hasattr(e, "content"):  # simple-salesforce
                reason = f"{type(e).__name__} HTTP {e.status} from {e.url}: {e.content}"
            else:
                reason = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            reason = " ".join(reason.split())
            if len(reason) > 400:
                reason = reason[:400] + "…"
            failed.append((fn.__name__, reason))
            print(f"FAIL {fn.__name__}: {reason}", flush=True)
            if os.environ.get("CONTRACT_TRACE"):
                traceback.print_exc()
        else:
            passed += 1
            print(f"ok   {fn.__name__} ({(time.monotonic() - started) * 1000:.0f} ms)", flush=True)
    return passed, failed


# ---------------------------------------------------------------------------------------------
# The sandbox process

ANSI = re.compile(r"\x1b\[[0-9;]*m")
SERVING = re.compile(r"admin=(http://127\.0\.0\.1:\d+)/admin")

SANDBOX_ENV = {
    "SANDBOX_ADDR": "127.0.0.1:0",  # the sandbox binds a free port and logs it: no race for one
    "SANDBOX_COMPANIES": "200",
    "SANDBOX_CONTACTS": "2100",  # more than one Salesforce batch (2,000): query_more has work
    "SANDBOX_DEALS": "100",
    "SANDBOX_ORGS": "600",  # a year of their engagement passes adAnalytics' 15,000-element cap
    "SANDBOX_DAYS": "365",
    "SANDBOX_HUBSPOT_RATE_LIMIT": "off",  # the rate-limit checks turn it on through the admin API
    "NO_COLOR": "1",
    "RUST_LOG": "info",
}


def die_with_parent():
    """In the child: SIGTERM when the suite dies, even by SIGKILL (Linux prctl PR_SET_PDEATHSIG)."""
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


class SandboxProcess:
    """`target/debug/sandbox` on a port of its own, its log in `log_path`."""

    def __init__(self, binary, log_path, timeout=60):
        # none of the caller's SANDBOX_* settings (a state dir above all: memory only here)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SANDBOX_")}
        env.update(SANDBOX_ENV)
        self.log = open(log_path, "w")
        self.log_path = log_path
        self.proc = subprocess.Popen(
            [binary], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            preexec_fn=die_with_parent,
        )
        self.base = None
        ready = threading.Event()

        def pump():  # copy the log, and note the address once it is serving
            for line in self.proc.stdout:
                line = ANSI.sub("", line)
                self.log.write(line)
                self.log.flush()
                m = SERVING.search(line)
                if m and not ready.is_set():
                    self.base = m.group(1)
                    ready.set()
            ready.set()  # exited: wake the waiter

        threading.Thread(target=pump, daemon=True).start()
        if not ready.wait(timeout) or self.base is None:
            code = self.proc.poll()
            self.stop()
            why = f"exited ({code})" if code is not None else f"did not serve within {timeout} s"
            raise RuntimeError(f"the sandbox {why}; its log: {log_path}")
        requests.get(f"{self.base}/admin/config", timeout=10).raise_for_status()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


# ---------------------------------------------------------------------------------------------
# Sending a client's requests to the sandbox


class Reroute(HTTPAdapter):
    """A transport that sends what a client addresses to a provider's real host to the sandbox.

    The libraries hard-code their hosts (LinkedIn: api.linkedin.com, www.linkedin.com; HubSpot's
    authorize page app.hubspot.com) or always speak https (simple-salesforce builds
    `https://<instance host>/...`). Only the transport changes: every path, query, header and body
    is the library's own.
    """

    def __init__(self, routes):
        super().__init__()
        self.routes = routes

    def send(self, request, **kwargs):
        for src, dst in self.routes:
            if request.url.startswith(src):
                request.url = dst + request.url[len(src):]
                break
        self.last = super().send(request, **kwargs)  # for a failure's message
        return self.last


def reroute(session, routes):
    session.reroute = Reroute(routes)
    for src, _ in routes:
        session.mount(src, session.reroute)
    return session


# ---------------------------------------------------------------------------------------------
# The context every check gets


def pkce():
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    return verifier, challenge.decode()


class Ctx:
    def __init__(self, base):
        self.base = base
        self.admin = f"{base}/admin"
        self.http = requests.Session()
        self.config = self.get_admin("/config")
        self.clients = self.config["providers"]
        self._tokens = {}
        self.memo = {}

    # admin API (never rate limited or logged)
    def get_admin(self, path):
        r = self.http.get(self.admin + path, timeout=30)
        r.raise_for_status()
        return r.json()

    def call_admin(self, method, path, body=None):
        r = self.http.request(method, self.admin + path, json=body, timeout=30)
        expect(r.status_code < 300, f"admin {method} {path} answered {r.status_code}: {r.text[:200]}")
        return r.json() if r.content else None

    def truth(self, include):
        key = f"truth:{include}"
        if key not in self.memo:
            self.memo[key] = self.get_admin(f"/truth?include={include}")
        return self.memo[key]

    def url(self, provider):
        return f"{self.base}/{provider}"

    # OAuth by plain HTTP, as the connector does it (code + PKCE S256)
    def authorize(self, provider, with_pkce=True, extra=None, denied=False):
        """GET the authorize URL, follow nothing; returns (query of the redirect, verifier).
        The redirect must carry a code (an error when `denied`)."""
        c = self.clients[provider]
        params = {
            "response_type": "code",
            "client_id": c["client_id"],
            "redirect_uri": REDIRECT_URI,
            "state": secrets.token_hex(8),
            "scope": " ".join(SCOPES[provider]),
        }
        verifier = None
        if with_pkce:
            verifier, challenge = pkce()
            params.update(code_challenge=challenge, code_challenge_method="S256")
        params.update(extra or {})
        r = self.http.get(c["authorize_url"], params=params, allow_redirects=False, timeout=30)
        expect(r.status_code in (302, 303), f"{provider} authorize answered {r.status_code}: {r.text[:300]}")
        loc = urlparse(r.headers["Location"])
        expect(f"{loc.scheme}://{loc.netloc}{loc.path}" == REDIRECT_URI, f"redirected to {loc.geturl()}")
        q = {k: v[0] for k, v in parse_qs(loc.query).items()}
        expect(q.get("state") == params["state"], f"state not returned: {q}")
        expect(("error" if denied else "code") in q, f"{provider} authorize redirected with {q}")
        return q, verifier

    def exchange(self, provider, code, verifier=None):
        c = self.clients[provider]
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "client_id": c["client_id"],
            "client_secret": c["client_secret"],
        }
        if verifier:
            form["code_verifier"] = verifier
        return self.http.post(c["token_url"], data=form, timeout=30)

    def refresh(self, provider, refresh_token):
        c = self.clients[provider]
        form = {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": c["client_id"],
            "client_secret": c["client_secret"],
        }
        return self.http.post(c["token_url"], data=form, timeout=30)

    def grant(self, provider):
        """A fresh grant through the connector's flow: the token answer (JSON)."""
        q, verifier = self.authorize(provider)
        r = self.exchange(provider, q["code"], verifier)
        expect(r.status_code == 200, f"{provider} token answered {r.status_code}: {r.text[:300]}")
        return r.json()

    def tokens(self, provider):
        if provider not in self._tokens:
            self._tokens[provider] = self.grant(provider)
        return self._tokens[provider]

    def token(self, provider):
        return self.tokens(provider)["access_token"]

    def set_tokens(self, provider, answer):
        old = self._tokens.get(provider, {})
        self._tokens[provider] = {**old, **answer}

    def forget(self, provider):
        """Drop a provider's tokens (after revoking them): the next use makes a new grant."""
        self._tokens.pop(provider, None)

    def sandbox_now(self):
        return self.get_admin("/clock")["now_ms"]
