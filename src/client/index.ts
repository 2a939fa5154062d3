/**
 * The typed hvsim SDK: a REST client generated from openapi.yaml (schema.ts, written by
 * `npm run openapi` with openapi-typescript; do not edit it) on openapi-fetch, and a typed
 * Socket.IO events client (events.ts). It imports nothing of the service, so the CLI and the
 * dashboard can load it alone.
 *
 *   const api = hvsimClient({ url: 'http://127.0.0.1:8080', token });
 *   const host = await must(api.POST('/v1/hosts', { body: { name: 'h', cpus: 2, memoryMiB: 64 } }));
 */
import createClient, { type Client } from 'openapi-fetch';
import type { components, paths } from './schema.js';

export type { paths, components, operations } from './schema.js';
export type Schemas = components['schemas'];
export type Problem = Schemas['Problem'];
export type HvsimClient = Client<paths>;

export interface ClientOptions {
  /** The service's base URL, for example http://127.0.0.1:8080. */
  url: string;
  /** A tenant token (or the admin token for POST /v1/tenants). */
  token?: string;
  /** A fetch implementation (default: the global fetch). */
  fetch?: typeof fetch;
}

export function hvsimClient(o: ClientOptions): HvsimClient {
  return createClient<paths>({
    baseUrl: o.url.replace(/\/+$/, ''),
    headers: o.token ? { Authorization: `Bearer ${o.token}` } : {},
    ...(o.fetch ? { fetch: o.fetch } : {}),
  });
}

/** An error answer of the API: its status and RFC 9457 problem details. The message never contains a token. */
export class ApiError extends Error {
  constructor(readonly status: number, readonly problem: Problem) {
    super(`${problem.title ?? 'Error'} (${status}): ${problem.detail ?? ''}`.trim());
  }
}

/**
 * The data of a successful answer; raises ApiError for an error answer (with its problem
 * details, or a synthetic one when the body is not problem+json).
 */
export async function must<T>(p: Promise<{ data?: T; error?: unknown; response: Response }>): Promise<T> {
  const r = await p;
  if (r.response.ok) return r.data as T;
  const e = r.error as Partial<Problem> | string | undefined;
  const problem: Problem = typeof e === 'object' && e && typeof e.status === 'number'
    ? e as Problem
    : { type: 'about:blank', title: r.response.statusText || 'Error', status: r.response.status, detail: typeof e === 'string' ? e : '' };
  throw new ApiError(r.response.status, problem);
}

export { EventsClient, type HvEvent, type Lagged, type SubscribeOptions, type SubscribeResult } from './events.js';
