// The Connections page: each integration's health, live through WatchConnectionHealth, and
// what a person can do with it (Sync Now, Disconnect, Connect/Reconnect, the daily sync time).

import { ConnectionStatus, Provider } from "./gen/rp/api/v1/connections_pb";
import type { ConnectionHealth, IntegrationHealth } from "./gen/rp/api/v1/sync_pb";
import { Provider as EventProvider } from "./gen/rp/events/v1/events_pb";
import { messageOf, type Api } from "./api";
import { h, replace } from "./dom";
import { outcome, providerName, stepName, when, whenIn } from "./format";

const PROVIDERS: [Provider, EventProvider][] = [
  [Provider.LINKEDIN, EventProvider.LINKEDIN],
  [Provider.HUBSPOT, EventProvider.HUBSPOT],
  [Provider.SALESFORCE, EventProvider.SALESFORCE],
];

/** What the OAuth callback's `?status=` means, in words (docs/connector.md). */
export function oauthResult(q: URLSearchParams): { ok: boolean; text: string } | null {
  const status = q.get("status");
  if (!status) return null;
  const p = q.get("provider") ?? "";
  const name = p ? p.charAt(0).toUpperCase() + p.slice(1) : "The integration";
  const display = { Linkedin: "LinkedIn", Hubspot: "HubSpot", Salesforce: "Salesforce" }[name] ?? name;
  switch (status) {
    case "authorized":
      return { ok: true, text: `Finishing the connection to ${display}…` };
    case "connected":
      return { ok: true, text: `${display} is connected. It syncs daily at the time shown below; click Sync Now to sync right away.` };
    case "reconnected":
      return { ok: true, text: `${display} is connected again. Syncing resumes from where it stopped.` };
    case "denied":
      return { ok: false, text: `Access was not granted at ${display}, so nothing changed. Click Connect (or Reconnect) to try again.` };
    default: {
      const reasons: Record<string, string> = {
        invalid_state: "the sign-in link was not one we issued",
        state_used: "that sign-in link was already used",
        state_expired: "the sign-in took too long",
        exchange_failed: "the provider did not give us access",
        provider_unavailable: "the provider is unavailable right now",
        untrusted_instance_url: "Salesforce sent us to a server that is not Salesforce, so no access was kept",
      };
      const why = reasons[q.get("reason") ?? ""] ?? "something went wrong";
      return { ok: false, text: `Connecting did not complete: ${why}. Please click Connect (or Reconnect) again.` };
    }
  }
}

interface Card {
  root: HTMLElement;
  update(h: IntegrationHealth): void;
}

export class ConnectionsPage {
  readonly root: HTMLElement;
  private list: HTMLElement;
  private add: HTMLElement;
  private cards = new Map<string, Card>();
  private dialog: HTMLDialogElement;
  private focusId: string | null;
  private banner: HTMLElement;

  constructor(private api: Api, banner: { ok: boolean; text: string } | null, focusId: string | null) {
    this.focusId = focusId;
    this.banner = h("p", { "data-field": "oauth-result" });
    this.setBanner(banner);
    this.dialog = h("dialog", { "aria-labelledby": "confirm-title", class: "confirm" });
    this.list = h("div", { class: "cards", "aria-live": "polite", "aria-busy": "true" }, h("p", {}, "Loading your integrations…"));
    this.add = h("section", { "aria-labelledby": "add-title", class: "add" });
    this.root = h(
      "section",
      { "aria-labelledby": "page-title" },
      h("h1", { id: "page-title", tabindex: -1 }, "Connections"),
      h("p", { class: "lead" }, "Your integrations sync automatically every day at their own time. Sync Now pulls the latest data at once; the dashboard updates when the sync completes."),
      this.banner,
      this.list,
      this.add,
      this.dialog,
      h("datalist", { id: "time-zones" }, ...timeZones().map((z) => h("option", { value: z }))),
    );
  }

  private setBanner(b: { ok: boolean; text: string } | null): void {
    this.banner.hidden = !b;
    this.banner.className = b?.ok ? "banner ok" : "banner bad";
    this.banner.setAttribute("role", b?.ok ? "status" : "alert");
    this.banner.textContent = b?.text ?? "";
  }

  /**
   * Completes the authorization the provider sent the browser back with (`?status=authorized`),
   * with this workspace's key: the callback connects nothing itself, so a connect link someone
   * else started never connects their workspace to this person's account (docs/security.md).
   */
  async complete(completion: string, provider: string): Promise<void> {
    const display = ({ linkedin: "LinkedIn", hubspot: "HubSpot", salesforce: "Salesforce" } as Record<string, string>)[provider] ?? "The integration";
    try {
      const done = await this.api.connections.completeConnect({ workspaceId: this.api.session.workspaceId, completion });
      const text = done.accountChanged
        ? `${display} is connected again, to another account: its data is synced in full at the next sync, and the previous account's leaves the dashboard then.`
        : done.reconnected
          ? `${display} is connected again. Syncing resumes from where it stopped.`
          : `${display} is connected. It syncs daily at the time shown below; click Sync Now to sync right away.`;
      this.setBanner({ ok: true, text });
      if (done.connection) this.focusId = done.connection.integrationId;
    } catch (e) {
      this.setBanner({ ok: false, text: `Connecting did not complete: ${messageOf(e)}` });
    }
  }

  /** A health snapshot (the stream's first message, and every change after it). */
  show(health: ConnectionHealth): void {
    this.list.setAttribute("aria-busy", "false");
    const seen = new Set<string>();
    if (this.cards.size === 0) this.list.replaceChildren();
    for (const ih of health.integrations) {
      seen.add(ih.integrationId);
      let card = this.cards.get(ih.integrationId);
      if (!card) {
        card = this.card(ih);
        this.cards.set(ih.integrationId, card);
        this.list.append(card.root);
      }
      card.update(ih);
    }
    for (const [id, card] of this.cards) {
      if (!seen.has(id)) {
        card.root.remove();
        this.cards.delete(id);
      }
    }
    if (health.integrations.length === 0) {
      replace(this.list, h("p", {}, "No integrations yet: connect LinkedIn and your CRM below."));
    }
    this.showAdd(health.integrations.map((i) => i.provider));
    if (this.focusId) {
      const target = this.cards.get(this.focusId)?.root;
      if (target) {
        target.classList.add("focused");
        target.scrollIntoView({ block: "center" });
        target.focus();
        this.focusId = null;
      }
    }
  }

  showError(text: string): void {
    this.list.setAttribute("aria-busy", "false");
    if (this.cards.size === 0) replace(this.list, h("p", { class: "banner bad", role: "alert" }, text));
  }

  private showAdd(present: EventProvider[]): void {
    const missing = PROVIDERS.filter(([, ev]) => !present.includes(ev));
    if (missing.length === 0) {
      this.add.replaceChildren();
      return;
    }
    const message = h("p", { role: "alert", class: "error", "data-field": "connect-error" });
    replace(
      this.add,
      h("h2", { id: "add-title" }, "Add an integration"),
      h(
        "div",
        { class: "actions" },
        ...missing.map(([p, ev]) =>
          h(
            "button",
            {
              type: "button",
              class: "primary",
              onclick: async (e: Event) => {
                const b = e.currentTarget as HTMLButtonElement;
                b.disabled = true;
                message.textContent = "";
                try {
                  const r = await this.api.connections.startConnect({ workspaceId: this.api.session.workspaceId, provider: p });
                  location.assign(r.authorizeUrl);
                } catch (err) {
                  message.textContent = messageOf(err);
                  b.disabled = false;
                }
              },
            },
            `Connect ${providerName(ev)}`,
          ),
        ),
      ),
      message,
    );
  }

  private confirm(title: string, text: string, yes: string): Promise<boolean> {
    return new Promise((resolve) => {
      const close = (v: boolean) => {
        this.dialog.close();
        resolve(v);
      };
      replace(
        this.dialog,
        h("h2", { id: "confirm-title" }, title),
        h("p", {}, text),
        h(
          "div",
          { class: "actions" },
          h("button", { type: "button", onclick: () => close(false) }, "Cancel"),
          h("button", { type: "button", class: "danger", onclick: () => close(true) }, yes),
        ),
      );
      this.dialog.onclose = () => resolve(false);
      this.dialog.showModal();
    });
  }

  private card(first: IntegrationHealth): Card {
    const id = first.integrationId;
    const name = providerName(first.provider);
    const f = (field: string, tag: "dd" | "p" | "span" = "dd") => h(tag, { "data-field": field });
    const status = f("status", "span");
    const reason = f("reason", "p");
    const todo = f("todo", "p");
    const lastSync = f("last-sync");
    const lastAttempt = f("last-attempt");
    const nextSync = f("next-sync");
    const step = f("step");
    const stepRow = h("div", { class: "row" }, h("dt", {}, "Running now"), step);
    const message = h("p", { role: "status", class: "message", "data-field": "message" });
    const error = h("p", { role: "alert", class: "error", "data-field": "error" });
    const say = (text: string) => {
      error.textContent = "";
      message.textContent = text;
    };
    const fail = (e: unknown) => {
      message.textContent = "";
      error.textContent = messageOf(e);
    };

    const syncNow = h("button", { type: "button", class: "primary", "data-action": "sync-now" }, "Sync Now");
    syncNow.addEventListener("click", async () => {
      syncNow.disabled = true;
      try {
        const r = await this.api.sync.syncNow({ integrationId: id });
        say(r.joinedRunning ? `A ${name} sync is already running; its progress shows here.` : `${name} sync started. It runs in the background; the dashboard updates when it completes.`);
      } catch (e) {
        fail(e);
      } finally {
        syncNow.disabled = false;
      }
    });
    const disconnect = h("button", { type: "button", class: "danger", "data-action": "disconnect" }, "Disconnect");
    disconnect.addEventListener("click", async () => {
      const ok = await this.confirm(
        `Disconnect ${name}?`,
        `Syncing ${name} stops. The data already synced stays in your workspace and on the dashboard; you can reconnect at any time.`,
        `Disconnect ${name}`,
      );
      if (!ok) return;
      try {
        await this.api.connections.disconnect({ workspaceId: this.api.session.workspaceId, integrationId: id });
        say(`${name} is disconnected. Its data stays in your workspace.`);
      } catch (e) {
        fail(e);
      }
    });
    const reconnect = h("button", { type: "button", class: "primary", "data-action": "reconnect" }, "Reconnect");
    reconnect.addEventListener("click", async () => {
      reconnect.disabled = true;
      try {
        const r = await this.api.connections.reconnect({ workspaceId: this.api.session.workspaceId, integrationId: id });
        location.assign(r.authorizeUrl);
      } catch (e) {
        fail(e);
        reconnect.disabled = false;
      }
    });

    const timeId = `time-${id}`;
    const zoneId = `zone-${id}`;
    const time = h("input", { id: timeId, name: "time", type: "time", required: true, "data-field": "schedule-time" });
    const zone = h("input", { id: zoneId, name: "zone", list: "time-zones", required: true, autocomplete: "off", "data-field": "schedule-zone" });
    let dirty = false;
    for (const i of [time, zone]) i.addEventListener("input", () => (dirty = true));
    const schedule = h(
      "form",
      { class: "schedule", "aria-label": `${name} daily sync time` },
      h("div", { class: "field" }, h("label", { for: timeId }, "Daily sync time"), time),
      h("div", { class: "field" }, h("label", { for: zoneId }, "Time zone"), zone),
      h("button", { type: "submit", "data-action": "save-schedule" }, "Save schedule"),
    );

    schedule.addEventListener("submit", async (e) => {
      e.preventDefault();
      try {
        const updated = await this.api.sync.setSyncSchedule({ integrationId: id, localTime: time.value, timeZone: zone.value.trim() });
        dirty = false;
        card.update(updated);
        say(`Saved: ${name} now syncs daily at ${updated.scheduleLocalTime} (${updated.scheduleTimeZone}).`);
      } catch (err) {
        fail(err);
      }
    });

    const actions = h("div", { class: "actions" });
    const titleId = `title-${id}`;
    const root = h(
      "article",
      { class: "card", id: `integration-${id}`, "aria-labelledby": titleId, tabindex: -1, "data-provider": name.toLowerCase() },
      h("header", {}, h("h2", { id: titleId }, name), status),
      reason,
      todo,
      h(
        "dl",
        {},
        h("div", { class: "row" }, h("dt", {}, "Last successful sync"), lastSync),
        h("div", { class: "row" }, h("dt", {}, "Last attempt"), lastAttempt),
        h("div", { class: "row" }, h("dt", {}, "Next scheduled sync"), nextSync),
        stepRow,
      ),
      schedule,
      actions,
      message,
      error,
    );

    const card: Card = {
      root,
      update: (ih: IntegrationHealth) => {

        const connected = ih.status === ConnectionStatus.CONNECTED;
        if (root.dataset.status && root.dataset.status !== (connected ? "connected" : "disconnected")) {
          // What was said about the old state (a sync started, ...) is no longer true.
          message.textContent = "";
        }
        status.textContent = connected ? "Connected" : "Disconnected";
        status.className = connected ? "status ok" : "status bad";
        root.dataset.status = connected ? "connected" : "disconnected";
        reason.textContent = connected
          ? ""
          : [sentence(ih.disconnectReason || "Disconnected"), ih.providerMessage ? `${name} said: “${ih.providerMessage}”` : ""].filter(Boolean).join(" ");
        todo.textContent = connected ? "" : `Syncing has stopped. To resume, click Reconnect and sign in to ${name} again; syncing continues from where it stopped and keeps the data already synced.`;
        reason.hidden = connected;
        todo.hidden = connected;
        lastSync.textContent = when(ih.lastSuccessfulSyncAt);
        lastAttempt.textContent = ih.lastAttemptAt ? `${when(ih.lastAttemptAt)}: ${outcome(ih.lastAttemptOutcome)}` : "none yet";
        nextSync.textContent = whenIn(ih.nextScheduledSyncAt, ih.scheduleTimeZone, connected ? "not scheduled" : "none: syncing has stopped");
        const running = ih.runningSyncRunId !== "";
        step.textContent = running ? stepName(ih.currentStep) : "";
        stepRow.hidden = !running;
        root.dataset.running = running ? "yes" : "no";
        if (!dirty && document.activeElement !== time && document.activeElement !== zone) {
          time.value = ih.scheduleLocalTime;
          zone.value = ih.scheduleTimeZone;
        }
        actions.replaceChildren(...(connected ? [syncNow, disconnect] : [reconnect]));

      },
    };
    return card;
  }
}

function sentence(s: string): string {
  return /[.!?]$/.test(s.trim()) ? s.trim() : `${s.trim()}.`;
}

function timeZones(): string[] {
  const intl = Intl as unknown as { supportedValuesOf?: (k: string) => string[] };
  try {
    return intl.supportedValuesOf ? ["UTC", ...intl.supportedValuesOf("timeZone")] : ["UTC"];
  } catch {
    return ["UTC"];
  }
}
