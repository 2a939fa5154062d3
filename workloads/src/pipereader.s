# pipereader: reads stdin to its end in 100-byte chunks; prints the byte count and byte sum in hex
# Generated from src/testing/guest-programs.ts (PIPE_CONSUMER_SOURCE); the tests use the generator with other sizes.

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
