/**
 * Technique 7 over REST: /v1/vms/{id}/domains (before start; 409 after), the key-store domain and
 * its client running in a VM, the counters, the memory listing (no page of a domain), a gate
 * violation reported as an event, and the problems bad definitions get.
 */
import { readFileSync } from 'node:fs';
import { BACKENDS, until, useTenantSession } from './support/service.js';

interface Ev { type: string; subject: string; data: Record<string, unknown> }

const src = (path: string) => readFileSync(new URL(`../${path}`, import.meta.url), 'utf8');
const DOMAIN_ASM = src('workloads/domains/keystore.s');
const CLIENT_ASM = src('workloads/domains/keystore-client.s') + '\n' + src('workloads/lib.s');
const ATTACKER_ASM = '.globl _start\n.text\n_start:\n  li t0, 5\n  dgate t0\n  li a0, 0\n  li a7, 94\n  ecall\n';
const WINDOW = [0x4000_0000, 0x4100_0000];

describe.each(BACKENDS)('protection domains on $name', (backend) => {
  const session = useTenantSession(backend, 'domains');
  const api = () => session.api();
  const image = async (name: string, content: string) => (await api().post('/v1/images').set(session.auth).send({ name, format: 'asm', content }).expect((r) => { if (r.status !== 201 && r.status !== 200) throw new Error(`${r.status} ${JSON.stringify(r.body)}`); })).body.id as string;
  const vmState = async (id: string) => (await api().get(`/v1/vms/${id}`).set(session.auth).expect(200)).body;

  test('domains are part of the definition until start; the key-store client runs; counters, memory listing and events show the technique', async () => {
    const auth = session.auth;
    const host = (await api().post('/v1/hosts').set(auth).send({ name: 'h-pd', cpus: 1, memoryMiB: 64 }).expect(201)).body;
    const domainImg = await image('keystore-domain', DOMAIN_ASM);
    const clientImg = await image('keystore-client', CLIENT_ASM);
    const vm = (await api().post('/v1/vms').set(auth).send({ name: 'pd', hostId: host.id, vcpus: 1, memoryMiB: 16, processes: [{ imageId: clientImg, argv: ['keystore-client', '3000'] }] }).expect(201)).body;
    const def = { name: 'keystore', imageId: domainImg, entryPoints: ['ks_seal', 'ks_unseal', 'ks_sign'], memoryKiB: 64 };

    // Bad definitions: a problem each, nothing stored.
    const bad = async (body: object, status: number, detail: RegExp) => {
      const r = await api().post(`/v1/vms/${vm.id}/domains`).set(auth).send(body).expect(status);
      expect(r.headers['content-type']).toMatch(/problem\+json/);
      expect(r.body.detail ?? JSON.stringify(r.body)).toMatch(detail);
    };
    await bad({ ...def, entryPoints: ['nope'] }, 422, /no entry symbol nope/);
    await bad({ ...def, memoryKiB: 16 }, 400, /memoryKiB/);
    await bad({ ...def, imageId: '00000000-0000-4000-8000-000000000000' }, 422, /unknown image/);
    expect((await api().get(`/v1/vms/${vm.id}/domains`).set(auth).expect(200)).body).toEqual([]);

    const added = (await api().post(`/v1/vms/${vm.id}/domains`).set(auth).send(def).expect(201)).body;
    expect(added).toMatchObject({ name: 'keystore', memoryKiB: 64, gates: [{ entryPoint: 'ks_seal', gate: 0 }, { entryPoint: 'ks_unseal', gate: 1 }, { entryPoint: 'ks_sign', gate: 2 }] });
    await bad(def, 409, /already has a protection domain keystore/);
    expect((await api().get(`/v1/vms/${vm.id}/domains/keystore`).set(auth).expect(200)).body).toEqual(added);
    await api().get(`/v1/vms/${vm.id}/domains/other`).set(auth).expect(404);
    await api().delete(`/v1/vms/${vm.id}/domains/keystore`).set(auth).expect(204);
    await api().post(`/v1/vms/${vm.id}/domains`).set(auth).send(def).expect(201);

    await api().post(`/v1/vms/${vm.id}/start`).set(auth).expect(202);
    await until('running', async () => (await vmState(vm.id)).state === 'running');
    await bad({ ...def, name: 'late' }, 409, /before the VM starts/);
    await api().delete(`/v1/vms/${vm.id}/domains/keystore`).set(auth).expect(409);
    // Its domain's memory never leaves the host: a migration is refused before it starts.
    const other = (await api().post('/v1/hosts').set(auth).send({ name: 'h-pd-dest', cpus: 1, memoryMiB: 64 }).expect(201)).body;
    const refused = await api().post(`/v1/vms/${vm.id}/migrations`).set(auth).send({ destinationHostId: other.id, mode: 'precopy' }).expect(409);
    expect(refused.body).toMatchObject({ detail: expect.stringMatching(/protection domain/), domains: ['keystore'] });
    // The memory listing never shows a page of the domain's window.
    const pages: Array<{ guestPhysicalAddress: number }> = [];
    for (let token: string | null = ''; token !== null;) {
      const page: { items: Array<{ guestPhysicalAddress: number }>; nextPageToken?: string } = (await api().get(`/v1/vms/${vm.id}/memory?pageSize=100${token ? `&pageToken=${token}` : ''}`).set(auth).expect(200)).body;
      pages.push(...page.items);
      token = page.nextPageToken ?? null;
    }
    expect(pages.length).toBeGreaterThan(0);
    expect(pages.filter((p) => p.guestPhysicalAddress >= WINDOW[0] && p.guestPhysicalAddress < WINDOW[1])).toEqual([]);
    const final = await until('the VM to stop', async () => { const v = await vmState(vm.id); return v.state === 'stopped' ? v : undefined; }, 120_000);
    expect(final.run.processes[0]).toMatchObject({ status: 0 });
    const out = (await api().get(`/v1/vms/${vm.id}/console`).set(auth).expect(200)).body.stdout as string;
    expect(out).toMatch(/^keystore: rounds ok, tamper refused; rounds 00000bb8\nkeystore: digest [0-9a-f]{8}\n$/);
    const counters = (await api().get(`/v1/vms/${vm.id}/counters`).set(auth).expect(200)).body;
    expect(counters.protectionDomains).toMatchObject({ domains: 1, gates: 3, switches: { gate: (3000 * 4 + 2) * 2, exit: 0 }, cyclesPerSwitch: 150, blockedAccesses: 0 });
    const ev = (await api().get(`/v1/events?subject=vm:${vm.id}&limit=1000`).set(auth).expect(200)).body.items as Ev[];
    expect(ev.filter((e) => e.type === 'vm.domain-added')).toHaveLength(2);
    expect(ev.filter((e) => e.type === 'vm.domain-removed')).toHaveLength(1);
  }, 180_000);

  test('a gate violation kills the attacker (SIGILL) and is reported as an event', async () => {
    const auth = session.auth;
    const host = (await api().post('/v1/hosts').set(auth).send({ name: 'h-pd2', cpus: 1, memoryMiB: 64 }).expect(201)).body;
    const domainImg = await image('keystore-domain', DOMAIN_ASM);
    const attacker = await image('gate-attacker', ATTACKER_ASM);
    const vm = (await api().post('/v1/vms').set(auth).send({ name: 'pd-attack', hostId: host.id, vcpus: 1, memoryMiB: 16, processes: [{ imageId: attacker }], techniques: { protectionDomains: { fastGate: false } } }).expect(201)).body;
    await api().post(`/v1/vms/${vm.id}/domains`).set(auth).send({ name: 'keystore', imageId: domainImg, entryPoints: ['ks_seal'], memoryKiB: 64 }).expect(201);
    await api().post(`/v1/vms/${vm.id}/start`).set(auth).expect(202);
    const final = await until('the VM to stop', async () => { const v = await vmState(vm.id); return v.state === 'stopped' ? v : undefined; }, 60_000);
    expect(final.run.processes[0]).toMatchObject({ signal: 4, status: 132 });
    const ev = await until('the violation event', async () => {
      const items = (await api().get(`/v1/events?subject=vm:${vm.id}&limit=1000`).set(auth).expect(200)).body.items as Ev[];
      return items.find((e) => e.type === 'vm.domain-gate-violation');
    });
    expect(ev.data).toMatchObject({ kind: 'gate-violation', source: 'guest-user', detail: 'gate 5 is not registered', virtualTimeNs: expect.any(Number) });
  }, 120_000);

  test('an experiment over REST: exit-based vs fast-gate switches on the key-store client, same output, fewer cycles', async () => {
    const auth = session.auth;
    const client = (await api().post('/v1/images?name=keystore-client-elf').set(auth).set('Content-Type', 'application/octet-stream').send(readFileSync(new URL('../workloads/bin/keystore-client.elf', import.meta.url))).expect((r) => { if (r.status !== 201 && r.status !== 200) throw new Error(String(r.status)); })).body.id;
    await api().post('/v1/experiments').set(auth).send({ workload: { imageId: client, domains: [{ name: 'x' }] }, variants: [{ name: 'a', techniques: {} }] }).expect(400);
    const r = await api().post('/v1/experiments').set(auth).send({
      workload: { imageId: client, argv: ['keystore-client', '200'], domains: [{ builtin: 'keystore' }] },
      variants: [{ name: 'exit', techniques: { protectionDomains: { fastGate: false } } }, { name: 'gate', techniques: { protectionDomains: { fastGate: true } } }],
    }).expect(202);
    const exp = await until('the experiment', async () => {
      const e = (await api().get(`/v1/experiments/${r.body.id}`).set(auth).expect(200)).body;
      return e.state === 'succeeded' || e.state === 'failed' ? e : undefined;
    }, 120_000);
    expect(exp.state).toBe('succeeded');
    const [exit, gate] = exp.result.variants;
    expect(exit.statuses).toEqual([0]);
    expect(gate.diverged).toBe(false);
    expect(exit.counters.protectionDomains.switches).toEqual({ gate: 0, exit: (200 * 4 + 2) * 2 });
    expect(gate.counters.protectionDomains.switches).toEqual({ gate: (200 * 4 + 2) * 2, exit: 0 });
    expect(gate.ratios.cycles).toBeLessThan(1);
  }, 180_000);

  test('a VM with more than one vCPU cannot have domains (409)', async () => {
    const auth = session.auth;
    const host = (await api().post('/v1/hosts').set(auth).send({ name: 'h-pd3', cpus: 2, memoryMiB: 64 }).expect(201)).body;
    const domainImg = await image('keystore-domain', DOMAIN_ASM);
    const vm = (await api().post('/v1/vms').set(auth).send({ name: 'pd-2', hostId: host.id, vcpus: 2, memoryMiB: 16, processes: [{ imageId: domainImg }] }).expect(201)).body;
    await api().post(`/v1/vms/${vm.id}/domains`).set(auth).send({ name: 'k', imageId: domainImg, entryPoints: ['ks_seal'], memoryKiB: 64 }).expect(409);
  }, 60_000);
});
