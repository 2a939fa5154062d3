/**
 * RuntimeService without a database: what it tells about a VM whose end has not been recorded
 * (`endStatus`, the overdue-end warning). The VM runs in a real worker.
 */
import { Logger } from '@nestjs/common';
import type { DataSource } from 'typeorm';
import { jest } from '@jest/globals';
import { assemble } from '../isa/assembler.js';
import { HostRuntime } from '../runtime/host-runtime.js';
import { DEFAULT_SPEC, VmSpec } from '../runtime/vm.js';
import { RuntimeService } from './runtime.service.js';
import type { EventsService } from './events.service.js';
import { Metrics } from './observability.js';
import type { Config } from '../config/config.js';

const hello = assemble(`.globl _start\n.text\n_start:\n  li a0, 1\n  la a1, msg\n  li a2, 3\n  li a7, 64\n  ecall\n  li a0, 0\n  li a7, 93\n  ecall\n.data\nmsg: .ascii "hi\\n"\n`).elf;
const spec: VmSpec = { ...DEFAULT_SPEC, memoryMiB: 8, processes: [{ name: 'main', elf: hello, argv: ['main'], env: [], stdin: new Uint8Array() }] };
const config = { retention: { events: 1000, consoleBytes: 1 << 20, countersEverySeconds: 5 } } as unknown as Config;

describe('RuntimeService: a VM whose end is not recorded', () => {
  let svc: RuntimeService;
  let host: HostRuntime;
  beforeEach(() => {
    // No database: the writes these tests reach (the run record, events, the end) go nowhere.
    const ds = { getRepository: () => ({ upsert: async () => undefined }) } as unknown as DataSource;
    svc = new RuntimeService(ds, { tx: async () => undefined } as unknown as EventsService, new Metrics(), config);
    host = new HostRuntime(64);
  });
  afterEach(async () => {
    await svc.beforeApplicationShutdown();
    await host.shutdown();
  });

  test("a worker whose 'final' never reached the service is named, with its state and its update queue", async () => {
    const warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    try {
      // The defect this reports: the VM tracked only after its run had ended and emitted 'final'.
      const runner = await host.startVm('vm-1', spec);
      await runner.done;
      (svc as unknown as { track(t: string, v: string, h: string, r: unknown, at: Date): void }).track('t', 'vm-1', 'h', runner, new Date());
      let release!: () => void;
      const busy = svc.serial('vm-1', () => new Promise<void>((r) => { release = r; }), 'record started');
      await new Promise((r) => setImmediate(r));
      const status = svc.endStatus('vm-1');
      expect(status).toMatchObject({ live: true, booting: false, worker: 'stopped', finalMsAgo: null, ending: null });
      expect(status.queue.map((t) => t.label)).toEqual(['record started']);
      expect(status.queue[0].runningMs).not.toBeNull();
      svc.warnOverdueEnds();
      svc.warnOverdueEnds(); // once a VM
      const lines = warn.mock.calls.map((c) => String(c[0])).filter((m) => m.includes('vm-1'));
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/VM vm-1: its worker has ended \(stopped\) but its final state never reached the service: \{"live":true/);
      release();
      await busy;
      await new Promise((r) => setImmediate(r));
      expect(svc.endStatus('vm-1').queue).toEqual([]);
    } finally {
      warn.mockRestore();
    }
  }, 300_000);

  test("a started VM's end waits behind its queue: the status says so, and after a minute it is logged as overdue", async () => {
    const warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    try {
      let release!: () => void;
      const gate = svc.serial('vm-2', () => new Promise<void>((r) => { release = r; }), 'blocker');
      const runner = await svc.start('t', 'vm-2', { id: 'h', memoryMiB: 64 }, spec);
      expect((await runner.done).state).toBe('stopped');
      await new Promise((r) => setImmediate(r));
      const status = svc.endStatus('vm-2');
      expect(status).toMatchObject({ live: true, worker: 'stopped', ending: 'queued' });
      expect(status.finalMsAgo).toBeGreaterThanOrEqual(0);
      expect(status.queue[0]).toMatchObject({ label: 'blocker' });
      expect(status.queue.at(-1)).toMatchObject({ label: 'end', runningMs: null });
      svc.warnOverdueEnds();
      expect(warn.mock.calls.filter((c) => String(c[0]).includes('vm-2'))).toEqual([]);
      svc.warnOverdueEnds(Date.now() + 61_000);
      const lines = warn.mock.calls.map((c) => String(c[0])).filter((m) => m.includes('vm-2'));
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/VM vm-2: its worker has ended \(stopped\) but its end is not recorded 6\d s later: .*"label":"end"/);
      release();
      await gate;
      await svc.stopVm('vm-2');
      expect(svc.isLive('vm-2')).toBe(false);
    } finally {
      warn.mockRestore();
    }
  }, 300_000);

  test('a VM this service does not run has no queue and no worker', () => {
    expect(svc.endStatus('nothing')).toEqual({ live: false, booting: false, worker: null, finalMsAgo: null, ending: null, queue: [] });
  });
});
