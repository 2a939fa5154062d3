/** The dashboard's connection to the service: the typed SDK and one shared events client. */
import { EventsClient, hvsimClient, must, type HvEvent, type HvsimClient, type Schemas } from '../../src/client/index.js';

export { must };
export type { HvEvent, Schemas };

const KEY = 'hvsim.token';
export const getToken = (): string | null => localStorage.getItem(KEY);
export const setToken = (t: string | null) => { if (t) localStorage.setItem(KEY, t); else localStorage.removeItem(KEY); };

let client: HvsimClient | null = null;
export function api(): HvsimClient {
  client ??= hvsimClient({ url: location.origin, token: getToken() ?? '' });
  return client;
}

type Listener = (e: HvEvent) => void;
let events: Promise<EventsClient> | null = null;
const listeners = new Set<Listener>();

/** The shared events client (connected once per page load). */
function hub(): Promise<EventsClient> {
  events ??= EventsClient.connect(location.origin, getToken() ?? '').then((c) => {
    c.onEvent((e) => { for (const l of listeners) l(e); });
    return c;
  });
  return events;
}

/** Subscribes to `subjects` (replaying events after `sinceSeq` when given) and calls `l` for their events; returns the unsubscribe. */
export function listen(subjects: string[], l: Listener, sinceSeq?: number): () => void {
  const wanted = new Set(subjects);
  const f: Listener = (e) => { if (wanted.has(e.subject)) l(e); };
  listeners.add(f);
  void hub().then((c) => c.subscribe(subjects, sinceSeq === undefined ? {} : { sinceSeq }));
  return () => { listeners.delete(f); };
}

export const errorText = (e: unknown) => (e instanceof Error ? e.message : String(e));
