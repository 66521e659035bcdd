// Who is signed in: the workspace id and its API key, kept in this tab's sessionStorage only
// (never in a URL, never in localStorage or a cookie). Closing the tab forgets them.

export interface Session {
  workspaceId: string;
  apiKey: string;
}

const WS = "rp.workspace_id";
const KEY = "rp.api_key";

export function load(): Session | null {
  const workspaceId = sessionStorage.getItem(WS);
  const apiKey = sessionStorage.getItem(KEY);
  return workspaceId && apiKey ? { workspaceId, apiKey } : null;
}

export function save(s: Session): void {
  sessionStorage.setItem(WS, s.workspaceId.trim());
  sessionStorage.setItem(KEY, s.apiKey.trim());
}

export function clear(): void {
  sessionStorage.removeItem(WS);
  sessionStorage.removeItem(KEY);
}

/** `make run`'s demo workspace, handed over by the page's own server in a POST's body. */
export async function demo(): Promise<Session> {
  const res = await fetch("/demo/session", { method: "POST", cache: "no-store" });
  if (!res.ok) throw new Error((await res.text()).trim() || `no demo workspace (${res.status})`);
  const body = (await res.json()) as { workspace_id: string; api_key: string };
  return { workspaceId: body.workspace_id, apiKey: body.api_key };
}
