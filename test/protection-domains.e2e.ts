/**
 * Technique 7 over REST: /v1/vms/{id}/domains (before start; 409 after), the key-store domain and
 * its client running in a VM, the counters, the memory listing (no page of a domain), a gate
 * violation reported as an event, and the problems bad definitions get.
 */
import { readFileSync } from 'node:fs';
import { BACKENDS, until, useTenantSession } from './support/service.js';
import { answered, consoleOf, refused, sdk } from './support/sdk.js';

interface Ev { type: string; subject: string; data: Record<string, unknown> }

const src = (path: string) => readFileSync(new URL(`../${path}`, import.meta.url), 'utf8');
const DOMAIN_ASM = src('workloads/domains/keystore.s');
const CLIENT_ASM = src('workloads/domains/keystore-client.s') + '\n' + src('workloads/lib.s');
const ATTACKER_ASM = '.globl _start\n.text\n_start:\n  li t0, 5\n  dgate t0\n  li a0, 0\n  li a7, 94\n  ecall\n';
const WINDOW = [0x4000_0000, 0x4100_0000];

describe.each(BACKENDS)('protection domains on $name', (backend) => {
  const session = useTenantSession(backend, 'domains');
  /** The typed SDK as the session's tenant. */
  const T = () => sdk(session.svc.url, session.token);
  const image = async (name: string, content: string, format: 'asm' | 'elf' = 'asm') => {
    const r = await T().POST('/v1/images', { body: { name, format, content } });
    if (r.response.status !== 201 && r.response.status !== 200) throw new Error(`${r.response.status} ${JSON.stringify(r.error)}`);
    return r.data!.id;
  };
  const vmPath = (id: string) => ({ params: { path: { id } } });
  const vmState = async (id: string) => answered(T().GET('/v1/vms/{id}', vmPath(id)), 200);
  const vmEvents = async (id: string) => (await answered(T().GET('/v1/events', { params: { query: { subject: `vm:${id}`, limit: 1000 } } }), 200)).items as Ev[];

  test('domains are part of the definition until start; the key-store client runs; counters, memory listing and events show the technique', async () => {
    const host = await answered(T().POST('/v1/hosts', { body: { name: 'h-pd', cpus: 1, memoryMiB: 64 } }), 201);
    const domainImg = await image('keystore-domain', DOMAIN_ASM);
    const clientImg = await image('keystore-client', CLIENT_ASM);
    const vm = await answered(T().POST('/v1/vms', { body: { name: 'pd', hostId: host.id, vcpus: 1, memoryMiB: 16, processes: [{ imageId: clientImg, argv: ['keystore-client', '3000'] }] } }), 201);
    const path = vmPath(vm.id);
    const domain = (name: string) => ({ params: { path: { id: vm.id, name } } });
    const def = { name: 'keystore', imageId: domainImg, entryPoints: ['ks_seal', 'ks_unseal', 'ks_sign'], memoryKiB: 64 };

    // Bad definitions: a problem each, nothing stored.
    const bad = async (body: typeof def, status: number, detail: RegExp) => {
      const r = await refused(T().POST('/v1/vms/{id}/domains', { ...path, body }), status);
      expect(r.detail ?? JSON.stringify(r)).toMatch(detail);
    };
    await bad({ ...def, entryPoints: ['nope'] }, 422, /no entry symbol nope/);
    await bad({ ...def, memoryKiB: 16 }, 400, /memoryKiB/);
    await bad({ ...def, imageId: '00000000-0000-4000-8000-000000000000' }, 422, /unknown image/);
    expect(await answered(T().GET('/v1/vms/{id}/domains', path), 200)).toEqual([]);

    const added = await answered(T().POST('/v1/vms/{id}/domains', { ...path, body: def }), 201);
    expect(added).toMatchObject({ name: 'keystore', memoryKiB: 64, gates: [{ entryPoint: 'ks_seal', gate: 0 }, { entryPoint: 'ks_unseal', gate: 1 }, { entryPoint: 'ks_sign', gate: 2 }] });
    await bad(def, 409, /already has a protection domain keystore/);
    expect(await answered(T().GET('/v1/vms/{id}/domains/{name}', domain('keystore')), 200)).toEqual(added);
    await refused(T().GET('/v1/vms/{id}/domains/{name}', domain('other')), 404);
    await answered(T().DELETE('/v1/vms/{id}/domains/{name}', domain('keystore')), 204);
    await answered(T().POST('/v1/vms/{id}/domains', { ...path, body: def }), 201);

    await answered(T().POST('/v1/vms/{id}/start', path), 202);
    await until('running', async () => (await vmState(vm.id)).state === 'running');
    await bad({ ...def, name: 'late' }, 409, /before the VM starts/);
    await refused(T().DELETE('/v1/vms/{id}/domains/{name}', domain('keystore')), 409);
    // Its domain's memory never leaves the host: a migration is refused before it starts.
    const other = await answered(T().POST('/v1/hosts', { body: { name: 'h-pd-dest', cpus: 1, memoryMiB: 64 } }), 201);
    const migration = await refused(T().POST('/v1/vms/{id}/migrations', { ...path, body: { destinationHostId: other.id, mode: 'precopy' } }), 409);
    expect(migration).toMatchObject({ detail: expect.stringMatching(/protection domain/), domains: ['keystore'] });
    // The memory listing never shows a page of the domain's window.
    const pages: Array<{ guestPhysicalAddress: number }> = [];
    for (let token: string | null = ''; token !== null;) {
      const page: { items: Array<{ guestPhysicalAddress: number }>; nextPageToken?: string } = await answered(T().GET('/v1/vms/{id}/memory', { ...path, params: { ...path.params, query: { pageSize: 100, ...(token ? { pageToken: token } : {}) } } }), 200);
      pages.push(...page.items);
      token = page.nextPageToken ?? null;
    }
    expect(pages.length).toBeGreaterThan(0);
    expect(pages.filter((p) => p.guestPhysicalAddress >= WINDOW[0] && p.guestPhysicalAddress < WINDOW[1])).toEqual([]);
    const final = await until('the VM to stop', async () => { const v = await vmState(vm.id); return v.state === 'stopped' ? v : undefined; }, 300_000);
    expect(final.run?.processes?.[0]).toMatchObject({ status: 0 });
    const out = (await consoleOf(T(), vm.id)).stdout;
    expect(out).toMatch(/^keystore: rounds ok, tamper refused; rounds 00000bb8\nkeystore: digest [0-9a-f]{8}\n$/);
    const counters = await answered(T().GET('/v1/vms/{id}/counters', path), 200);
    expect(counters.protectionDomains).toMatchObject({ domains: 1, gates: 3, switches: { gate: (3000 * 4 + 2) * 2, exit: 0 }, cyclesPerSwitch: 150, blockedAccesses: 0 });
    const ev = await vmEvents(vm.id);
    expect(ev.filter((e) => e.type === 'vm.domain-added')).toHaveLength(2);
    expect(ev.filter((e) => e.type === 'vm.domain-removed')).toHaveLength(1);
  }, 600_000);

  test('a gate violation kills the attacker (SIGILL) and is reported as an event', async () => {
    const host = await answered(T().POST('/v1/hosts', { body: { name: 'h-pd2', cpus: 1, memoryMiB: 64 } }), 201);
    const domainImg = await image('keystore-domain', DOMAIN_ASM);
    const attacker = await image('gate-attacker', ATTACKER_ASM);
    const vm = await answered(T().POST('/v1/vms', { body: { name: 'pd-attack', hostId: host.id, vcpus: 1, memoryMiB: 16, processes: [{ imageId: attacker }], techniques: { protectionDomains: { fastGate: false } } } }), 201);
    const path = vmPath(vm.id);
    await answered(T().POST('/v1/vms/{id}/domains', { ...path, body: { name: 'keystore', imageId: domainImg, entryPoints: ['ks_seal'], memoryKiB: 64 } }), 201);
    await answered(T().POST('/v1/vms/{id}/start', path), 202);
    const final = await until('the VM to stop', async () => { const v = await vmState(vm.id); return v.state === 'stopped' ? v : undefined; }, 300_000);
    expect(final.run?.processes?.[0]).toMatchObject({ signal: 4, status: 132 });
    const ev = await until('the violation event', async () => (await vmEvents(vm.id)).find((e) => e.type === 'vm.domain-gate-violation'));
    expect(ev.data).toMatchObject({ kind: 'gate-violation', source: 'guest-user', detail: 'gate 5 is not registered', virtualTimeNs: expect.any(Number) });
  }, 600_000);

  test('an experiment over REST: exit-based vs fast-gate switches on the key-store client, same output, fewer cycles', async () => {
    const client = await image('keystore-client-elf', readFileSync(new URL('../workloads/bin/keystore-client.elf', import.meta.url)).toString('base64'), 'elf');
    await refused(T().POST('/v1/experiments', { body: { workload: { imageId: client, domains: [{ name: 'x' }] }, variants: [{ name: 'a', techniques: {} }] } }), 400);
    const r = await answered(T().POST('/v1/experiments', { body: {
      workload: { imageId: client, argv: ['keystore-client', '200'], domains: [{ builtin: 'keystore' }] },
      variants: [{ name: 'exit', techniques: { protectionDomains: { fastGate: false } } }, { name: 'gate', techniques: { protectionDomains: { fastGate: true } } }],
    } }), 202);
    const exp = await until('the experiment', async () => {
      const e = await answered(T().GET('/v1/experiments/{id}', vmPath(r.id)), 200);
      return e.state === 'succeeded' || e.state === 'failed' ? e : undefined;
    }, 600_000);
    expect(exp.state).toBe('succeeded');
    // The result's shape is documented in prose only (`[key: string]: unknown` in the OpenAPI document).
    const [exit, gate] = (exp.result as { variants: Array<Record<string, any>> }).variants;
    expect(exit.statuses).toEqual([0]);
    expect(gate.diverged).toBe(false);
    expect(exit.counters.protectionDomains.switches).toEqual({ gate: 0, exit: (200 * 4 + 2) * 2 });
    expect(gate.counters.protectionDomains.switches).toEqual({ gate: (200 * 4 + 2) * 2, exit: 0 });
    expect(gate.ratios.cycles).toBeLessThan(1);
  }, 600_000);

  test('a VM with more than one vCPU cannot have domains (409)', async () => {
    const host = await answered(T().POST('/v1/hosts', { body: { name: 'h-pd3', cpus: 2, memoryMiB: 64 } }), 201);
    const domainImg = await image('keystore-domain', DOMAIN_ASM);
    const vm = await answered(T().POST('/v1/vms', { body: { name: 'pd-2', hostId: host.id, vcpus: 2, memoryMiB: 16, processes: [{ imageId: domainImg }] } }), 201);
    await refused(T().POST('/v1/vms/{id}/domains', { ...vmPath(vm.id), body: { name: 'k', imageId: domainImg, entryPoints: ['ks_seal'], memoryKiB: 64 } }), 409);
  }, 600_000);
});
