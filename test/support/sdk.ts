/**
 * The typed SDK (src/client) as the e2e suites use it: a client per token, and `refused` for a
 * call that must fail with a given status (it returns the problem details to check further).
 * Suites about HTTP itself (headers, content types, body limits, methods, raw malformed input)
 * use supertest instead: the SDK cannot send what its types forbid.
 */
import { hvsimClient, type HvsimClient, type Problem, type Schemas } from '../../src/client/index.js';

export { must } from '../../src/client/index.js';

export function sdk(url: string, token: string): HvsimClient {
  return hvsimClient({ url, token });
}

/** Awaits an SDK call, expects `status`, returns its problem details. */
export async function refused(p: Promise<{ error?: unknown; response: Response }>, status: number): Promise<Problem> {
  const r = await p;
  expect({ status: r.response.status, type: r.response.headers.get('content-type') }).toEqual({ status, type: expect.stringContaining('application/problem+json') });
  return r.error as Problem;
}

/** Awaits an SDK call, expects exactly `status` (a success code such as 201 or 202), returns its data. */
export async function answered<T>(p: Promise<{ data?: T; error?: unknown; response: Response }>, status: number): Promise<T> {
  const r = await p;
  expect({ status: r.response.status, error: r.error }).toEqual({ status, error: undefined });
  return r.data as T;
}

/** A VM's console as JSON (200 expected): the route's type is a union with its raw-bytes form (format=raw), which this never asks for. */
export async function consoleOf(api: HvsimClient, id: string): Promise<Schemas['Console']> {
  return await answered(api.GET('/v1/vms/{id}/console', { params: { path: { id } } }), 200) as Schemas['Console'];
}
