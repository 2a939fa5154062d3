/**
 * Option declarations shared by the local commands. This module is loaded for every hvsim
 * invocation, so it imports nothing but commander: the emulator is loaded by a command's action.
 */
import { Command, Option } from 'commander';
import { CliError } from './cli-error.js';

/** An integer option value in [min, max]. Raises: CliError naming the option. */
export function intOption(cmd: string, name: string, v: string | undefined, min: number, max: number): number {
  const n = Number(v);
  if (v === undefined || v.trim() === '' || !Number.isInteger(n) || n < min || n > max) throw new CliError(`${cmd}: ${name} needs an integer from ${min} to ${max}, got ${v ?? 'nothing'}`);
  return n;
}

/** Appends a repeated option's values. */
export const collect = (v: string, prev: string[]) => [...prev, v];

/** The VM spec as given on the command line (absent fields take the defaults). */
export interface VmOptions {
  vcpus?: number;
  memoryMib?: number;
  seed?: number;
  engine?: 'interp' | 'jit' | 'wasm';
  spectreV2?: 'none' | 'retpoline';
  crossing?: 'none' | 'kpti';
  /** `--domain` values (technique 7), parsed by parseDomains when the command runs. */
  domain?: string[];
  /** `--disk` sizes in MiB: one empty disk each (/dev/vda first). */
  disk?: number[];
}

/** Declares the VM spec options of `run` and `experiment`. */
export function addVmOptions(cmd: Command): Command {
  const name = cmd.name();
  return cmd
    .option('--vcpus <n>', 'virtual CPUs, 1-16 (default 1)', (v) => intOption(name, '--vcpus', v, 1, 16))
    .option('--memory-mib <m>', 'guest memory in MiB, 8-2047 (default 64)', (v) => intOption(name, '--memory-mib', v, 8, 2047))
    .option('--seed <n>', 'seed of everything random in the VM, 0-4294967295 (default 1)', (v) => intOption(name, '--seed', v, 0, 2 ** 32 - 1))
    .addOption(new Option('--engine <engine>', 'execution engine (default wasm: hot pages compiled to WebAssembly; jit: to JavaScript; interp: the interpreter)').choices(['interp', 'jit', 'wasm']))
    .addOption(new Option('--spectre-v2 <mitigation>', 'Spectre-v2 mitigation of the guest kernel (default none)').choices(['none', 'retpoline']))
    .addOption(new Option('--crossing <preset>', 'privilege-crossing cost preset (default none)').choices(['none', 'kpti']))
    .option('--disk <mib>', 'an empty disk of MiB, 1-1024, the guest\'s /dev/vda, /dev/vdb... (repeatable, at most 8)', (v, prev: number[]) => [...prev, intOption(name, '--disk', v, 1, 1024)], [])
    .option('--domain <domain>', 'a protection domain (technique 7): keystore, or NAME=FILE:ENTRY[,ENTRY...][:KIB] (repeatable; needs --vcpus 1)', collect, []);
}
