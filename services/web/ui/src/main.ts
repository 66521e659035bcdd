// The page: sign-in, then the workspace's Connections page, dashboard and bell.

import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { ConnectionHealth } from "./gen/rp/api/v1/sync_pb";
import { api as makeApi, isAuthError, keepStreaming, messageOf, type Api } from "./api";
import { Bell } from "./bell";
import { ConnectionsPage, oauthResult } from "./connections";
import { DashboardPage } from "./dashboard";
import { h, replace } from "./dom";
import * as session from "./session";

const CONNECTIONS = "/workspace/connections";
const DASHBOARD = "/workspace/dashboard";
const app = document.getElementById("app") as HTMLElement;

function signIn(problem?: string): void {
  document.title = "Sign in · Revenue Proven";
  const error = h("p", { role: "alert", class: "error", "data-field": "sign-in-error" }, problem ?? "");
  const ws = h("input", { id: "workspace", name: "workspace", required: true, autocomplete: "username", spellcheck: "false" });
  const key = h("input", { id: "api-key", name: "api-key", type: "password", required: true, autocomplete: "current-password" });
  const start = async (s: session.Session) => {
    try {
      await makeApi(s).sync.getConnectionHealth({ workspaceId: s.workspaceId });
      session.save(s);
      route();
    } catch (e) {
      error.textContent = messageOf(e);
    }
  };
  replace(
    app,
    h(
      "main",
      { id: "main", class: "sign-in" },
      h("h1", {}, "Revenue Proven"),
      h("p", {}, "Sign in with your workspace id and an API key (ask your administrator, or run rp keys create). They stay in this browser tab only."),
      h(
        "form",
        { onsubmit: (e: Event) => { e.preventDefault(); void start({ workspaceId: ws.value.trim(), apiKey: key.value.trim() }); } },
        h("div", { class: "field" }, h("label", { for: "workspace" }, "Workspace id"), ws),
        h("div", { class: "field" }, h("label", { for: "api-key" }, "API key"), key),
        h("button", { type: "submit", class: "primary" }, "Sign in"),
      ),
      h("p", {}, h("button", { type: "button", "data-action": "demo", onclick: async () => { try { await start(await session.demo()); } catch (e) { error.textContent = messageOf(e); } } }, "Use the demo workspace (make run)")),
      error,
    ),
  );
  ws.focus();
}

let running: { api: Api; abort: AbortController; health: ConnectionHealth | null; listeners: Set<(h: ConnectionHealth) => void>; bell: Bell; live: HTMLElement } | null = null;

function start(s: session.Session) {
  const api = makeApi(s);
  const abort = new AbortController();
  const bell = new Bell(api);
  const live = h("p", { role: "status", class: "live", "data-field": "live" });
  const r = { api, abort, health: null as ConnectionHealth | null, listeners: new Set<(h: ConnectionHealth) => void>(), bell, live };
  running = r;
  void bell.run(abort.signal);
  void keepStreaming(
    abort.signal,
    async (signal) => {
      for await (const health of api.sync.watchConnectionHealth({ workspaceId: s.workspaceId }, { signal })) {
        live.textContent = "";
        r.health = health;
        for (const l of r.listeners) l(health);
      }
    },
    (_live, e) => {
      if (e && isAuthError(e)) {
        signOut(messageOf(e));
        return;
      }
      live.textContent = e ? `Live updates paused (${messageOf(e)}); reconnecting…` : "Live updates paused; reconnecting…";
    },
  );
  return r;
}

function signOut(problem?: string): void {
  running?.abort.abort();
  running = null;
  session.clear();
  history.replaceState(null, "", CONNECTIONS);
  signIn(problem);
}

function navigate(path: string): void {
  history.pushState(null, "", path);
  route();
}

function route(): void {
  const s = session.load();
  const url = new URL(location.href);
  if (!s) {
    signIn();
    return;
  }
  if (url.pathname !== CONNECTIONS && url.pathname !== DASHBOARD) {
    history.replaceState(null, "", CONNECTIONS + url.hash);
    url.pathname = CONNECTIONS;
  }
  const r = running ?? start(s);
  r.listeners.clear();
  const onConnections = url.pathname === CONNECTIONS;
  let page: HTMLElement;
  if (onConnections) {
    const banner = oauthResult(url.searchParams);
    const completion = url.searchParams.get("status") === "authorized" ? url.searchParams.get("completion") : null;
    // The completion is single use and must not stay in the address bar or the history.
    if (url.search) history.replaceState(null, "", CONNECTIONS + url.hash);
    const focus = url.hash.startsWith("#integration-") ? url.hash.slice("#integration-".length) : null;
    const p = new ConnectionsPage(r.api, banner, focus);
    if (completion) void p.complete(completion, url.searchParams.get("provider") ?? "");
    r.listeners.add((health) => p.show(health));
    if (r.health) p.show(r.health);
    page = p.root;
    document.title = "Connections · Revenue Proven";
  } else {
    const p = new DashboardPage(r.api);
    let last = syncedAt(r.health);
    r.listeners.add((health) => {
      const now = syncedAt(health);
      if (now !== last) {
        last = now;
        void p.load();
      }
    });
    void p.load();
    page = p.root;
    document.title = "Dashboard · Revenue Proven";
  }
  const link = (href: string, text: string) =>
    h("a", { href, "aria-current": url.pathname === href ? "page" : undefined, onclick: (e: Event) => { e.preventDefault(); navigate(href); } }, text);
  replace(
    app,
    h("a", { class: "skip", href: "#main" }, "Skip to content"),
    h(
      "header",
      { class: "top" },
      h("span", { class: "brand" }, "Revenue Proven"),
      h("div", { class: "top-right" }, r.bell.button, h("button", { type: "button", class: "link", onclick: () => signOut() }, "Sign out")),
    ),
    r.bell.panel,
    h(
      "div",
      { class: "layout" },
      h("nav", { "aria-labelledby": "nav-title" }, h("h2", { id: "nav-title" }, "Workspace"), h("ul", {}, h("li", {}, link(CONNECTIONS, "Connections")), h("li", {}, link(DASHBOARD, "Dashboard")))),
      h("main", { id: "main" }, r.live, page),
    ),
  );
}

/** The newest successful sync of any integration: when it moves, a sync completed. */
function syncedAt(health: ConnectionHealth | null): number {
  let max = 0;
  for (const i of health?.integrations ?? []) {
    if (i.lastSuccessfulSyncAt) max = Math.max(max, timestampDate(i.lastSuccessfulSyncAt).getTime());
  }
  return max;
}

window.addEventListener("popstate", route);
route();
