# filewrites: many small file calls of different kinds, 4,000 rounds: writes, reads and readv on /dev/zero, 1-byte writes to stderr; prints the sum of the results
# Generated from src/testing/guest-programs.ts (syscallMixSource(4000, [['writeZero', 4], ['readZero', 3], ['readvZero', 2], ['writeErr', 1]])); the tests use the generator with other sizes.

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
  li s0, 4000
1:
  mv a0, s3
  mv a1, s4
  li a2, 8
  li a7, 64
  ecall
  add s5, s5, a0
  mv a0, s3
  mv a1, s4
  li a2, 8
  li a7, 64
  ecall
  add s5, s5, a0
  mv a0, s3
  mv a1, s4
  li a2, 8
  li a7, 64
  ecall
  add s5, s5, a0
  mv a0, s3
  mv a1, s4
  li a2, 8
  li a7, 64
  ecall
  add s5, s5, a0
  mv a0, s3
  mv a1, s4
  li a2, 8
  li a7, 63
  ecall
  add s5, s5, a0
  mv a0, s3
  mv a1, s4
  li a2, 8
  li a7, 63
  ecall
  add s5, s5, a0
  mv a0, s3
  mv a1, s4
  li a2, 8
  li a7, 63
  ecall
  add s5, s5, a0
  mv a0, s3
  la a1, iov
  li a2, 1
  li a7, 65
  ecall
  add s5, s5, a0
  mv a0, s3
  la a1, iov
  li a2, 1
  li a7, 65
  ecall
  add s5, s5, a0
  li a0, 2
  la a1, hexdigits
  li a2, 1
  li a7, 64
  ecall
  add s5, s5, a0
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
