// The dashboard: the numbers of one lookback window under one model, with the as-of time.
// Reloaded whenever a sync completes (an integration's last successful sync moves).

import { AttributionModel, type Dashboard, type MetricTotal } from "./gen/rp/api/v1/attribution_pb";
import { messageOf, type Api } from "./api";
import { h, replace } from "./dom";
import { money, when } from "./format";

/** One line per currency: amounts in different currencies are never added together. */
function amounts(m: MetricTotal | undefined): HTMLElement[] {
  const list = m?.amounts ?? [];
  if (list.length === 0) return [h("span", { class: "amount" }, "0")];
  return list.map((a) => h("span", { class: "amount" }, money([a])));
}

const MODELS: [AttributionModel, string][] = [
  [AttributionModel.LINEAR, "Linear"],
  [AttributionModel.FIRST_TOUCH, "First touch"],
  [AttributionModel.LAST_TOUCH, "Last touch"],
  [AttributionModel.TIME_DECAY, "Time decay"],
  [AttributionModel.U_SHAPED, "U-shaped"],
];

export class DashboardPage {
  readonly root: HTMLElement;
  private body: HTMLElement;
  private window: HTMLSelectElement;
  private model: HTMLSelectElement;
  private windows: number[] = [30];
  private loading = 0;

  constructor(private api: Api) {
    this.window = h("select", { id: "window", "data-field": "window" }, h("option", { value: "30" }, "30 days"));
    this.model = h("select", { id: "model", "data-field": "model" }, ...MODELS.map(([m, name]) => h("option", { value: String(m) }, name)));
    this.window.addEventListener("change", () => void this.load());
    this.model.addEventListener("change", () => void this.load());
    this.body = h("div", { "aria-live": "polite", "data-field": "dashboard" }, h("p", {}, "Loading…"));
    this.root = h(
      "section",
      { "aria-labelledby": "page-title" },
      h("h1", { id: "page-title", tabindex: -1 }, "Dashboard"),
      h(
        "form",
        { class: "controls", onsubmit: (e: Event) => e.preventDefault() },
        h("div", { class: "field" }, h("label", { for: "window" }, "Lookback window"), this.window),
        h("div", { class: "field" }, h("label", { for: "model" }, "Attribution model"), this.model),
      ),
      this.body,
    );
  }

  async load(): Promise<void> {
    const n = ++this.loading;
    try {
      const d = await this.api.attribution.getDashboard({
        workspaceId: this.api.session.workspaceId,
        windowDays: Number(this.window.value),
        model: Number(this.model.value) as AttributionModel,
      });
      if (n !== this.loading) return;
      this.setWindows(d.windows);
      this.render(d);
    } catch (e) {
      if (n !== this.loading) return;
      replace(this.body, h("p", { class: "banner bad", role: "alert", "data-field": "dashboard-error" }, messageOf(e)));
    }
  }

  private setWindows(ws: number[]): void {
    if (ws.length === 0 || ws.join() === this.windows.join()) return;
    const chosen = this.window.value;
    this.windows = ws;
    this.window.replaceChildren(...ws.map((w) => h("option", { value: String(w) }, `${w} days`)));
    this.window.value = ws.map(String).includes(chosen) ? chosen : String(ws[0]);
  }

  private render(d: Dashboard): void {
    const metric = (label: string, key: string, m: MetricTotal | undefined) =>
      h("div", { class: "tile", "data-metric": key }, h("h2", {}, label), h("p", { class: "number" }, ...amounts(m)), h("p", { class: "sub" }, `${m?.deals ?? 0} deals`));
    const c = d.companies;
    replace(
      this.body,
      h("p", { class: "asof", "data-field": "as-of" }, `As of ${when(d.asOf)} (the sync that completed then; version ${d.version})`),
      h(
        "div",
        { class: "tiles" },
        metric("Influenced pipeline", "influenced-pipeline", d.influencedPipeline),
        metric("Influenced revenue", "influenced-revenue", d.influencedRevenue),
        metric("Sourced pipeline", "sourced-pipeline", d.sourcedPipeline),
        metric("Sourced revenue", "sourced-revenue", d.sourcedRevenue),
        h("div", { class: "tile", "data-metric": "engaged-companies" }, h("h2", {}, "Engaged companies"), h("p", { class: "number" }, String(c?.engagedCompanies ?? 0)), h("p", { class: "sub" }, `${c?.matchedCompanies ?? 0} matched to ${c?.matchedAccounts ?? 0} CRM accounts (${Math.round((c?.matchRate ?? 0) * 100)}%)`)),
        h("div", { class: "tile", "data-metric": "deals" }, h("h2", {}, "Deals"), h("p", { class: "number" }, String(d.dealCounts?.total ?? 0)), h("p", { class: "sub" }, `${d.dealCounts?.open ?? 0} open, ${d.dealCounts?.won ?? 0} won, ${d.dealCounts?.lost ?? 0} lost`)),
      ),
    );
  }
}
