/**
 * Child processes of e2e tests: the service started the way a user starts it, with its output
 * captured, and waits that poll for a condition instead of trusting a wall-clock duration.
 */
import { ChildProcess, spawn, SpawnOptions } from 'node:child_process';
import { connect } from 'node:net';

export interface Spawned {
  child: ChildProcess;
  /** Everything written to stdout and stderr so far. */
  output(): string;
  /** The exit code (or signal name) once the process has exited. */
  exited: Promise<number | string | null>;
}

export function spawnCaptured(cmd: string, args: string[], opts: SpawnOptions = {}): Spawned {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
  const exited = new Promise<number | string | null>((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal)));
  return { child, output: () => out, exited };
}

/** Polls `f` every 50 ms until it is truthy; raises after `ms` with `what` and `detail()`. */
export async function pollFor<T>(what: string, f: () => T | undefined | false | Promise<T | undefined | false>, ms: number, detail: () => string = () => ''): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${detail() ? `: ${detail()}` : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The service's URL from its "listening on" line, polled for up to `ms`. */
export function listeningUrl(s: Spawned, ms = 120_000): Promise<string> {
  return pollFor('the listening line', () => /listening on (http:\/\/\S+)/.exec(s.output())?.[1], ms, s.output);
}

/** True when something accepts TCP connections on host:port. */
export function portOpen(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host, port });
    sock.once('connect', () => { sock.destroy(); resolve(true); });
    sock.once('error', () => resolve(false));
  });
}

/** True while a process with this pid exists. */
export function alive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM'; }
}
