/**
 * Small guest programs shared by tests (assembled with hvsim's own assembler, so no toolchain is
 * needed).
 */
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

/** The line pipeProducer writes (32 bytes). */
export const PRODUCER_LINE = 'abcdefghijklmnopqrstuvwxyz0123\n';

/** Writes `n` lines "abcdefghijklmnopqrstuvwxyz0123\n" (32 bytes) to fd 1, then exits 0. */
export const pipeProducer = (n: number): Uint8Array => assemble(`
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
`).elf;

/** Reads fd 0 in 100-byte chunks, counts bytes and the sum of bytes, prints "<count> <sum>\\n" (hex) and exits 0 at EOF. */
export const pipeConsumer: Uint8Array = assemble(`
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
  call hex
  mv a0, s1
  call hex
  li a0, 0
  li a7, 93
  ecall
# prints a0 as 8 hex digits and a space or newline
hex:
  la t0, out
  li t1, 28
4:
  srl t2, a0, t1
  andi t2, t2, 15
  la t3, digits
  add t3, t3, t2
  lbu t3, 0(t3)
  sb t3, 0(t0)
  addi t0, t0, 1
  addi t1, t1, -4
  bgez t1, 4b
  li t2, 10
  sb t2, 0(t0)
  li a0, 1
  la a1, out
  li a2, 9
  li a7, 64
  ecall
  ret
.data
digits: .ascii "0123456789abcdef"
.bss
out: .space 16
buf: .space 128
`).elf;
