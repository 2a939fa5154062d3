/**
 * Contract test: the OpenAPI document and the service cannot drift. Every operation's documented
 * request examples (bodies, parameters) are sent to a real service, in an order that gives each
 * the state it needs, and every response must have a documented status and a body valid against
 * the schema documented for that status. Then every operation is sent without a token, with an
 * unknown id, with a malformed id and with an unknown body field: each answer must be a
 * documented problem status with a body valid against Problem. Finally every path answers 405
 * (with Allow) to a method it does not route.
 */
import { randomUUID } from 'node:crypto';
import { Ajv } from 'ajv';
import addFormatsModule from 'ajv-formats';
import request from 'supertest';
import type { OpenAPIObject } from '@nestjs/swagger';
import { ADMIN, BACKENDS, startTestService, until } from './support/service.js';
import { openApiDocument, HTTP_METHODS } from '../src/openapi.js';
import { EXAMPLE_IDS } from '../src/api/dto/operations.docs.js';
import { builtinElf } from '../src/runtime/workloads.js';
import { keystoreDomainElf } from '../src/runtime/keystore.js';

const addFormats = addFormatsModule as unknown as (a: Ajv) => Ajv;

interface Op { id: string; method: string; path: string; op: Record<string, any> }

const LOOP_ASM = '.globl _start\n.text\n_start:\n  li t0, 0\n1:\n  addi t0, t0, 1\n  j 1b\n';

describe.each(BACKENDS)('the service honours openapi.yaml on $name', (backend) => {
  let svc: Awaited<ReturnType<typeof startTestService>>;
  let doc: OpenAPIObject;
  let ops: Map<string, Op>;
  let ajv: Ajv;
  let token = '';
  const ids: Record<string, string> = {};
  const created: Record<string, string> = {};
  const seen = new Set<string>();

  beforeAll(async () => {
    svc = await startTestService(backend);
    doc = JSON.parse(JSON.stringify(openApiDocument(svc.app)));
    ops = new Map();
    for (const [path, item] of Object.entries(doc.paths)) {
      for (const method of HTTP_METHODS) {
        const op = (item as Record<string, any>)[method];
        if (op) ops.set(op.operationId, { id: op.operationId, method, path, op });
      }
    }
    ajv = addFormats(new Ajv({ strict: false, allErrors: true }));
    ajv.addSchema({ components: doc.components }, 'doc');
    token = (await request(svc.url).post('/v1/tenants').set('Authorization', `Bearer ${ADMIN}`).send({ name: 'contract' }).expect(201)).body.token;
  }, 300_000); // starting or stopping a service on a busy machine
  afterAll(async () => {
    await svc?.close();
    await svc?.dropSchema();
  }, 300_000); // starting or stopping a service on a busy machine

  const auth = () => ({ Authorization: `Bearer ${token}` });

  /** Checks a response against the operation's documented responses. */
  function check(o: Op, res: request.Response) {
    const documented = o.op.responses[String(res.status)];
    if (!documented) throw new Error(`${o.id} answered ${res.status}, which openapi.yaml does not document (${JSON.stringify(res.body)})`);
    const content = documented.content as Record<string, { schema: object }> | undefined;
    if (!content) {
      expect(res.text ?? '').toBe('');
      return;
    }
    const type = String(res.headers['content-type'] ?? '').split(';')[0];
    expect({ op: o.id, status: res.status, type: Object.keys(content).includes(type) ? 'documented' : type }).toEqual({ op: o.id, status: res.status, type: 'documented' });
    const schema = content[type].schema as { $ref?: string };
    if (!schema.$ref) return;
    const validate = ajv.getSchema(`doc${schema.$ref}`) ?? ajv.compile({ $ref: `doc${schema.$ref}` });
    if (!validate(res.body)) throw new Error(`${o.id} ${res.status}: body does not match ${schema.$ref}: ${ajv.errorsText(validate.errors)}\n${JSON.stringify(res.body).slice(0, 2000)}`);
  }

  /** Replaces the examples' placeholder ids by the ids of real resources. */
  const real = (v: unknown): unknown => {
    let s = JSON.stringify(v);
    for (const [k, placeholder] of Object.entries(EXAMPLE_IDS)) if (ids[k]) s = s.split(placeholder).join(ids[k]);
    return JSON.parse(s);
  };

  function send(o: Op, pathIds: Record<string, string>, opts: { body?: unknown; raw?: Buffer; query?: Record<string, unknown>; headers?: Record<string, string> } = {}) {
    const url = o.path.replace(/\{(\w+)\}/g, (_m, name: string) => encodeURIComponent(pathIds[name] ?? ''));
    let r = (request(svc.url) as any)[o.method](url).set(opts.headers ?? auth());
    if (opts.query) r = r.query(opts.query);
    if (opts.raw) r = r.set('Content-Type', 'application/octet-stream').send(opts.raw);
    else if (opts.body !== undefined) r = r.send(opts.body);
    return r as Promise<request.Response>;
  }

  /**
   * Sends the operation's documented examples (each JSON body example, the octet-stream body,
   * or once with its parameter examples) and checks each answer. Returns the answers.
   */
  async function examples(opId: string, pathIds: Record<string, string> = {}, expectStatus?: number, headers?: Record<string, string>) {
    const o = ops.get(opId);
    if (!o) throw new Error(`no operation ${opId} in openapi.yaml`);
    seen.add(opId);
    const query: Record<string, unknown> = {};
    for (const p of o.op.parameters ?? []) {
      if (p.in === 'query' && p.example !== undefined) query[p.name] = p.example;
      if (p.in === 'path' && pathIds[p.name] === undefined) pathIds[p.name] = String(p.example);
    }
    const bodies = o.op.requestBody?.content ?? {};
    const sends: Array<() => Promise<request.Response>> = [];
    for (const e of Object.values((bodies['application/json']?.examples ?? {}) as Record<string, { value: unknown }>)) {
      sends.push(() => send(o, pathIds, { body: real(e.value), headers }));
    }
    if (bodies['application/octet-stream']) sends.push(() => send(o, pathIds, { raw: Buffer.from(builtinElf('hello')), query, headers }));
    if (sends.length === 0) sends.push(() => send(o, pathIds, { query, headers }));
    const out: request.Response[] = [];
    for (const s of sends) {
      const res = await s();
      check(o, res);
      if (expectStatus !== undefined) expect({ op: opId, status: res.status }).toEqual({ op: opId, status: expectStatus });
      else if (res.status >= 300) throw new Error(`${opId}: a documented example answered ${res.status}: ${JSON.stringify(res.body)}`);
      out.push(res);
    }
    return out;
  }

  const vmState = async () => (await request(svc.url).get(`/v1/vms/${ids.vm}`).set(auth()).expect(200)).body.state as string;
  const waitVm = (state: string) => until(`VM ${state}`, async () => (await vmState()) === state, 200_000);

  test('every documented example answers as documented', async () => {
    const post = (path: string, body: unknown) => request(svc.url).post(path).set(auth()).send(body as object).expect(201).then((r) => r.body.id as string);
    ids.host = await post('/v1/hosts', { name: 'fixture-a', cpus: 2, memoryMiB: 64 });
    ids.destinationHost = await post('/v1/hosts', { name: 'fixture-b', cpus: 2, memoryMiB: 64 });
    ids.image = await post('/v1/images', { name: 'loop', format: 'asm', content: LOOP_ASM });
    ids.vm = await post('/v1/vms', { name: 'fixture-vm', hostId: ids.host, vcpus: 1, memoryMiB: 16, processes: [{ imageId: ids.image }], disks: [{ sizeMiB: 1 }] });
    ids.domainImage = await post('/v1/images', { name: 'keystore-domain', format: 'elf', content: Buffer.from(keystoreDomainElf()).toString('base64') });
    const domainVm = await post('/v1/vms', { name: 'domain-vm', hostId: ids.host, vcpus: 1, memoryMiB: 16, processes: [{ imageId: ids.image }] });
    await examples('DomainsController_add', { id: domainVm });
    await examples('DomainsController_list', { id: domainVm });
    await examples('DomainsController_get', { id: domainVm });
    await examples('DomainsController_remove', { id: domainVm });

    for (const op of ['HealthController_live', 'HealthController_ready']) await examples(op, {}, undefined, {});
    await examples('MetricsController_scrape', {}, undefined, { Authorization: `Bearer ${ADMIN}` });
    await examples('NodesController_list', {}, undefined, { Authorization: `Bearer ${ADMIN}` });
    await examples('TenantsController_create', {}, undefined, { Authorization: `Bearer ${ADMIN}` });
    await examples('TechniquesController_list');
    await examples('TechniquesController_get');

    created.host = (await examples('HostsController_create'))[0].body.id;
    await examples('HostsController_list');
    await examples('HostsController_get', { id: ids.host });
    await examples('HostsController_update', { id: ids.host });

    created.image = (await examples('ImagesController_create'))[0].body.id;
    await examples('ImagesController_list');
    await examples('ImagesController_get', { id: ids.image });
    await examples('ImagesController_content', { id: ids.image });

    created.vm = (await examples('VmsController_create'))[0].body.id;
    await examples('VmsController_list');
    await examples('VmsController_update', { id: created.vm });

    ids.operation = (await examples('VmsController_start', { id: ids.vm }))[0].body.id;
    await waitVm('running');
    await examples('VmsController_pause', { id: ids.vm });
    await waitVm('paused');
    await examples('VmsController_resume', { id: ids.vm });
    await waitVm('running');
    await examples('VmsController_get', { id: ids.vm });
    await examples('VmsController_console', { id: ids.vm });
    await examples('VmsController_counters', { id: ids.vm });
    await examples('VcpusController_interrupt', { id: ids.vm, n: '0' });
    await examples('VmsController_disk', { id: ids.vm, n: '0' });
    await examples('MemoryErrorsController_vmMemory', { id: ids.vm });

    ids.memoryError = (await examples('MemoryErrorsController_inject', { id: ids.host }))[0].body.id;
    await examples('MemoryErrorsController_list', { id: ids.host });
    await examples('MemoryErrorsController_memoryMap', { id: ids.host });
    await examples('MemoryErrorsController_retire', { id: ids.host, errorId: ids.memoryError });

    ids.migration = (await examples('MigrationsController_create', { id: ids.vm }))[0].body.migration.id;
    await until('migration completed', async () => (await request(svc.url).get(`/v1/migrations/${ids.migration}`).set(auth())).body.phase === 'completed', 200_000);
    await examples('MigrationsController_list', { id: ids.vm });
    await examples('MigrationsController_get', { id: ids.migration });
    await examples('MigrationsController_cancel', { id: ids.migration }, 409);

    ids.experiment = (await examples('ExperimentsController_create'))[0].body.id;
    await examples('ExperimentsController_list');
    await examples('ExperimentsController_get', { id: ids.experiment });

    await examples('OperationsController_list');
    await examples('OperationsController_get', { id: ids.operation });
    await examples('OperationsController_cancel', { id: ids.operation }, 409);

    await until('VM running after migration', async () => (await vmState()) === 'running', 200_000);
    await examples('VmsController_stop', { id: ids.vm });
    await waitVm('stopped');
    await examples('VmsController_reset', { id: ids.vm });
    await examples('EventsController_list');

    await examples('VmsController_remove', { id: created.vm });
    await examples('ImagesController_remove', { id: created.image });
    await examples('HostsController_remove', { id: created.host });

    expect([...ops.keys()].filter((k) => !seen.has(k)).sort()).toEqual([]);
  }, 600_000);

  test('errors are documented problem details', async () => {
    const idsFor = (o: Op, value: () => string) => Object.fromEntries((o.op.parameters ?? []).filter((p: any) => p.in === 'path').map((p: any) => [p.name, p.name === 'name' ? 'no-such-technique' : p.name === 'n' ? '0' : value()]));
    for (const o of ops.values()) {
      const hasIds = /\{(id|errorId|name)\}/.test(o.path);
      const sent = (res: request.Response, status: number) => {
        check(o, res);
        expect({ op: o.id, status: res.status }).toEqual({ op: o.id, status });
        expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
      };
      const tenantOp = o.id !== 'TenantsController_create';
      const headers = tenantOp ? auth() : { Authorization: `Bearer ${ADMIN}` };
      if (hasIds) sent(await send(o, idsFor(o, randomUUID), { headers, body: o.op.requestBody ? {} : undefined }), o.op.requestBody && o.method !== 'patch' ? 400 : 404);
      if (/\{(id|errorId)\}/.test(o.path)) sent(await send(o, idsFor(o, () => 'not-a-uuid'), { headers }), 400);
      if (o.op.requestBody?.content?.['application/json']) {
        const pathIds = idsFor(o, () => ids.vm);
        if (o.path.startsWith('/v1/hosts/')) pathIds.id = ids.host;
        sent(await send(o, pathIds, { headers, body: { unexpectedField: 1 } }), 400);
      }
    }
    // Last, as failed authentications are rate-limited per address (20 a minute, then 429 for every request).
    let failures = 0;
    for (const o of ops.values()) {
      if (!(o.op.security ?? []).length) continue;
      const res = await send(o, idsFor(o, randomUUID), { headers: {} });
      check(o, res);
      expect({ op: o.id, status: res.status }).toEqual({ op: o.id, status: ++failures <= 20 ? 401 : 429 });
    }
  }, 600_000);

  test('methods a path does not route answer 405 with Allow', async () => {
    for (const [path, item] of Object.entries(doc.paths)) {
      const routed = HTTP_METHODS.filter((m) => (item as Record<string, unknown>)[m]);
      const other = (['put', 'delete', 'patch', 'post'] as const).find((m) => !routed.includes(m))!;
      const url = path.replace(/\{\w+\}/g, randomUUID());
      const res = await (request(svc.url) as any)[other](url).set(auth());
      expect({ path, method: other, status: res.status }).toEqual({ path, method: other, status: 405 });
      expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(res.headers.allow.split(', ').sort()).toEqual([...routed.map((m) => m.toUpperCase()), ...(routed.includes('get') ? ['HEAD'] : []), 'OPTIONS'].sort());
      const opts = await request(svc.url).options(url);
      expect(opts.status).toBe(204);
    }
  }, 300_000);
});
