# btivictim: 50 getpid calls, then prints "victim ok" and exits 0 (branch target injection's victim)
# Generated from src/testing/guest-programs.ts (getpidsThenPrintSource(50, 'victim ok\n', 0)).

.globl _start
.text
_start:
  li s0, 50
1:
  li a7, 172
  ecall
  addi s0, s0, -1
  bnez s0, 1b
  li a0, 1
  la a1, msg
  li a2, 10
  li a7, 64
  ecall
  li a0, 0
  li a7, 93
  ecall
.data
msg: .ascii "victim ok\n"
