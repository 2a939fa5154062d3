/**
 * hvsim client commands against a running service, on commander: resources (hosts, images, vms,
 * migrations, experiments, operations: ls, get, create, rm), VM lifecycle, console and counters,
 * live migration, events, memory-error injection, and login. They use only the typed SDK
 * (src/client), never the service's code, so they start fast.
 *
 * Connection: --url (or HVSIM_URL, or the config file), token from HVSIM_TOKEN or the config file
 * that `hvsim login` writes ($HVSIM_CONFIG, default ~/.config/hvsim/config.json, mode 0600).
 * Output: tables, or JSON with --json. Exit status: 0 done, 1 the service refused or failed
 * (the problem's detail on stderr) or is unreachable, 2 bad usage or bad input (a 400/422 too).
 */
import { Command, Option } from 'commander';
import Table from 'cli-table3';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { CliError } from '../cli-error.js';
import { ApiError, EventsClient, hvsimClient, must, type HvEvent, type HvsimClient } from '../../client/index.js';
import { migrationProgress, progressView } from './progress.js';

/** A failure of a client command: one line on stderr, and its exit status. */
export class ClientError extends CliError {
  constructor(message: string, override readonly status: 1 | 2) { super(message, status); }
}

interface Config { url?: string; token?: string }
export const configPath = () => process.env.HVSIM_CONFIG || join(homedir(), '.config', 'hvsim', 'config.json');
function readConfig(): Config {
  try { return JSON.parse(readFileSync(configPath(), 'utf8')) as Config; } catch { return {}; }
}

interface Globals { url?: string; json?: boolean }
function connection(cmd: Command): { api: HvsimClient; url: string; token: string; json: boolean } {
  const g = cmd.optsWithGlobals<Globals>();
  const cfg = readConfig();
  const url = g.url ?? (process.env.HVSIM_URL || cfg.url) ?? 'http://127.0.0.1:8080';
  const token = process.env.HVSIM_TOKEN || cfg.token;
  if (!token) throw new ClientError('hvsim: no token: set HVSIM_TOKEN or run `hvsim login`', 2);
  return { api: hvsimClient({ url, token }), url, token, json: g.json === true };
}

/** Runs an SDK call; maps its failures to ClientError (400/422: status 2, others 1). */
async function call<T>(p: Promise<{ data?: T; error?: unknown; response: Response }>): Promise<T> {
  try {
    return await must(p);
  } catch (e) {
    if (e instanceof ApiError) throw new ClientError(`hvsim: ${e.problem.detail || e.problem.title} (${e.status})`, e.status === 400 || e.status === 422 ? 2 : 1);
    // fetch's TypeError('fetch failed') says why in its cause (ECONNREFUSED, a bad port, ...).
    let why = e instanceof Error ? e.message : String(e);
    for (let c = (e as { cause?: unknown }).cause as { cause?: unknown; code?: unknown; message?: unknown } | undefined; c; c = c.cause as typeof c) {
      why = typeof c.code === 'string' ? c.code : typeof c.message === 'string' ? c.message : why;
    }
    throw new ClientError(`hvsim: cannot reach the service: ${why}`, 1);
  }
}

const out = (s: string) => { process.stdout.write(s.endsWith('\n') ? s : `${s}\n`); };

/** Prints rows as a table (columns: [header, value of a row]) or, with --json, `json` as JSON. */
function print<R>(json: boolean, value: unknown, rows: R[], columns: Array<[string, (r: R) => unknown]>): void {
  if (json) return out(JSON.stringify(value, null, 2));
  const t = new Table({ head: columns.map((c) => c[0]), style: { head: [], border: [] } });
  for (const r of rows) t.push(columns.map(([, f]) => { const v = f(r); return v === null || v === undefined ? '' : String(v); }));
  out(t.toString());
}

const int = (name: string) => (v: string) => {
  if (!/^(0x[0-9a-f]+|\d+)$/i.test(v)) throw new ClientError(`hvsim: ${name} must be a non-negative integer, not '${v}'`, 2);
  return Number(v);
};
function readJson(file: string): Record<string, unknown> {
  let text: string;
  try { text = readFileSync(file === '-' ? 0 : file, 'utf8'); } catch (e) { throw new ClientError(`hvsim: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? e}`, 2); }
  try { return JSON.parse(text) as Record<string, unknown>; } catch (e) { throw new ClientError(`hvsim: ${file} is not JSON: ${(e as Error).message}`, 2); }
}

type Cols<R> = Array<[string, (r: R) => unknown]>;
const HOST: Cols<any> = [['ID', (h) => h.id], ['NAME', (h) => h.name], ['CPUS', (h) => h.cpus], ['MEMORY', (h) => `${h.memoryMiB} MiB`], ['FREE', (h) => `${h.memory.freeMiB} MiB`], ['STATE', (h) => h.state]];
const IMAGE: Cols<any> = [['ID', (i) => i.id], ['NAME', (i) => i.name], ['FORMAT', (i) => i.format], ['SIZE', (i) => i.sizeBytes], ['BUILTIN', (i) => (i.builtin ? 'yes' : '')], ['SHA256', (i) => i.sha256.slice(0, 12)]];
const VM: Cols<any> = [['ID', (v) => v.id], ['NAME', (v) => v.name], ['HOST', (v) => v.hostId], ['VCPUS', (v) => v.vcpus], ['MEMORY', (v) => `${v.memoryMiB} MiB`], ['STATE', (v) => v.state]];
const OPERATION: Cols<any> = [['ID', (o) => o.id], ['KIND', (o) => o.kind], ['SUBJECT', (o) => o.subject], ['STATE', (o) => o.state], ['PROGRESS', (o) => `${Math.round(o.progress * 100)}%`], ['ERROR', (o) => o.error?.message]];
const MIGRATION: Cols<any> = [['ID', (m) => m.id], ['VM', (m) => m.vmId], ['FROM', (m) => m.sourceHostId], ['TO', (m) => m.destinationHostId], ['PHASE', (m) => m.phase], ['FAILURE', (m) => m.failureReason]];
const EXPERIMENT: Cols<any> = [['ID', (x) => x.id], ['STATE', (x) => x.state], ['VARIANTS', (x) => (x.spec.variants ?? []).map((v: { name: string }) => v.name).join(', ')], ['ERROR', (x) => x.error]];

/** Registers `hvsim hosts|images|vms|migrations|experiments|operations|vm|events|memory-error|login` on `program`. */
export function registerClientCommands(program: Command): Command {
  program.addOption(new Option('--url <url>', 'the service (default: HVSIM_URL, the config file, or http://127.0.0.1:8080)'));
  program.addOption(new Option('--json', 'print JSON instead of tables'));

  program.command('login').description('save the service URL and a tenant token to the config file')
    .requiredOption('--token <token>', 'a tenant token (from POST /v1/tenants)')
    .action(async (o: { token: string }, cmd: Command) => {
      const url = cmd.optsWithGlobals<Globals>().url ?? (process.env.HVSIM_URL || undefined) ?? 'http://127.0.0.1:8080';
      await call(hvsimClient({ url, token: o.token }).GET('/v1/hosts', { params: { query: { pageSize: 1 } } }));
      mkdirSync(dirname(configPath()), { recursive: true });
      writeFileSync(configPath(), `${JSON.stringify({ url, token: o.token }, null, 2)}\n`, { mode: 0o600 });
      out(`logged in to ${url} (saved in ${configPath()})`);
    });

  const resource = <R>(name: string, what: string, cols: Cols<R>, list: (c: ReturnType<typeof connection>) => Promise<{ items: R[] }>,
    get: (c: ReturnType<typeof connection>, id: string) => Promise<R>, rm?: (c: ReturnType<typeof connection>, id: string) => Promise<unknown>) => {
    const cmd = program.command(name).description(`${what}: ls, get${rm ? ', rm, create' : ''}`);
    cmd.command('ls').description(`list ${what}`).action(async (_o: unknown, c: Command) => {
      const conn = connection(c);
      const r = await list(conn);
      print(conn.json, r, r.items, cols);
    });
    cmd.command('get <id>').description(`one of the ${what}`).action(async (id: string, _o: unknown, c: Command) => {
      const conn = connection(c);
      const r = await get(conn, id);
      print(conn.json, r, [r], cols);
    });
    if (rm) {
      cmd.command('rm <id>').description(`delete one of the ${what}`).action(async (id: string, _o: unknown, c: Command) => {
        await rm(connection(c), id);
        out(`deleted ${id}`);
      });
    }
    return cmd;
  };
  const path = (id: string) => ({ params: { path: { id } } });
  const page = { params: { query: { pageSize: 100 } } };

  resource('hosts', 'hosts', HOST, (c) => call(c.api.GET('/v1/hosts', page)), (c, id) => call(c.api.GET('/v1/hosts/{id}', path(id))), (c, id) => call(c.api.DELETE('/v1/hosts/{id}', path(id))))
    .command('create').description('create a host (flags, or -f spec.json)')
    .option('--name <name>').option('--cpus <n>', 'CPUs', int('--cpus'), 2).option('--memory-mib <n>', 'DRAM in MiB', int('--memory-mib'), 256)
    .option('-f, --file <spec.json>', 'the request body as JSON (- for stdin)')
    .action(async (o: { name?: string; cpus: number; memoryMib: number; file?: string }, c: Command) => {
      const conn = connection(c);
      const body = o.file ? readJson(o.file) : { name: o.name ?? '', cpus: o.cpus, memoryMiB: o.memoryMib };
      if (!o.file && !o.name) throw new ClientError('hvsim: hosts create needs --name (or -f spec.json)', 2);
      const h = await call(conn.api.POST('/v1/hosts', { body: body as never }));
      print(conn.json, h, [h], HOST);
    });

  resource('images', 'images', IMAGE, (c) => call(c.api.GET('/v1/images', page)), (c, id) => call(c.api.GET('/v1/images/{id}', path(id))), (c, id) => call(c.api.DELETE('/v1/images/{id}', path(id))))
    .command('create').description('upload an image: an ELF (--elf FILE) or assembly source (--asm FILE), or -f spec.json')
    .option('--name <name>').option('--elf <file>').option('--asm <file>').option('-f, --file <spec.json>')
    .action(async (o: { name?: string; elf?: string; asm?: string; file?: string }, c: Command) => {
      const conn = connection(c);
      const given = [o.elf, o.asm, o.file].filter((x) => x !== undefined).length;
      if (given !== 1) throw new ClientError('hvsim: images create needs exactly one of --elf, --asm, -f', 2);
      const read = (f: string) => { try { return readFileSync(f); } catch (e) { throw new ClientError(`hvsim: cannot read ${f}: ${(e as NodeJS.ErrnoException).code}`, 2); } };
      const name = o.name ?? (o.elf ?? o.asm ?? 'image').replace(/^.*[\\/]/, '').replace(/\.[^.]*$/, '');
      const body = o.file ? readJson(o.file)
        : o.elf ? { name, format: 'elf', content: read(o.elf).toString('base64') }
        : { name, format: 'asm', content: read(o.asm!).toString('utf8') };
      const i = await call(conn.api.POST('/v1/images', { body: body as never }));
      print(conn.json, i, [i], IMAGE);
    });

  resource('vms', 'VMs', VM, (c) => call(c.api.GET('/v1/vms', page)), (c, id) => call(c.api.GET('/v1/vms/{id}', path(id))), (c, id) => call(c.api.DELETE('/v1/vms/{id}', path(id))))
    .command('create').description('define a VM (flags, or -f spec.json)')
    .option('--name <name>').option('--host <id>').option('--image <id>', 'the image of its one process')
    .option('--vcpus <n>', 'vCPUs', int('--vcpus'), 1).option('--memory-mib <n>', 'memory in MiB', int('--memory-mib'), 16)
    .option('-f, --file <spec.json>').argument('[argv...]', 'the process\'s arguments (after --)')
    .action(async (argv: string[], o: { name?: string; host?: string; image?: string; vcpus: number; memoryMib: number; file?: string }, c: Command) => {
      const conn = connection(c);
      if (!o.file && (!o.name || !o.image)) throw new ClientError('hvsim: vms create needs --name and --image (or -f spec.json)', 2);
      const body = o.file ? readJson(o.file) : {
        name: o.name, ...(o.host ? { hostId: o.host } : {}), vcpus: o.vcpus, memoryMiB: o.memoryMib, processes: [{ imageId: o.image, ...(argv.length ? { argv } : {}) }],
      };
      const v = await call(conn.api.POST('/v1/vms', { body: body as never }));
      print(conn.json, v, [v], VM);
    });

  program.command('migrations').description('migrations: ls VM, get')
    .addCommand(new Command('ls').argument('<vm>').description('a VM\'s migrations').action(async (vm: string, _o: unknown, c: Command) => {
      const conn = connection(c);
      const r = await call(conn.api.GET('/v1/vms/{id}/migrations', { params: { path: { id: vm }, query: { pageSize: 100 } } }));
      print(conn.json, r, r.items, MIGRATION);
    }))
    .addCommand(new Command('get').argument('<id>').action(async (id: string, _o: unknown, c: Command) => {
      const conn = connection(c);
      const m = await call(conn.api.GET('/v1/migrations/{id}', path(id)));
      print(conn.json, m, [m], MIGRATION);
    }));

  resource('experiments', 'experiments (and create)', EXPERIMENT, (c) => call(c.api.GET('/v1/experiments', page)), (c, id) => call(c.api.GET('/v1/experiments/{id}', path(id))))
    .command('create').description('run an experiment: -f spec.json (see POST /v1/experiments)').requiredOption('-f, --file <spec.json>')
    .action(async (o: { file: string }, c: Command) => {
      const conn = connection(c);
      const x = await call(conn.api.POST('/v1/experiments', { body: readJson(o.file) as never }));
      print(conn.json, x, [x], EXPERIMENT);
    });

  resource('operations', 'operations (and cancel)', OPERATION, (c) => call(c.api.GET('/v1/operations', page)), (c, id) => call(c.api.GET('/v1/operations/{id}', path(id))))
    .command('cancel <id>').description('cancel a pending or running operation').action(async (id: string, _o: unknown, c: Command) => {
      const conn = connection(c);
      const op = await call(conn.api.POST('/v1/operations/{id}/cancel', path(id)));
      print(conn.json, op, [op], OPERATION);
    });

  const vm = program.command('vm').description('a VM: start, pause, resume, stop, console, counters, migrate');
  for (const action of ['start', 'pause', 'resume', 'stop'] as const) {
    vm.command(`${action} <id>`).description(`${action} a VM (prints its Operation; --wait: until it ends)`).option('--wait', 'wait until the operation ends; exit 1 when it failed')
      .action(async (id: string, o: { wait?: boolean }, c: Command) => {
        const conn = connection(c);
        let op = await call(conn.api.POST(`/v1/vms/{id}/${action}`, path(id)));
        if (o.wait) {
          const view = progressView(`${action} ${id}`, { lines: false });
          try {
            while (op.state === 'pending' || op.state === 'running') {
              view.update(op.progress, op.state);
              await new Promise((r) => setTimeout(r, 100));
              op = await call(conn.api.GET('/v1/operations/{id}', path(op.id)));
            }
            view.update(op.state === 'succeeded' ? 1 : op.progress, op.state);
          } finally {
            view.stop();
          }
        }
        print(conn.json, op, [op], OPERATION);
        if (op.state === 'failed') throw new ClientError(`hvsim: ${action} failed: ${op.error?.message ?? ''}`, 1);
      });
  }
  vm.command('console <id>').description('print the console; --follow: then stream it until the VM stops')
    .option('--follow', 'keep printing new output until the VM stops')
    .action(async (id: string, o: { follow?: boolean }, c: Command) => {
      const conn = connection(c);
      const events = o.follow ? await EventsClient.connect(conn.url, conn.token) : null;
      try {
        let done: () => void = () => {};
        const finished = new Promise<void>((r) => { done = r; });
        const queued: HvEvent[] = [];
        let live = false;
        const show = (e: HvEvent) => {
          if (e.type === 'vm.console') (e.data.stream === 'stderr' ? process.stderr : process.stdout).write(String(e.data.text));
          if (e.type === 'vm.state' && ['stopped', 'crashed', 'created'].includes(String(e.data.to))) done();
        };
        events?.onEvent((e) => { if (live) show(e); else queued.push(e); });
        if (events) await events.subscribe([`vm:${id}`]);
        const text = await call(conn.api.GET('/v1/vms/{id}/console', path(id)));
        if (typeof text === 'object') { process.stdout.write(text.stdout); process.stderr.write(text.stderr); }
        if (!events) return;
        const v = await call(conn.api.GET('/v1/vms/{id}', path(id)));
        live = true;
        // Output that arrived while the console was read is in the text already: skip console events queued meanwhile.
        for (const e of queued.splice(0)) if (e.type !== 'vm.console') show(e);
        if (!['starting', 'running', 'paused', 'migrating', 'stopping'].includes(v.state)) return;
        await finished;
      } finally {
        events?.close();
      }
    });
  vm.command('counters <id>').description('the counters of the current or latest run').action(async (id: string, _o: unknown, c: Command) => {
    const conn = connection(c);
    const k = await call(conn.api.GET('/v1/vms/{id}/counters', path(id)));
    const rows: Array<[string, unknown]> = [
      ['instructions', k.instructions], ['cycles', k.cycles], ['crossings', k.crossings], ['tlbMisses', k.tlbMisses], ['branchMispredicts', k.branchMispredicts],
      ...Object.entries(k.exits).map(([r, n]): [string, unknown] => [`exits.${r}`, n]), ...Object.entries(k.syscalls).map(([r, n]): [string, unknown] => [`syscalls.${r}`, n]),
    ];
    print(conn.json, k, rows, [['COUNTER', (r) => r[0]], ['VALUE', (r) => r[1]]]);
  });
  vm.command('migrate <id> <destination-host>').description('live-migrate a VM; --watch: follow its phases until it ends')
    .option('--watch', 'print phases and progress until the migration ends; exit 1 unless it completed')
    .action(async (id: string, dest: string, o: { watch?: boolean }, c: Command) => {
      const conn = connection(c);
      const r = await call(conn.api.POST('/v1/vms/{id}/migrations', { params: { path: { id } }, body: { destinationHostId: dest, mode: 'precopy' } }));
      let m = r.migration;
      if (!o.watch) return print(conn.json, r, [m], MIGRATION);
      const view = progressView(`migrate ${id}`);
      try {
        while (!['completed', 'failed', 'cancelled'].includes(m.phase)) {
          view.update(...migrationProgress(m.phase, m.stats as Record<string, unknown> | null));
          await new Promise((res) => setTimeout(res, 100));
          m = await call(conn.api.GET('/v1/migrations/{id}', path(m.id)));
        }
        view.update(...migrationProgress(m.phase, m.stats as Record<string, unknown> | null));
      } finally {
        view.stop();
      }
      print(conn.json, m, [m], MIGRATION);
      if (m.phase !== 'completed') throw new ClientError(`hvsim: migration ${m.phase}: ${m.failureReason ?? ''}`, 1);
    });

  program.command('events').description('print events; --follow: stream them live')
    .option('--follow', 'keep streaming until interrupted').option('--subject <subject>', 'one subject, for example vm:ID')
    .option('--since <seq>', 'events after this seq', int('--since'), 0)
    .action(async (o: { follow?: boolean; subject?: string; since: number }, c: Command) => {
      const conn = connection(c);
      const line = (e: HvEvent) => out(conn.json ? JSON.stringify(e) : `${e.seq}\t${e.time}\t${e.type}\t${e.subject}\t${JSON.stringify(e.data)}`);
      const r = await call(conn.api.GET('/v1/events', { params: { query: { since: o.since, limit: 1000, ...(o.subject ? { subject: o.subject } : {}) } } }));
      for (const e of r.items) line(e);
      if (!o.follow) return;
      if (!o.subject) throw new ClientError('hvsim: events --follow needs --subject (for example vm:ID)', 2);
      const ev = await EventsClient.connect(conn.url, conn.token);
      ev.onEvent(line);
      const s = await ev.subscribe([o.subject], { sinceSeq: r.items.length ? r.items[r.items.length - 1].seq : o.since });
      if (s.rejected.length) { ev.close(); throw new ClientError(`hvsim: ${s.rejected[0].subject}: ${s.rejected[0].reason}`, 1); }
      await new Promise(() => {});
    });

  program.command('memory-error').description('memory errors').command('inject <host>')
    .description('inject a memory error into a host frame: --hpa ADDR, or --vm ID --gpa ADDR')
    .option('--hpa <address>', 'host-physical address', int('--hpa')).option('--vm <id>').option('--gpa <address>', 'guest-physical address', int('--gpa'))
    .addOption(new Option('--kind <kind>').choices(['uncorrectable', 'corrected']).default('uncorrectable')).option('--latent', 'found on the next read')
    .action(async (host: string, o: { hpa?: number; vm?: string; gpa?: number; kind: 'uncorrectable' | 'corrected'; latent?: boolean }, c: Command) => {
      const conn = connection(c);
      if ((o.hpa === undefined) === (o.vm === undefined || o.gpa === undefined)) throw new ClientError('hvsim: give --hpa, or --vm and --gpa', 2);
      const body = { kind: o.kind, latent: o.latent ?? false, ...(o.hpa !== undefined ? { hostPhysicalAddress: o.hpa } : { vmId: o.vm, guestPhysicalAddress: o.gpa }) };
      const e = await call(conn.api.POST('/v1/hosts/{id}/memory-errors', { params: { path: { id: host } }, body }));
      print(conn.json, e, [e], [['ID', (x) => x.id], ['FRAME', (x) => x.frame], ['KIND', (x) => x.kind], ['STATE', (x) => x.state], ['HIT', (x) => x.hit.type]]);
    });
  return program;
}
