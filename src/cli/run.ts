/**
 * `hvsim run FILE [options] [-- ARGS...]` (DESIGN.md section 7): runs FILE as the single process
 * of a fresh in-process VM, with no server or database. Guest stdout/stderr go byte for byte to
 * ours, guest stdin is ours (read to the end first; empty when stdin is a terminal), and the exit
 * status is the guest's, or 128 + signal. A VM that crashes exits 70 with one line saying why; one
 * stopped by --max-instructions exits 124.
 */
import { readFileSync, writeFileSync, writeSync, fstatSync } from 'node:fs';
import { runProgram } from '../runtime/run-program.js';
import { resolveTechniques } from '../techniques/catalogue.js';
import { Command } from './cli-error.js';
import { intArg, loadProgram, parseTechniqueAssignments, parseVmOptions, VM_OPTIONS_USAGE } from './vm-options.js';

const USAGE = `hvsim run FILE ${VM_OPTIONS_USAGE} [--technique NAME=on|off|NAME.PARAM=VALUE ...] [--stats FILE.json] [--max-instructions N] [-- ARGS...]`;

/** The whole of our stdin for the guest; empty when stdin is a terminal. */
export function readStdin(): Uint8Array {
  try {
    if (fstatSync(0).isCharacterDevice()) return new Uint8Array();
    return new Uint8Array(readFileSync(0));
  } catch {
    return new Uint8Array();
  }
}

export const runCommand: Command = {
  name: 'run',
  summary: 'run a static RV32 ELF (or .s/.S assembly) as the only process of an in-process VM, like qemu-riscv32',
  usage: USAGE,
  async run(args) {
    const o = parseVmOptions('run', USAGE, args, ['--technique', '--stats', '--max-instructions']);
    const file = o.file!;
    const stats = o.rest.find(([k]) => k === '--stats')?.[1];
    const maxArg = o.rest.find(([k]) => k === '--max-instructions')?.[1];
    const maxInstructions = maxArg === undefined ? undefined : intArg('run', '--max-instructions', maxArg, 1, Number.MAX_SAFE_INTEGER);
    const techniques = resolveTechniques(parseTechniqueAssignments('run', o.rest.filter(([k]) => k === '--technique').map(([, v]) => v!)));
    const bytes = loadProgram('run', file);
    const guestArgs = o.guestArgs;
    const r = runProgram(bytes, {
      ...o.spec, techniques, argv: [file, ...guestArgs], env: Object.entries(process.env).map(([k, v]) => `${k}=${v}`), stdin: readStdin(), maxInstructions,
      onOutput: (port, b) => { writeSync(port === 0 ? 1 : 2, b); },
    });
    if (stats) {
      const c = r.counters;
      writeFileSync(stats, JSON.stringify({
        instructions: c.instructions, cycles: c.cycles, crossings: c.crossings, exits: c.exits, syscalls: c.syscalls,
        tlbMisses: c.tlbMisses, branchMispredicts: c.branchMispredicts, wallMs: Math.round(r.wallMs * 1000) / 1000,
        transitions: c.transitions, enosys: c.enosys, doorbells: c.doorbells, virtualTimeNs: c.virtualTimeNs, syscallLookahead: c.syscallLookahead, callTableInlining: c.callTableInlining, instanceCallInlining: c.instanceCallInlining, speculativeGadgetReaches: c.speculativeGadgetReaches, perVcpu: c.perVcpu,
        state: r.vm.state, reason: r.vm.reason, processes: r.vm.processes(),
      }, null, 2) + '\n');
    }
    if (r.vm.state === 'crashed') {
      process.stderr.write(`hvsim: VM crashed: ${(r.vm.reason ?? '').split('\n')[0]}\n`);
      return 70;
    }
    if (r.vm.reason === 'instruction-limit') {
      process.stderr.write(`hvsim: stopped after --max-instructions ${maxInstructions}\n`);
      return 124;
    }
    return r.status;
  },
};
