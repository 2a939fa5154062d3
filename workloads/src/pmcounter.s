# pmcounter: technique 6's built-in workload (hvsim only: syscalls 500-502 are hvsim's own, so
# under qemu-riscv32 they return -ENOSYS). ITERATIONS (argv[1], default 100) times: increment the
# privileged mode's protected counter (syscall 500, function 0: an SBI hypercall into the mode)
# and check that every value this process sees is larger than the one before; sched_yield
# between, so the processes on the other vCPUs interleave. Then it asks the mode for a MAC of
# 0x12345678 under the sealed key (function 2) and tries to read the sealed key directly
# (syscall 501, outside the mode: the access faults and reads all ones). Prints the iterations,
# the number of non-increasing values (0), the probe's result (ffffffff) and exits 0.
.globl _start
.text
_start:
  mv a0, sp
  li a1, 1
  li a2, 100
  call arg_uint
  mv s0, a0                 # iterations left
  mv s3, a0
  li s1, 0                  # last value seen
  li s2, 0                  # values that did not increase
loop:
  beqz s0, done
  li a0, 0                  # COUNTER_INCREMENT
  li a1, 0
  li a7, 500
  ecall
  bltu s1, a0, 1f
  addi s2, s2, 1
1:
  mv s1, a0
  li a7, 124                # sched_yield
  ecall
  addi s0, s0, -1
  j loop
done:
  li a0, 2                  # SEAL
  li a1, 0x12345678
  li a7, 500
  ecall
  mv s4, a0
  li a7, 501                # read the sealed key outside the mode
  ecall
  mv s5, a0
  mv a0, s3
  call print_hex
  mv a0, s2
  call print_hex
  mv a0, s5
  call print_hex
  li a0, 0
  j exit
