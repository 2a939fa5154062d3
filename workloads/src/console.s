# console: prints argv[1] numbered lines (default 500), two writes each: console-bound (one
# doorbell MMIO exit per write), exits 0.
.globl _start
.text
_start:
  mv a0, sp
  li a1, 1
  li a2, 500
  call arg_uint
  mv s0, a0
  li s1, 0
1:
  beq s1, s0, 2f
  la a0, line
  li a1, 7
  call print
  mv a0, s1
  call print_hex
  addi s1, s1, 1
  j 1b
2:
  li a0, 0
  j exit
.section .rodata
line: .ascii "line 0x"
