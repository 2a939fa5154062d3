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
  call hex
  mv a0, s1
  call hex
  li a0, 0
  li a7, 93
  ecall
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
