# syscalls: syscall-heavy. ITERATIONS (argv[1], default 2000) times: getpid, a little ALU work,
# clock_gettime64, sched_yield; every 500 iterations a line of output. Prints the number of
# iterations and a checksum at the end (independent of the pid, so qemu-riscv32 prints the same).
.globl _start
.text
_start:
  mv a0, sp
  li a1, 1
  li a2, 2000
  call arg_uint
  mv s0, a0                 # iterations left
  mv s3, a0
  li s1, 0                  # checksum
  li a7, 172
  ecall
  mv s4, a0                 # our pid
loop:
  beqz s0, done
  li a7, 172                # getpid
  ecall
  sub a0, a0, s4
  slli t0, s1, 5
  add s1, t0, s1
  add s1, s1, a0
  addi s1, s1, 1
  la a1, ts
  li a0, 1                  # CLOCK_MONOTONIC
  li a7, 403                # clock_gettime64
  ecall
  li a7, 124                # sched_yield
  ecall
  addi s0, s0, -1
  li t0, 500
  remu t1, s0, t0
  bnez t1, loop
  la a0, tick
  li a1, 5
  call print
  j loop
done:
  mv a0, s3
  call print_hex
  mv a0, s1
  call print_hex
  li a0, 0
  j exit
.section .rodata
tick: .ascii "tick\n"
.data
.align 3
ts: .space 16
.text
