import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Provider as EventProvider, SyncStep } from "./gen/rp/events/v1/events_pb";
import { Provider } from "./gen/rp/api/v1/connections_pb";

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

/** A time in the browser's zone; "never" when unset. */
export function when(ts: Timestamp | undefined, none = "never"): string {
  return ts ? dateTime.format(timestampDate(ts)) : none;
}

/** A time in `zone` (the schedule's), with the zone's name. */
export function whenIn(ts: Timestamp | undefined, zone: string, none: string): string {
  if (!ts) return none;
  try {
    const f = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short", timeZone: zone || "UTC" });
    return `${f.format(timestampDate(ts))} (${zone || "UTC"})`;
  } catch {
    return when(ts, none);
  }
}

export function providerName(p: EventProvider | Provider): string {
  switch (p) {
    case EventProvider.LINKEDIN:
      return "LinkedIn";
    case EventProvider.HUBSPOT:
      return "HubSpot";
    case EventProvider.SALESFORCE:
      return "Salesforce";
    default:
      return "Unknown provider";
  }
}

export function stepName(s: SyncStep): string {
  switch (s) {
    case SyncStep.LINKEDIN_PULL:
      return "Pulling LinkedIn engagement";
    case SyncStep.COMPANY_RESOLUTION:
      return "Resolving companies";
    case SyncStep.CRM_PULL:
      return "Pulling CRM records";
    case SyncStep.MATCHING:
      return "Matching companies to CRM accounts";
    case SyncStep.ATTRIBUTION:
      return "Updating attribution";
    default:
      return "Starting";
  }
}

/** "failed: provider_outage" → "Failed (provider outage)". */
export function outcome(o: string): string {
  if (!o) return "";
  const [state, kind] = o.split(":").map((s) => s.trim());
  const head = state.charAt(0).toUpperCase() + state.slice(1);
  return kind ? `${head} (${kind.replace(/_/g, " ")})` : head;
}

export function money(amounts: { currency: string; amount: string }[]): string {
  if (amounts.length === 0) return "0";
  return amounts.map((a) => `${a.amount}${a.currency ? " " + a.currency : ""}`).join(" + ");
}
