# hello: prints a greeting and exits 0.
.globl _start
.text
_start:
  la a0, msg
  li a1, 18
  call print
  li a0, 0
  j exit
.section .rodata
msg: .ascii "Hello from hvsim!\n"
.text
