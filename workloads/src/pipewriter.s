# pipewriter: writes 20,000 lines of 32 bytes to stdout
# Generated from src/testing/guest-programs.ts (pipeProducerSource(20000)); the tests use the generator with other sizes.

.globl _start
.text
_start:
  li s0, 20000
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
line: .ascii "abcdefghijklmnopqrstuvwxyz0123\n"
