# skewedmix: a skewed syscall mix, 1,000 rounds of 100 syscalls (90 % getpid, write, read, gettid; ten others once each); prints the sum of the machine-independent results
# Generated from src/testing/guest-programs.ts (syscallMixSource(1000, SKEWED_MIX)); the tests use the generator with other sizes.

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
  li s0, 1000
1:
  li a7, 172
  ecall
  li a7, 172
  ecall
  li a7, 172
  ecall
  li a7, 172
  ecall
  li a7, 172
  ecall
  li a7, 172
  ecall
  li a7, 172
  ecall
  li a7, 172
  ecall
  li a7, 172
  ecall
  li a7, 172
  ecall
  li a7, 172
  ecall
  li a7, 172
  ecall
  li a7, 172
  ecall
  li a7, 172
  ecall
  li a7, 172
  ecall
  li a7, 172
  ecall
  li a7, 172
  ecall
  li a7, 172
  ecall
  li a7, 172
  ecall
  li a7, 172
  ecall
  li a7, 172
  ecall
  li a7, 172
  ecall
  li a7, 172
  ecall
  li a7, 172
  ecall
  li a7, 172
  ecall
  li a7, 172
  ecall
  li a7, 172
  ecall
  li a7, 172
  ecall
  li a7, 172
  ecall
  li a7, 172
  ecall
  li a7, 172
  ecall
  li a7, 172
  ecall
  li a7, 172
  ecall
  li a7, 172
  ecall
  li a7, 172
  ecall
  li a7, 172
  ecall
  li a7, 172
  ecall
  li a7, 172
  ecall
  li a7, 172
  ecall
  li a7, 172
  ecall
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
  li a7, 178
  ecall
  li a7, 178
  ecall
  li a7, 178
  ecall
  li a7, 178
  ecall
  li a7, 178
  ecall
  li a7, 178
  ecall
  li a7, 178
  ecall
  li a7, 178
  ecall
  li a7, 178
  ecall
  li a7, 178
  ecall
  li a7, 124
  ecall
  add s5, s5, a0
  li a0, 1
  mv a1, s4
  li a7, 403
  ecall
  add s5, s5, a0
  mv a0, s4
  li a7, 160
  ecall
  add s5, s5, a0
  mv a0, s4
  li a1, 4
  li a2, 0
  li a7, 278
  ecall
  add s5, s5, a0
  li a0, 0
  li a7, 214
  ecall
  li a0, 0
  li a7, 96
  ecall
  mv a0, s3
  mv a1, s4
  li a7, 80
  ecall
  add s5, s5, a0
  mv a0, s3
  li a1, 0x5401
  mv a2, s4
  li a7, 29
  ecall
  add s5, s5, a0
  mv a0, s3
  li a1, 3
  li a7, 25
  ecall
  add s5, s5, a0
  mv a0, s3
  li a1, 0
  li a2, 0
  mv a3, s4
  li a4, 0
  li a7, 62
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
