// The notification bell: the unread count, the list, mark read, live through Subscribe
// (a notification sent again with the same id replaces the one shown).

import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { Notification } from "./gen/rp/api/v1/notifications_pb";
import { keepStreaming, messageOf, type Api } from "./api";
import { h, replace } from "./dom";
import { when } from "./format";

export class Bell {
  readonly button: HTMLButtonElement;
  readonly panel: HTMLElement;
  private badge: HTMLElement;
  private items: HTMLElement;
  private error: HTMLElement;
  private unread = 0n;
  private byId = new Map<string, Notification>();

  constructor(private api: Api) {
    this.badge = h("span", { class: "badge", "data-field": "unread", "aria-hidden": "true" });
    this.button = h("button", { type: "button", class: "bell", "aria-expanded": "false", "aria-controls": "bell-panel" }, bellIcon(), this.badge);
    this.items = h("ol", { class: "notifications", "aria-live": "polite" });
    this.error = h("p", { role: "alert", class: "error" });
    this.panel = h(
      "section",
      { id: "bell-panel", class: "bell-panel", "aria-labelledby": "bell-title", hidden: true },
      h("div", { class: "panel-head" }, h("h2", { id: "bell-title" }, "Notifications"), h("button", { type: "button", "data-action": "mark-all-read", onclick: () => void this.markAll() }, "Mark all read")),
      this.error,
      this.items,
    );
    this.button.addEventListener("click", () => this.toggle());
    this.panel.addEventListener("keydown", (e) => {
      if ((e as KeyboardEvent).key === "Escape") {
        this.toggle(false);
        this.button.focus();
      }
    });
    this.setUnread(0n);
  }

  toggle(open = this.panel.hidden): void {
    this.panel.hidden = !open;
    this.button.setAttribute("aria-expanded", String(open));
    if (open) (this.panel.querySelector("h2") as HTMLElement | null)?.setAttribute("tabindex", "-1");
    if (open) (this.panel.querySelector("h2") as HTMLElement | null)?.focus();
  }

  /** Lists, counts, then follows Subscribe until `signal` aborts (resubscribing as needed). */
  async run(signal: AbortSignal): Promise<void> {
    const ws = this.api.session.workspaceId;
    await keepStreaming(
      signal,
      async (s) => {
        const stream = this.api.notifications.subscribe({ workspaceId: ws }, { signal: s });
        // Subscribe first, then catch up with List: nothing raised in between is missed.
        await this.refresh();
        for await (const n of stream) {
          this.byId.set(n.notificationId, n);
          this.render();
          await this.count();
        }
      },
      (_live, e) => {
        if (e) this.error.textContent = messageOf(e);
      },
    );
  }

  private async refresh(): Promise<void> {
    try {
      const r = await this.api.notifications.list({ workspaceId: this.api.session.workspaceId, pageSize: 50 });
      this.byId = new Map(r.notifications.map((n) => [n.notificationId, n]));
      this.error.textContent = "";
      this.render();
      await this.count();
    } catch (e) {
      this.error.textContent = messageOf(e);
    }
  }

  private async count(): Promise<void> {
    const r = await this.api.notifications.unreadCount({ workspaceId: this.api.session.workspaceId });
    this.setUnread(r.unread);
  }

  private setUnread(n: bigint): void {
    this.unread = n;
    this.badge.textContent = n > 0n ? String(n) : "";
    this.badge.hidden = n === 0n;
    this.button.setAttribute("aria-label", n > 0n ? `Notifications, ${n} unread` : "Notifications, none unread");
  }

  private async markRead(n: Notification): Promise<void> {
    try {
      const r = await this.api.notifications.markRead({ workspaceId: this.api.session.workspaceId, notificationId: n.notificationId });
      n.readAt = { seconds: BigInt(Math.floor(Date.now() / 1000)), nanos: 0 } as Notification["readAt"];
      this.setUnread(r.unread);
      this.render();
    } catch (e) {
      this.error.textContent = messageOf(e);
    }
  }

  private async markAll(): Promise<void> {
    try {
      await this.api.notifications.markAllRead({ workspaceId: this.api.session.workspaceId });
      await this.refresh();
    } catch (e) {
      this.error.textContent = messageOf(e);
    }
  }

  private render(): void {
    const list = [...this.byId.values()].sort((a, b) => (b.raisedAt ? timestampDate(b.raisedAt).getTime() : 0) - (a.raisedAt ? timestampDate(a.raisedAt).getTime() : 0));
    if (list.length === 0) {
      replace(this.items, h("li", { class: "empty" }, "No notifications."));
      return;
    }
    replace(
      this.items,
      ...list.map((n) => {
        const unread = !n.readAt;
        return h(
          "li",
          { class: unread ? "notification unread" : "notification", "data-notification": n.notificationId, "data-integration": n.integrationId },
          h("h3", {}, unread ? h("span", { class: "dot" }, h("span", { class: "sr-only" }, "Unread: ")) : null, n.title),
          h("p", {}, n.body),
          n.action ? h("p", { class: "action" }, n.action) : null,
          h(
            "p",
            { class: "meta" },
            h("time", {}, when(n.updatedAt ?? n.raisedAt)),
            safeLink(n) && h("a", { href: safeLink(n)!, "data-action": "open-connections" }, `Open Connections${n.provider ? ` (${n.provider})` : ""}`),
            unread && h("button", { type: "button", class: "link", "data-action": "mark-read", onclick: () => void this.markRead(n) }, "Mark read"),
          ),
        );
      }),
    );
  }
}

/** The notification's link to the Connections page, at its integration (http(s) only). */
function safeLink(n: Notification): string | null {
  try {
    const u = new URL(n.link, location.origin);
    if (u.protocol !== "http:" && u.protocol !== "https:") return null;
    if (n.integrationId) u.hash = `integration-${n.integrationId}`;
    return u.toString();
  } catch {
    return null;
  }
}

/** A bell drawn inline (no icon font or emoji font needed). */
function bellIcon(): SVGSVGElement {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("width", "20");
  svg.setAttribute("height", "20");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  const path = document.createElementNS(ns, "path");
  path.setAttribute("fill", "currentColor");
  path.setAttribute("d", "M12 22a2.5 2.5 0 0 0 2.45-2h-4.9A2.5 2.5 0 0 0 12 22zm7-6V11a7 7 0 0 0-5.5-6.84V3a1.5 1.5 0 0 0-3 0v1.16A7 7 0 0 0 5 11v5l-2 2v1h18v-1l-2-2z");
  svg.append(path);
  return svg;
}
