/**
 * Small guest programs shared by tests (assembled with hvsim's own assembler, so no toolchain is
 * needed).
 */
import { readFileSync } from 'node:fs';
import { assemble } from '../isa/assembler.js';

/** The user address of `pageToucher`'s buffer: the page after its .data page. */
export const TOUCHER_BUFFER_VA = 0x12000;

/**
 * Reads and writes one word of its page-aligned buffer (at TOUCHER_BUFFER_VA) in a loop, printing
 * `tag` and a newline every 200,000 rounds, `n` times, then exits 0.
 */
export function pageToucher(tag: string, n: number): Uint8Array {
  return assemble(`
.globl _start
.text
_start:
  li s2, ${n}
1:
  li s3, 200000
2:
  la t0, buf
  lw t1, 0(t0)
  addi t1, t1, 1
  sw t1, 0(t0)
  addi s3, s3, -1
  bnez s3, 2b
  li a0, 1
  la a1, msg
  li a2, 2
  li a7, 64
  ecall
  addi s2, s2, -1
  bnez s2, 1b
  li a0, 0
  li a7, 93
  ecall
.data
msg: .ascii "${tag}\\n"
.bss
.align 12
buf: .space 4096
`).elf;
}

/** The built-in workloads' library (print, print_hex, ...): programs here call it and are assembled with it, as the built-ins are. */
const LIB = readFileSync(new URL('../../workloads/lib.s', import.meta.url), 'utf8');
const withLib = (source: string): Uint8Array => assemble(source + '\n' + LIB).elf;

/** The line pipeProducer writes (32 bytes). */
export const PRODUCER_LINE = 'abcdefghijklmnopqrstuvwxyz0123\n';

/** Writes `n` lines "abcdefghijklmnopqrstuvwxyz0123\n" (32 bytes) to fd 1, then exits 0. */
export const pipeProducer = (n: number): Uint8Array => withLib(pipeProducerSource(n));

/** The assembly source of pipeProducer (workloads/src/pipewriter.s is made from it). */
export const pipeProducerSource = (n: number): string => `
.globl _start
.text
_start:
  li s0, ${n}
1:
  li a0, 1
  la a1, line
  li a2, 32
  li a7, 64
  ecall
  addi s0, s0, -1
  bnez s0, 1b
  li a0, 0
  li a7, 93
  ecall
.data
line: .ascii "${PRODUCER_LINE.replace('\n', '\\n')}"
`;

/** Reads fd 0 in 100-byte chunks, counts bytes and the sum of bytes, prints "<count> <sum>\\n" (hex) and exits 0 at EOF. */
/** The assembly source of pipeConsumer (workloads/src/pipereader.s is made from it). */
export const PIPE_CONSUMER_SOURCE = `
.globl _start
.text
_start:
  li s0, 0
  li s1, 0
1:
  li a0, 0
  la a1, buf
  li a2, 100
  li a7, 63
  ecall
  blez a0, 3f
  add s0, s0, a0
  la t0, buf
  add t1, t0, a0
2:
  lbu t2, 0(t0)
  add s1, s1, t2
  addi t0, t0, 1
  bne t0, t1, 2b
  j 1b
3:
  mv a0, s0
  call print_hex
  mv a0, s1
  call print_hex
  li a0, 0
  li a7, 93
  ecall
.bss
buf: .space 128
`;
export const pipeConsumer: Uint8Array = withLib(PIPE_CONSUMER_SOURCE);

/**
 * One syscall of a mix: its number, the instructions that set its arguments (s3 is an fd of
 * /dev/zero, s4 a scratch buffer), and whether its result depends on the machine (a pid, the
 * break): those are left out of the printed sum, so qemu-riscv32 prints the same.
 */
const MIX_CALLS: Record<string, { nr: number; args: string; local?: true }> = {
  getpid: { nr: 172, args: '', local: true },
  gettid: { nr: 178, args: '', local: true },
  writeZero: { nr: 64, args: 'mv a0, s3\n  mv a1, s4\n  li a2, 8' },
  readZero: { nr: 63, args: 'mv a0, s3\n  mv a1, s4\n  li a2, 8' },
  yield: { nr: 124, args: '' },
  clock: { nr: 403, args: 'li a0, 1\n  mv a1, s4' },
  uname: { nr: 160, args: 'mv a0, s4' },
  getrandom: { nr: 278, args: 'mv a0, s4\n  li a1, 4\n  li a2, 0' },
  brk: { nr: 214, args: 'li a0, 0', local: true },
  tid: { nr: 96, args: 'li a0, 0', local: true },
  fstat: { nr: 80, args: 'mv a0, s3\n  mv a1, s4' },
  ioctl: { nr: 29, args: 'mv a0, s3\n  li a1, 0x5401\n  mv a2, s4' },
  fcntl: { nr: 25, args: 'mv a0, s3\n  li a1, 3' },
  lseek: { nr: 62, args: 'mv a0, s3\n  li a1, 0\n  li a2, 0\n  mv a3, s4\n  li a4, 0' },
  writeErr: { nr: 64, args: 'li a0, 2\n  la a1, hexdigits\n  li a2, 1' },
  readvZero: { nr: 65, args: 'mv a0, s3\n  la a1, iov\n  li a2, 1' },
};

/**
 * `rounds` rounds of syscalls, `mix` giving how many of each per round (in order), with /dev/zero
 * open as s3; adds up every result and prints it as 8 hex digits and a newline at the end; exits 0.
 * The skewed default: 90 % of the calls go to four numbers, the rest to ten others.
 */
export function syscallMix(rounds: number, mix: Array<[keyof typeof MIX_CALLS, number]> = SKEWED_MIX): Uint8Array {
  return withLib(syscallMixSource(rounds, mix));
}

/** The assembly source of `syscallMix` (workloads/src/skewedmix.s and filewrites.s are made from it). */
export function syscallMixSource(rounds: number, mix: Array<[keyof typeof MIX_CALLS, number]> = SKEWED_MIX): string {
  const body = mix.map(([name, n]) => {
    const c = MIX_CALLS[name];
    return Array.from({ length: n }, () => `  ${c.args ? c.args + '\n  ' : ''}li a7, ${c.nr}\n  ecall${c.local ? '' : '\n  add s5, s5, a0'}`).join('\n');
  }).join('\n');
  return `
.globl _start
.text
_start:
  li a0, -100
  la a1, path
  li a2, 2
  li a7, 56
  ecall
  mv s3, a0
  la s4, scratch
  li s5, 0
  li s0, ${rounds}
1:
${body}
  addi s0, s0, -1
  beqz s0, 2f
  j 1b
2:
  mv a0, s5
  call print_hex
  li a0, 0
  li a7, 93
  ecall
.data
path: .asciz "/dev/zero"
.align 2
iov: .word scratch, 16
.bss
scratch: .space 512
`;
}

export const SKEWED_MIX: Array<[keyof typeof MIX_CALLS, number]> = [
  ['getpid', 40], ['writeZero', 25], ['readZero', 15], ['gettid', 10],
  ['yield', 1], ['clock', 1], ['uname', 1], ['getrandom', 1], ['brk', 1], ['tid', 1], ['fstat', 1], ['ioctl', 1], ['fcntl', 1], ['lseek', 1],
];

/**
 * Branch target injection's attacker: an indirect call at the user address whose low 16 bits are
 * those of `victimSite` (a kernel indirect call: the BTB keeps 16-bit tags, so the two alias),
 * to `gadget` (a kernel address). The call trains the BTB entry; the fetch at the gadget then
 * faults (user mode cannot execute kernel pages) and the attacker dies of SIGSEGV, having left
 * the gadget in the entry the victim's kernel call will be predicted from.
 */
export function btiAttacker(victimSite: number, gadget: number): { elf: Uint8Array; trainAt: number } {
  const at = 0x1_0000 + (victimSite & 0xffff);
  const r = assemble(btiAttackerSource(victimSite, gadget));
  const trainAt = r.symbols.get('train')!;
  if (trainAt !== at) throw new Error(`attacker's jump is at 0x${trainAt.toString(16)}, not 0x${at.toString(16)}`);
  return { elf: r.elf, trainAt };
}

/** The assembly source of btiAttacker (workloads/src/btiattacker.s is made from it with the kernel text's call_site and gadget). */
export const btiAttackerSource = (victimSite: number, gadget: number): string => `
.option norvc
.globl _start
.text
_start:
  li t2, ${gadget | 0}
  j train
  .skip ${(victimSite & 0xffff) - 12}
train:
  jalr ra, 0(t2)
`;

/** `n` getpid calls in a loop, one write of `msg` to stdout, exit(`code`) (also branch target injection's victim). */
export const getpidsThenPrint = (n: number, msg = 'ok\n', code = 7): Uint8Array => assemble(getpidsThenPrintSource(n, msg, code)).elf;

/** The assembly source of getpidsThenPrint (workloads/src/btivictim.s is made from it). */
export const getpidsThenPrintSource = (n: number, msg = 'ok\n', code = 7): string => `
.globl _start
.text
_start:
  li s0, ${n}
1:
  li a7, 172
  ecall
  addi s0, s0, -1
  bnez s0, 1b
  li a0, 1
  la a1, msg
  li a2, ${msg.length}
  li a7, 64
  ecall
  li a0, ${code}
  li a7, 93
  ecall
.data
msg: .ascii "${msg.replace(/\n/g, '\\n')}"
`;
