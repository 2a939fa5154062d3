# memtouch: memory toucher. Maps MIB MiB of anonymous memory (argv[1], default 8) and, ROUNDS
# times (argv[2], default 4), writes one word in every 64-byte line of it and sums what it reads
# back; prints the sum after each round. It keeps dirtying its memory for as long as it runs.
# With argv[3] = PAUSE (milliseconds, default 0) it sleeps that long after the first round, so its
# memory is backed but left alone for a while (clock_nanosleep).
.globl _start
.text
_start:
  mv s5, sp
  mv a0, s5
  li a1, 1
  li a2, 8
  call arg_uint
  slli s0, a0, 20           # bytes
  mv a0, s5
  li a1, 2
  li a2, 4
  call arg_uint
  mv s1, a0                 # rounds
  mv a0, s5
  li a1, 3
  li a2, 0
  call arg_uint
  mv s6, a0                 # pause after round 1, ms
  li a0, 0                  # mmap2(0, bytes, RW, PRIVATE|ANONYMOUS, -1, 0)
  mv a1, s0
  li a2, 3
  li a3, 0x22
  li a4, -1
  li a5, 0
  li a7, 222
  ecall
  bltz a0, fail
  mv s2, a0                 # base
  li s3, 0                  # round
round:
  beq s3, s1, done
  li t0, 0
  li s4, 0                  # sum
line:
  add t1, s2, t0
  add t2, t0, s3
  sw t2, 0(t1)
  lw t3, 0(t1)
  add s4, s4, t3
  addi t0, t0, 64
  bltu t0, s0, line
  mv a0, s4
  call print_hex
  addi s3, s3, 1
  li t0, 1
  bne s3, t0, round
  beqz s6, round
  addi sp, sp, -16          # struct timespec64 {sec, nsec} for clock_nanosleep(MONOTONIC, 0, &ts, 0)
  li t1, 1000
  divu t2, s6, t1
  remu t3, s6, t1
  li t4, 1000000
  mul t3, t3, t4
  sw t2, 0(sp)
  sw zero, 4(sp)
  sw t3, 8(sp)
  sw zero, 12(sp)
  li a0, 1
  li a1, 0
  mv a2, sp
  li a3, 0
  li a7, 407
  ecall
  addi sp, sp, 16
  j round
done:
  li a0, 0
  j exit
fail:
  li a0, 1
  j exit
