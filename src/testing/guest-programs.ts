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
