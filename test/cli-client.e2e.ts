/**
 * The hvsim client commands as a user runs them (child processes) against a real service:
 * login and its config file, tables and --json, create from flags and files, lifecycle with
 * --wait, console --follow, counters, memory errors, and the exit statuses: 0 done, 1 refused by
 * the service, 2 bad usage or input (one line on stderr). They never load the service's code.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ADMIN, BACKENDS, startTestService, until } from './support/service.js';
import { hvsimClient, must } from '../src/client/index.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'hvsim-cli-'));
const HELLO = '.globl _start\n.text\n_start:\n  li a0, 1\n  la a1, msg\n  li a2, 12\n  li a7, 64\n  ecall\n  li a0, 0\n  li a7, 93\n  ecall\n.section .rodata\nmsg: .ascii "hello, cli!\\n"\n';

interface Run { code: number; stdout: string; stderr: string }

describe.each(BACKENDS)('hvsim client commands on $name', (backend) => {
  let svc: Awaited<ReturnType<typeof startTestService>>;
  let token = '';
  const config = join(dir, `${backend.name}.json`);

  beforeAll(async () => {
    svc = await startTestService(backend);
    token = (await must(hvsimClient({ url: svc.url, token: ADMIN }).POST('/v1/tenants', { body: { name: 'cli' } }))).token;
  }, 300_000); // starting or stopping a service on a busy machine
  afterAll(async () => {
    await svc?.close();
    await svc?.dropSchema();
  }, 300_000); // starting or stopping a service on a busy machine

  /** Runs `hvsim ARGS` with the config file of this suite (and `env`). */
  const hvsim = (args: string[], env: Record<string, string> = {}) => new Promise<Run>((res) => {
    execFile(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
      cwd: root, env: { ...process.env, HVSIM_CONFIG: config, HVSIM_TOKEN: '', HVSIM_URL: '', ...env }, timeout: 120_000,
    }, (err, stdout, stderr) => res({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }));
  });
  const ok = async (args: string[], env?: Record<string, string>) => {
    const r = await hvsim(args, env);
    if (r.code !== 0) throw new Error(`hvsim ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
    return r.stdout;
  };
  const json = async (args: string[]) => JSON.parse(await ok(['--json', ...args]));

  test('login, create from flags and files, tables and --json, lifecycle, console --follow, counters, memory errors', async () => {
    expect(await ok(['--url', svc.url, 'login', '--token', token])).toMatch(/logged in/);
    expect(JSON.parse(readFileSync(config, 'utf8'))).toEqual({ url: svc.url, token });
    expect(statSync(config).mode & 0o777).toBe(0o600);

    const table = await ok(['hosts', 'create', '--name', 'cli-a', '--cpus', '2', '--memory-mib', '64']);
    expect(table).toMatch(/│ ?ID|ID/);
    expect(table).toMatch(/cli-a .*64 MiB/);
    writeFileSync(join(dir, 'host.json'), JSON.stringify({ name: 'cli-b', cpus: 1, memoryMiB: 32 }));
    const b = await json(['hosts', 'create', '-f', join(dir, 'host.json')]);
    expect(b).toMatchObject({ name: 'cli-b', cpus: 1, memoryMiB: 32 });
    const hosts = await json(['hosts', 'ls']);
    expect(hosts.items.map((h: { name: string }) => h.name)).toEqual(['cli-a', 'cli-b']);
    const a = hosts.items[0];

    writeFileSync(join(dir, 'hello.s'), HELLO);
    const image = await json(['images', 'create', '--asm', join(dir, 'hello.s')]);
    expect(image).toMatchObject({ name: 'hello', format: 'asm' });
    const vm = await json(['vms', 'create', '--name', 'cli-vm', '--host', a.id, '--image', image.id, '--memory-mib', '8']);
    expect(await ok(['vms', 'ls'])).toMatch(/cli-vm .*created/);

    const op = await json(['vm', 'start', vm.id, '--wait']);
    expect(op).toMatchObject({ kind: 'vm.start', state: 'succeeded' });
    const follow = await hvsim(['vm', 'console', vm.id, '--follow']);
    expect(follow).toMatchObject({ code: 0, stdout: 'hello, cli!\n' });
    expect(await ok(['vm', 'counters', vm.id])).toMatch(/instructions\s*│?\s*\d+/);
    expect((await json(['vm', 'counters', vm.id])).syscalls.write).toBe(1);
    expect((await json(['operations', 'ls'])).items.some((o: { id: string }) => o.id === op.id)).toBe(true);

    const err = await json(['memory-error', 'inject', b.id, '--hpa', String(30 * 1024 * 1024)]);
    expect(err).toMatchObject({ kind: 'uncorrectable', state: 'retired' });
    const events = await ok(['events', '--subject', `host:${b.id}`]);
    expect(events).toMatch(/host\.memory-error/);

    // A looping VM: pause, resume, migrate with --watch, stop.
    writeFileSync(join(dir, 'loop.s'), '.globl _start\n.text\n_start:\n  j _start\n');
    const loop = await json(['images', 'create', '--asm', join(dir, 'loop.s'), '--name', 'loop']);
    const lvm = await json(['vms', 'create', '--name', 'cli-loop', '--host', a.id, '--image', loop.id, '--memory-mib', '8']);
    for (const action of ['start', 'pause', 'resume']) expect(await json(['vm', action, lvm.id, '--wait'])).toMatchObject({ state: 'succeeded' });
    const watched = await hvsim(['--json', 'vm', 'migrate', lvm.id, b.id, '--watch']);
    expect(watched.code).toBe(0);
    expect(JSON.parse(watched.stdout)).toMatchObject({ phase: 'completed', destinationHostId: b.id });
    expect(watched.stderr).toMatch(/pending|running/);
    expect((await json(['migrations', 'ls', lvm.id])).items).toHaveLength(1);
    expect(await json(['vm', 'stop', lvm.id, '--wait'])).toMatchObject({ state: 'succeeded' });

    expect(await ok(['vms', 'rm', vm.id])).toMatch(/deleted/);
    // HVSIM_TOKEN wins over the config file.
    expect(await hvsim(['hosts', 'ls'], { HVSIM_TOKEN: 'hvt_wrong' })).toMatchObject({ code: 1 });
  }, 600_000);

  test('events --follow streams a VM\'s events live; --wait on a terminal draws a progress bar', async () => {
    const env = { ...process.env, HVSIM_CONFIG: config, HVSIM_TOKEN: '', HVSIM_URL: '' };
    const hosts = await json(['hosts', 'ls']);
    writeFileSync(join(dir, 'twice.s'), HELLO);
    const image = await json(['images', 'create', '--asm', join(dir, 'twice.s'), '--name', 'twice']);
    const vm = await json(['vms', 'create', '--name', 'cli-follow', '--host', hosts.items[0].id, '--image', image.id, '--memory-mib', '8']);

    // Whether it subscribes before or after the VM starts, it prints every event once: what the
    // log holds first, then live ones from that seq on.
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'events', '--follow', '--subject', `vm:${vm.id}`], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let streamed = '';
    child.stdout.on('data', (d: Buffer) => { streamed += d.toString(); });
    try {
      // A terminal for stderr (util-linux `script` gives the command a pseudo-terminal): the bar.
      const tty = await new Promise<string>((res) => execFile('script', ['-qec', `${process.execPath} --import tsx src/cli/main.ts vm start ${vm.id} --wait`, '/dev/null'], {
        cwd: root, env, timeout: 120_000,
      }, (_e, stdout) => res(stdout)));
      expect(tty).toMatch(/start \S+ \[[^\]]*\] 100% succeeded/);
      await until('the VM\'s console and stop to stream', () => /vm\.console\t.*hello, cli!/.test(streamed) && /vm\.state\t.*"to":"stopped"/.test(streamed), 300_000);
      expect(child.exitCode).toBeNull();
    } finally {
      child.kill();
    }
  }, 300_000);

  test('errors are one line with status 1 (refused by the service) or 2 (bad usage or input)', async () => {
    const cases: Array<[string[], number, RegExp]> = [
      [['hosts', 'get', '00000000-0000-4000-8000-000000000000'], 1, /does not exist \(404\)/],
      [['hosts', 'get', 'not-a-uuid'], 2, /uuid.*\(400\)/],
      [['hosts', 'create', '--name', 'x', '--cpus', 'many'], 2, /--cpus must be a non-negative integer/],
      [['hosts', 'create'], 2, /needs --name/],
      [['hosts', 'create', '-f', join(dir, 'missing.json')], 2, /cannot read/],
      [['images', 'create', '--asm', join(dir, 'bad.s')], 2, /cannot read|assembly failed/],
      [['no-such-command'], 2, /unknown command/],
      [['vm', 'start'], 2, /missing required argument/],
    ];
    for (const [args, code, message] of cases) {
      const r = await hvsim(['--url', svc.url, ...args], { HVSIM_TOKEN: token });
      expect({ args, code: r.code, stdout: r.stdout }).toEqual({ args, code, stdout: '' });
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).not.toContain(token);
    }
    expect(await hvsim(['hosts', 'ls'], { HVSIM_CONFIG: join(dir, 'none.json') })).toMatchObject({ code: 2, stderr: expect.stringMatching(/no token/) });
    expect(await hvsim(['--url', 'http://127.0.0.1:1', 'hosts', 'ls'], { HVSIM_TOKEN: token })).toMatchObject({ code: 1, stderr: expect.stringMatching(/cannot reach the service: /) });
    expect((await hvsim(['--help'])).code).toBe(0);
  }, 600_000);
});

test('the client commands and the SDK import nothing of the service (no NestJS, TypeORM, pg)', () => {
  const seen = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    for (const m of readFileSync(file, 'utf8').matchAll(/^\s*(?:import|export)[^'"]*?from\s+'([^']+)'/gm)) {
      const spec = m[1];
      if (spec.startsWith('.')) visit(resolve(dirname(file), spec.replace(/\.js$/, '.ts')));
      else expect({ file, spec }).toEqual({ file, spec: expect.not.stringMatching(/^(@nestjs|typeorm|pg$|@electric-sql|express)/) });
    }
  };
  visit(join(root, 'src/cli/client/index.ts'));
  // The client's own modules, and the one-line error class it shares with the local commands.
  expect([...seen].filter((f) => !/src\/(cli\/client|client)\//.test(f) && !f.endsWith('src/cli/cli-error.ts'))).toEqual([]);
});
