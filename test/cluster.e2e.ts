/**
 * Cluster mode against the machine's Postgres: three nodes (`node dist/main.js` child processes on
 * loopback ports, HVSIM_CLUSTER=on) sharing one database, in a schema of this run's own. Hosts
 * spread over the nodes; a client on node A sees the events of a VM on node C; a VM started
 * through node B runs on its host's owner; a live migration between hosts of different nodes
 * completes with the undisturbed run's output; `kill -9` of the leader: its hosts are taken over,
 * its VMs are reported crashed (node-lost) with events, the leader moves, nothing else is lost
 * and the cluster keeps serving; a node stalled past the timeout gives its host up when it wakes. Waits poll with generous timeouts; nothing asserts a duration.
 *
 * Needs TEST_DATABASE_URL (.ci/run sets it) and `npm run build` (it runs dist/).
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import pg from 'pg';
import request from 'supertest';
import { io, Socket } from 'socket.io-client';
import { alive, listeningUrl, pollFor, spawnCaptured, Spawned } from './support/child.js';
import { builtinElf } from '../src/runtime/workloads.js';
import { HostMemory } from '../src/hypervisor/host-memory.js';
import { DEFAULT_SPEC, Vm } from '../src/runtime/vm.js';

const DB = process.env.TEST_DATABASE_URL;
const ADMIN = `cluster-admin-${randomBytes(8).toString('hex')}`;
const SCHEMA = `c_${randomBytes(6).toString('hex')}`;
const WAIT = 240_000;
const NAMES = ['a', 'b', 'c'] as const;

interface Ev { seq: number; type: string; subject: string; data: Record<string, unknown> }
interface NodesView { leader: string | null; nodes: Array<{ id: string; alive: boolean; leader: boolean; hosts: Array<{ id: string; locked: boolean }> }> }

if (!DB) {
  console.warn('test/cluster.e2e.ts skipped: TEST_DATABASE_URL is not set (cluster mode needs a real Postgres server)');
}
const maybe = DB && existsSync('dist/main.js') ? describe : describe.skip;

/** stdout of an undisturbed run of `argv` processes of builtin `image`, lines sorted. */
function reference(image: string, argvs: string[][]): string[] {
  const vm = new Vm({ ...DEFAULT_SPEC, memoryMiB: 32, processes: argvs.map((argv) => ({ name: image, elf: builtinElf(image), argv, env: [], stdin: new Uint8Array() })) }, HostMemory.create(64), 1);
  let out = '';
  vm.onConsole((_p, b) => { out += Buffer.from(b).toString(); });
  vm.runToCompletion();
  return out.split('\n').filter(Boolean).sort();
}

maybe('cluster mode: three nodes on one Postgres', () => {
  const nodes = new Map<string, { proc: Spawned; url: string }>();
  const sockets: Socket[] = [];
  let token = '';
  let auth: Record<string, string> = {};
  const api = (n: string) => request(nodes.get(n)!.url);
  const admin = { Authorization: `Bearer ${ADMIN}` };
  const hostOf = new Map<string, string>(); // node -> host id
  let images: Record<string, string> = {};

  function start(n: string): Spawned {
    return spawnCaptured(process.execPath, ['dist/main.js'], {
      env: {
        ...process.env, DATABASE_URL: DB!, HVSIM_DB_SCHEMA: SCHEMA, HVSIM_CLUSTER: 'on', HVSIM_NODE_ID: `node-${n}`, HVSIM_ADMIN_TOKEN: ADMIN,
        HOST: '127.0.0.1', PORT: '0', HVSIM_HEARTBEAT_MS: '1000', HVSIM_NODE_TIMEOUT_MS: '6000', HVSIM_NODE_CAPACITY_MIB: '1024', HVSIM_LOG_LEVEL: 'warn',
      },
    });
  }
  const view = async (n: string): Promise<NodesView> => (await api(n).get('/v1/nodes').set(admin).expect(200)).body;
  const connect = (n: string) => new Promise<Socket>((resolve, reject) => {
    const s = io(`${nodes.get(n)!.url}/events`, { auth: { token }, transports: ['websocket'], reconnection: false });
    sockets.push(s);
    s.on('connect', () => resolve(s));
    s.on('connect_error', reject);
  });
  const follow = async (n: string, subjects: string[]) => {
    const s = await connect(n);
    const events: Ev[] = [];
    s.on('event', (e: Ev, ack: () => void) => { events.push(e); ack(); });
    const r = await new Promise<{ subscribed: string[] }>((res) => s.emit('subscribe', { subjects, sinceSeq: 0 }, res));
    expect(r.subscribed).toEqual(subjects);
    return events;
  };
  const vmOn = async (via: string, id: string) => (await api(via).get(`/v1/vms/${id}`).set(auth).expect(200));
  const newVm = async (via: string, name: string, hostId: string, image: string, argvs: string[][]) =>
    (await api(via).post('/v1/vms').set(auth).send({ name, hostId, vcpus: 1, memoryMiB: 32, processes: argvs.map((argv) => ({ imageId: images[image], argv })) }).expect(201)).body as { id: string };

  beforeAll(async () => {
    // Node a first (it creates the schema); b and c join it.
    const a = start('a');
    nodes.set('a', { proc: a, url: await listeningUrl(a, WAIT) });
    const [b, c] = [start('b'), start('c')];
    nodes.set('b', { proc: b, url: await listeningUrl(b, WAIT) });
    nodes.set('c', { proc: c, url: await listeningUrl(c, WAIT) });
    token = (await api('a').post('/v1/tenants').set(admin).send({ name: 'cluster' }).expect(201)).body.token;
    auth = { Authorization: `Bearer ${token}` };
    const all = (await api('b').get('/v1/images?builtin=true').set(auth).expect(200)).body.items as Array<{ id: string; name: string }>;
    images = Object.fromEntries(all.map((i) => [i.name, i.id]));
  }, WAIT);

  afterAll(async () => {
    for (const s of sockets) s.disconnect();
    for (const { proc } of nodes.values()) if (proc.child.pid && alive(proc.child.pid)) proc.child.kill('SIGTERM');
    await Promise.all([...nodes.values()].map((n) => n.proc.exited));
    const c = new pg.Client({ connectionString: DB });
    await c.connect();
    await c.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`);
    await c.end();
  }, WAIT);

  test('hosts spread over the three nodes, each run (locked) by its owner; a tenant cannot list nodes', async () => {
    for (let i = 0; i < 3; i++) await api(NAMES[i]).post('/v1/hosts').set(auth).send({ name: `h${i}`, cpus: 2, memoryMiB: 256 }).expect(201);
    const v = await pollFor('every host locked by its node', async () => {
      const v = await view('a');
      return v.nodes.length === 3 && v.nodes.every((n) => n.alive && n.hosts.length === 1 && n.hosts[0].locked) ? v : undefined;
    }, WAIT, () => JSON.stringify(nodes.size));
    for (const n of v.nodes) hostOf.set(n.id.slice('node-'.length), n.hosts[0].id);
    expect(v.leader).toBe('node-a');
    expect(v.nodes.filter((n) => n.leader).map((n) => n.id)).toEqual(['node-a']);
    expect((await api('b').get('/v1/nodes').set(auth)).status).toBe(403);
  }, WAIT);

  test('a VM started through node B runs on its host\'s owner (C); a client on A sees its events in seq order; its output is the reference run\'s', async () => {
    const argvs = [['console', '40']];
    const vm = await newVm('a', 'on-c', hostOf.get('c')!, 'console', argvs);
    const events = await follow('a', [`vm:${vm.id}`]);
    const started = await api('b').post(`/v1/vms/${vm.id}/start`).set(auth).expect(202);
    expect(started.headers['x-hvsim-node']).toBe('node-c');
    expect(started.body).toMatchObject({ kind: 'vm.start', subject: `vm:${vm.id}` });
    const op = await pollFor('the start operation to succeed', async () => {
      const o = (await api('a').get(`/v1/operations/${started.body.id}`).set(auth).expect(200)).body;
      return o.state !== 'pending' && o.state !== 'running' ? o : undefined;
    }, WAIT);
    expect(op.state).toBe('succeeded');
    await pollFor('the VM to stop by itself', async () => (await vmOn('b', vm.id)).body.state === 'stopped', WAIT);
    const d = await vmOn('a', vm.id);
    expect(d.headers['x-hvsim-node']).toBe('node-c');
    expect(d.body.run.processes[0].status).toBe(0);
    const out = (await api('b').get(`/v1/vms/${vm.id}/console`).set(auth).expect(200)).body.stdout as string;
    expect(out.split('\n').filter(Boolean).sort()).toEqual(reference('console', argvs));
    await pollFor('the stop over Socket.IO on node A', () => events.some((e) => e.type === 'vm.state' && e.data.to === 'stopped'), WAIT);
    const seqs = events.map((e) => e.seq);
    expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
    expect(new Set(seqs).size).toBe(seqs.length);
    expect(events.filter((e) => e.type === 'vm.state').map((e) => e.data.to)).toEqual(['starting', 'running', 'stopped']);
    // The console events, as seen on A, are the output.
    const streamed = events.filter((e) => e.type === 'vm.console').map((e) => Buffer.from(e.data.base64 as string, 'base64').toString()).join('');
    expect(streamed).toBe(out);
  }, WAIT);

  test('a live migration from a host of node B to a host of node C completes with the undisturbed run\'s output', async () => {
    const argvs = [['memtouch', '2', '1500'], ['memtouch', '1', '3', '2000']];
    const vm = await newVm('c', 'mover', hostOf.get('b')!, 'memtouch', argvs);
    const events = await follow('a', [`vm:${vm.id}`]);
    await api('a').post(`/v1/vms/${vm.id}/start`).set(auth).expect(202);
    await pollFor('the VM running', async () => (await vmOn('a', vm.id)).body.state === 'running', WAIT);
    const r = (await api('a').post(`/v1/vms/${vm.id}/migrations`).set(auth).send({ destinationHostId: hostOf.get('c'), mode: 'precopy', maxDowntimeMs: 1, maxRounds: 6 }).expect(202)).body;
    const m = await pollFor('the migration to end', async () => {
      const m = (await api('c').get(`/v1/migrations/${r.migration.id}`).set(auth).expect(200)).body;
      return ['completed', 'failed', 'cancelled'].includes(m.phase) ? m : undefined;
    }, WAIT);
    expect(m).toMatchObject({ phase: 'completed', failureReason: null });
    expect(m.stats.destinationDigest).toBe(m.stats.sourceDigest);
    const final = await pollFor('the VM to stop on the destination', async () => { const v = await vmOn('b', vm.id); return v.body.state === 'stopped' ? v : undefined; }, WAIT);
    expect(final.headers['x-hvsim-node']).toBe('node-c');
    expect(final.body.hostId).toBe(hostOf.get('c'));
    expect(final.body.run.processes.map((p: { status: number }) => p.status)).toEqual([0, 0]);
    const out = (await api('a').get(`/v1/vms/${vm.id}/console`).set(auth).expect(200)).body.stdout as string;
    expect(out.split('\n').filter(Boolean).sort()).toEqual(reference('memtouch', argvs));
    await pollFor('the stop over Socket.IO', () => events.some((e) => e.type === 'vm.state' && e.data.to === 'stopped'), WAIT);
    expect(events.filter((e) => e.type === 'migration.phase').map((e) => e.data.to)).toEqual(['pending', 'preparing-target', 'target-ready', 'running', 'completed']);
    // The source host's frames are free again.
    expect((await api('a').get(`/v1/hosts/${hostOf.get('b')}`).set(auth).expect(200)).body.memory.framesByVm).toEqual({});
  }, WAIT);

  test('kill -9 of the leader (A): its host is taken over, its VM reported crashed (node-lost) with events, the leader moves, the rest goes on', async () => {
    const long = [['memtouch', '1', '1000000']];
    const doomed = await newVm('b', 'doomed', hostOf.get('a')!, 'memtouch', long);
    const survivor = await newVm('b', 'survivor', hostOf.get('c')!, 'memtouch', long);
    const events = await follow('b', [`vm:${doomed.id}`, `vm:${survivor.id}`, `host:${hostOf.get('a')}`]);
    for (const id of [doomed.id, survivor.id]) await api('c').post(`/v1/vms/${id}/start`).set(auth).expect(202);
    await pollFor('both VMs running', async () => (await vmOn('b', doomed.id)).body.state === 'running' && (await vmOn('b', survivor.id)).body.state === 'running', WAIT);

    const a = nodes.get('a')!.proc;
    a.child.kill('SIGKILL');
    await a.exited;
    const v = await pollFor('node A gone and its host locked by another node', async () => {
      const v = await view('b');
      const owner = v.nodes.find((n) => n.hosts.some((h) => h.id === hostOf.get('a') && h.locked));
      return !v.nodes.some((n) => n.id === 'node-a') && owner && v.leader && v.leader !== 'node-a' ? v : undefined;
    }, WAIT);
    expect(['node-b', 'node-c']).toContain(v.leader);
    expect(v.nodes.map((n) => n.id).sort()).toEqual(['node-b', 'node-c']);
    expect(v.nodes.flatMap((n) => n.hosts).length).toBe(3);

    const crashed = await pollFor('the doomed VM crashed (node-lost)', async () => { const d = (await vmOn('c', doomed.id)).body; return d.state === 'crashed' ? d : undefined; }, WAIT);
    expect(crashed.stateReason).toBe('node-lost');
    await pollFor('crash events on node B', () => events.some((e) => e.subject === `vm:${doomed.id}` && e.type === 'vm.fault' && e.data.reason === 'node-lost'), WAIT);
    expect(events.some((e) => e.subject === `vm:${doomed.id}` && e.type === 'vm.state' && e.data.to === 'crashed' && e.data.reason === 'node-lost')).toBe(true);
    expect(events.some((e) => e.type === 'host.node' && e.data.from === 'node-a' && e.data.reason === 'node-lost')).toBe(true);
    // Nothing else lost: the VM on C runs on, its output intact so far.
    expect((await vmOn('b', survivor.id)).body.state).toBe('running');
    const seqs = events.map((e) => e.seq);
    expect(seqs).toEqual([...seqs].sort((x, y) => x - y));

    // The cluster keeps serving: the crashed VM restarts on its host's new owner.
    const newOwner = v.nodes.find((n) => n.hosts.some((h) => h.id === hostOf.get('a')))!.id;
    await api('c').post(`/v1/vms/${doomed.id}/reset`).set(auth).expect(200);
    const again = await api('b').post(`/v1/vms/${doomed.id}/start`).set(auth).expect(202);
    expect(again.headers['x-hvsim-node']).toBe(newOwner);
    await pollFor('the restarted VM running', async () => (await vmOn('c', doomed.id)).body.state === 'running', WAIT);
    for (const id of [doomed.id, survivor.id]) await api('b').post(`/v1/vms/${id}/stop`).set(auth).expect(202);
    await pollFor('both stopped', async () => (await vmOn('c', doomed.id)).body.state === 'stopped' && (await vmOn('c', survivor.id)).body.state === 'stopped', WAIT);
  }, WAIT * 2);

  test('a stalled node (SIGSTOP past the timeout) loses its host: on waking it stops the host\'s VM (crashed, node-lost) and frees the lock for the new owner', async () => {
    const vm = await newVm('b', 'stalled', hostOf.get('c')!, 'memtouch', [['memtouch', '1', '1000000']]);
    const events = await follow('b', [`vm:${vm.id}`]);
    await api('b').post(`/v1/vms/${vm.id}/start`).set(auth).expect(202);
    await pollFor('the VM running on C', async () => (await vmOn('b', vm.id)).body.state === 'running', WAIT);
    const c = nodes.get('c')!.proc.child;
    let newOwner = '';
    const seen503: string[] = [];
    c.kill('SIGSTOP');
    try {
      // C's host goes to a live node (by the leader, or by the live nodes if C leads); C still holds its lock, so the new owner waits.
      newOwner = await pollFor('C\'s host assigned to another node', async () => {
        const v = await view('b');
        return v.nodes.find((n) => n.id !== 'node-c' && n.hosts.some((h) => h.id === hostOf.get('c')))?.id;
      }, WAIT);
    } finally {
      c.kill('SIGCONT');
    }
    await pollFor('the new owner runs C\'s host (C let go of its lock)', async () => {
      const v = await view('b');
      return v.nodes.find((n) => n.id === newOwner)?.hosts.some((h) => h.id === hostOf.get('c') && h.locked) ?? false;
    }, WAIT);
    const d = await pollFor('the VM crashed (node-lost)', async () => { const d = (await vmOn('b', vm.id)).body; return d.state === 'crashed' ? d : undefined; }, WAIT);
    expect(d.stateReason).toBe('node-lost');
    await pollFor('the crash event', () => events.some((e) => e.type === 'vm.fault' && e.data.reason === 'node-lost'), WAIT);
    // C is back as a node without hosts, and the VM starts again on the new owner.
    await pollFor('C registered again', async () => (await view('b')).nodes.some((n) => n.id === 'node-c' && n.alive && n.hosts.length === 0), WAIT);
    await api('c').post(`/v1/vms/${vm.id}/reset`).set(auth).expect(200);
    // While the new owner finishes taking the host a start answers 503 (documented: retry).
    const again = await pollFor('a start accepted', async () => {
      const r = await api('c').post(`/v1/vms/${vm.id}/start`).set(auth);
      if (r.status === 503) { seen503.push(r.body.detail); return undefined; }
      return r;
    }, WAIT);
    expect({ status: again.status, body: again.body }).toMatchObject({ status: 202 });
    if (seen503.length) process.stderr.write(`503s before the start was accepted: ${JSON.stringify(seen503.slice(0, 3))}\n`);
    expect(again.headers['x-hvsim-node']).toBe(newOwner);
    await pollFor('running on the new owner', async () => (await vmOn('c', vm.id)).body.state === 'running', WAIT);
    await api('c').post(`/v1/vms/${vm.id}/stop`).set(auth).expect(202);
    await pollFor('stopped', async () => (await vmOn('c', vm.id)).body.state === 'stopped', WAIT);
  }, WAIT * 2);
});
