/**
 * Built-in workloads: RV32 assembly programs in workloads/src (each assembled together with
 * workloads/lib.s), shipped as ELFs in workloads/bin so nothing needs a cross-compiler at run
 * time. `npm run workloads` rebuilds the ELFs; a test checks that the committed ones match.
 * A workload runs one or more of these images as the processes of a VM.
 */
import { readFileSync } from 'node:fs';
import { assemble } from '../isa/assembler.js';

/** The package root (this file is src/runtime/*.ts or dist/runtime/*.js). */
const ROOT = new URL('../../', import.meta.url);

export interface BuiltinImage {
  name: string;
  description: string;
  /** Uses hvsim's own syscalls, so qemu-riscv32 cannot be its oracle: why. */
  hvsimOnly?: string;
}

export interface Workload {
  name: string;
  description: string;
  vcpus: number;
  /** A process may read (stdin) or write (stdout) a named pipe between the workload's processes. */
  processes: Array<{ image: string; argv: string[]; stdinPipe?: string; stdoutPipe?: string }>;
  /** Empty disks the VM gets, sizes in MiB (/dev/vda first). */
  disks?: number[];
}

export const BUILTIN_IMAGES: readonly BuiltinImage[] = [
  { name: 'hello', description: 'prints a greeting and exits 0' },
  { name: 'cpu', description: 'CPU-bound: bitwise CRC-32 over a 16 KiB buffer, argv[1] rounds (default 8); almost no syscalls' },
  { name: 'syscalls', description: 'syscall-heavy: argv[1] iterations (default 2000) of getpid, clock_gettime64 and sched_yield with ALU work between' },
  { name: 'console', description: 'console-bound: argv[1] numbered lines (default 500), two writes each (one doorbell MMIO exit per write)' },
  { name: 'memtouch', description: 'memory toucher: maps argv[1] MiB (default 8) and dirties every 64-byte line argv[2] times (default 4), sleeping argv[3] ms (default 0) after the first pass' },
  { name: 'pmcounter', description: 'technique 6 (hvsim only): argv[1] times (default 100) increments the privileged mode\'s protected counter through an SBI hypercall, checking it only grows; then a MAC under the sealed key and a read of the key outside the mode (faults, reads ffffffff)',
    hvsimOnly: 'syscalls 500-502 are hvsim\'s privileged-mode calls (technique 6); qemu-riscv32 returns -ENOSYS for them' },
  { name: 'filewrites', description: 'indirect-call heavy: 4,000 rounds of small writes, reads and readv on /dev/zero and 1-byte writes to stderr (techniques 2 and 4)' },
  { name: 'skewedmix', description: 'a skewed syscall mix: 1,000 rounds of 100 syscalls, 90 % of them getpid, write, read and gettid (technique 4)' },
  { name: 'pipewriter', description: 'writes 20,000 lines of 32 bytes to stdout' },
  { name: 'pipereader', description: 'reads stdin to its end in 100-byte chunks; prints the byte count and sum' },
  { name: 'blockio', description: 'block-I/O bound: writes argv[1] MiB (default 4) to /dev/vda (or the file argv[2]) in 64 KiB writes, fsyncs, reads it back and checks every word; prints the byte counts, a checksum and the mismatches (two virtio-blk requests, one notify MMIO exit each, per call)' },
  { name: 'btiattacker', description: 'branch target injection\'s attacker: trains the shared BTB entry of the guest kernel\'s syscall-table call with the kernel\'s gadget, then dies of SIGSEGV (run it before btivictim on one vCPU: the bti workload)',
    hvsimOnly: 'its jump aliases a branch of hvsim\'s guest kernel; under qemu-riscv32 it only faults' },
  { name: 'btivictim', description: 'branch target injection\'s victim: 50 getpid calls, then prints "victim ok" and exits 0' },
];

/** Disks (MiB) a built-in image needs when it runs as a workload of its own. */
const IMAGE_DISKS: Readonly<Record<string, number[]>> = { blockio: [4] };

export const WORKLOADS: readonly Workload[] = [
  ...BUILTIN_IMAGES.map((i) => ({
    name: i.name, description: i.description, vcpus: 1, processes: [{ image: i.name, argv: [i.name] }],
    ...(IMAGE_DISKS[i.name] ? { disks: IMAGE_DISKS[i.name] } : {}),
  })),
  {
    name: 'mix', description: 'multi-process mix on 2 vCPUs: cpu, syscalls, memtouch and hello at once',
    vcpus: 2,
    processes: [
      { image: 'cpu', argv: ['cpu', '4'] }, { image: 'syscalls', argv: ['syscalls', '1000'] },
      { image: 'memtouch', argv: ['memtouch', '4', '2'] }, { image: 'hello', argv: ['hello'] },
    ],
  },
  {
    name: 'privileged', description: 'technique 6 on 4 vCPUs: pmcounter on every vCPU at once, each entering the privileged mode 100 times',
    vcpus: 4,
    processes: [0, 1, 2, 3].map(() => ({ image: 'pmcounter', argv: ['pmcounter', '100'] })),
  },
  {
    name: 'bti', description: 'btiattacker then btivictim on one vCPU: with spectreV2Mitigation none the victim\'s first syscall is speculated to the kernel\'s gadget (a vm.speculative-gadget-reach event); never with retpoline or the trampolines',
    vcpus: 1,
    processes: [{ image: 'btiattacker', argv: ['btiattacker'] }, { image: 'btivictim', argv: ['btivictim'] }],
  },
  {
    name: 'pipeline', description: 'pipewriter | pipereader: two processes with different hot file methods (technique 2)',
    vcpus: 1,
    processes: [{ image: 'pipewriter', argv: ['pipewriter'], stdoutPipe: 'p' }, { image: 'pipereader', argv: ['pipereader'], stdinPipe: 'p' }],
  },
];

/** The assembly source of a built-in image: its file followed by the shared library. */
export function builtinSource(name: string): string {
  return readFileSync(new URL(`workloads/src/${name}.s`, ROOT), 'utf8') + '\n' + readFileSync(new URL('workloads/lib.s', ROOT), 'utf8');
}

/** Assembles a built-in image from source (what `npm run workloads` writes to workloads/bin). */
export function buildBuiltin(name: string): Uint8Array {
  return assemble(builtinSource(name), { fileName: `workloads/src/${name}.s` }).elf;
}

/** The committed ELF of a built-in image. Raises: Error for an unknown name. */
export function builtinElf(name: string): Uint8Array {
  if (!BUILTIN_IMAGES.some((i) => i.name === name)) throw new Error(`unknown built-in image ${name}`);
  return new Uint8Array(readFileSync(new URL(`workloads/bin/${name}.elf`, ROOT)));
}
