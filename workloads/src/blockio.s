# blockio: block-I/O bound: writes argv[1] MiB (default 4) to the disk argv[2] (default /dev/vda)
# in 64 KiB writes, fsyncs, seeks back to 0 and reads it back in 64 KiB reads, checking every
# word against what was written; prints the bytes written and read, a checksum (sum of words)
# and the count of mismatched words, and exits 0 (1 when the file cannot be opened or a call
# fails). Each 64 KiB call is two virtio-blk requests (32 KiB each), one QueueNotify MMIO exit each.
.globl _start
.text
_start:
  mv s11, sp
  mv a0, sp
  li a1, 1
  li a2, 4
  call arg_uint
  slli s0, a0, 4              # s0 = 64 KiB chunks
  lw t0, 0(s11)
  la a1, path
  li t1, 3
  blt t0, t1, 1f
  lw a1, 12(s11)              # argv[2]
1:
  li a0, -100
  li a2, 2                    # O_RDWR
  li a7, 56                   # openat
  ecall
  bltz a0, fail
  mv s1, a0                   # s1 = fd
  # Write chunk k: word j of it is (k << 16) + j, scrambled.
  li s2, 0                    # k
  li s3, 0                    # bytes written
2:
  beq s2, s0, 4f
  la t0, buf
  li t1, 0
  li t2, 16384
  li t4, 0x9e3779b1
3:
  slli t3, s2, 16
  add t3, t3, t1
  mul t3, t3, t4
  sw t3, 0(t0)
  addi t0, t0, 4
  addi t1, t1, 1
  bne t1, t2, 3b
  mv a0, s1
  la a1, buf
  li a2, 65536
  li a7, 64                   # write
  ecall
  li t0, 65536
  bne a0, t0, fail
  add s3, s3, a0
  addi s2, s2, 1
  j 2b
4:
  mv a0, s1
  li a7, 82                   # fsync
  ecall
  bnez a0, fail
  mv a0, s1
  li a1, 0
  li a2, 0
  la a3, result
  li a4, 0                    # SEEK_SET
  li a7, 62                   # llseek
  ecall
  bnez a0, fail
  li s2, 0                    # k
  li s4, 0                    # bytes read
  li s5, 0                    # checksum
  li s6, 0                    # mismatches
5:
  beq s2, s0, 7f
  mv a0, s1
  la a1, buf
  li a2, 65536
  li a7, 63                   # read
  ecall
  li t0, 65536
  bne a0, t0, fail
  add s4, s4, a0
  la t0, buf
  li t1, 0
  li t2, 16384
  li t4, 0x9e3779b1
6:
  lw t5, 0(t0)
  add s5, s5, t5
  slli t3, s2, 16
  add t3, t3, t1
  mul t3, t3, t4
  beq t3, t5, 8f
  addi s6, s6, 1
8:
  addi t0, t0, 4
  addi t1, t1, 1
  bne t1, t2, 6b
  addi s2, s2, 1
  j 5b
7:
  la a0, m_written
  li a1, 8
  call print
  mv a0, s3
  call print_hex
  la a0, m_read
  li a1, 5
  call print
  mv a0, s4
  call print_hex
  la a0, m_sum
  li a1, 9
  call print
  mv a0, s5
  call print_hex
  la a0, m_bad
  li a1, 11
  call print
  mv a0, s6
  call print_hex
  li a0, 0
  j exit
fail:
  la a0, m_fail
  li a1, 7
  call print
  li a0, 1
  j exit
.section .rodata
path: .asciz "/dev/vda"
m_written: .ascii "written "
m_read: .ascii "read "
m_sum: .ascii "checksum "
m_bad: .ascii "mismatches "
m_fail: .ascii "failed\n"
.data
.p2align 3
result: .space 8
.bss
.p2align 12
buf: .space 65536
