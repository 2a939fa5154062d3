# cpu: CPU-bound. CRC-32 (bitwise, reflected, polynomial 0xedb88320) over a 16 KiB buffer,
# ROUNDS times (argv[1], default 8), chaining the CRC; prints it in hex. Almost no syscalls.
.globl _start
.text
_start:
  mv a0, sp
  li a1, 1
  li a2, 8
  call arg_uint
  mv s0, a0                 # rounds
  la s1, buffer
  li t0, 0                  # fill buffer[i] = i * 131 + 7
  li t1, 16384
2:
  li t2, 131
  mul t2, t0, t2
  addi t2, t2, 7
  add t3, s1, t0
  sb t2, 0(t3)
  addi t0, t0, 1
  bne t0, t1, 2b
  li s2, -1                 # crc
  li s4, 0xedb88320
round:
  beqz s0, done
  li t0, 0
byte:
  add t3, s1, t0
  lbu t2, 0(t3)
  xor s2, s2, t2
  li t4, 8
bit:
  andi t5, s2, 1
  srli s2, s2, 1
  beqz t5, 3f
  xor s2, s2, s4
3:
  addi t4, t4, -1
  bnez t4, bit
  addi t0, t0, 1
  li t1, 16384
  bne t0, t1, byte
  addi s0, s0, -1
  j round
done:
  not a0, s2
  call print_hex
  li a0, 0
  j exit
.bss
buffer: .space 16384
.text
