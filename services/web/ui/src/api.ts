// The generated rp.api.v1 clients over gRPC-Web, to the page's own origin (the `web` edge
// forwards each call to its service). The API key goes in the `authorization` header only.

import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { Attribution } from "./gen/rp/api/v1/attribution_pb";
import { Connections } from "./gen/rp/api/v1/connections_pb";
import { Notifications } from "./gen/rp/api/v1/notifications_pb";
import { Sync } from "./gen/rp/api/v1/sync_pb";
import type { Session } from "./session";

export interface Api {
  session: Session;
  connections: Client<typeof Connections>;
  sync: Client<typeof Sync>;
  attribution: Client<typeof Attribution>;
  notifications: Client<typeof Notifications>;
}

export function api(session: Session): Api {
  const auth: Interceptor = (next) => (req) => {
    req.header.set("authorization", `Bearer ${session.apiKey}`);
    return next(req);
  };
  const transport = createGrpcWebTransport({ baseUrl: location.origin, interceptors: [auth] });
  return {
    session,
    connections: createClient(Connections, transport),
    sync: createClient(Sync, transport),
    attribution: createClient(Attribution, transport),
    notifications: createClient(Notifications, transport),
  };
}

/** The server's own words for a failed call (what the person can act on). */
export function messageOf(e: unknown): string {
  if (e instanceof ConnectError) {
    if (e.code === Code.Unavailable && !e.rawMessage) return "The service is unavailable; please retry shortly.";
    return e.rawMessage || e.message;
  }
  return e instanceof Error ? e.message : String(e);
}

export function isAuthError(e: unknown): boolean {
  return e instanceof ConnectError && (e.code === Code.Unauthenticated || e.code === Code.PermissionDenied);
}

export function isAbort(e: unknown): boolean {
  return e instanceof ConnectError && e.code === Code.Canceled;
}

/**
 * Keeps a server stream open: `open(signal)` is iterated; when it ends (a server restart) or
 * fails, it is opened again after a short backoff, until `signal` aborts. `onState` says whether
 * it is live, for the page to show.
 */
export async function keepStreaming(
  signal: AbortSignal,
  open: (signal: AbortSignal) => Promise<void>,
  onState: (live: boolean, error?: unknown) => void,
): Promise<void> {
  let delay = 500;
  while (!signal.aborted) {
    const started = Date.now();
    try {
      await open(signal);
      onState(false);
    } catch (e) {
      if (signal.aborted || isAbort(e)) return;
      onState(false, e);
      if (isAuthError(e)) return;
    }
    if (Date.now() - started > 10_000) delay = 500;
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 10_000);
  }
}
