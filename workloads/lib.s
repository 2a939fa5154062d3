# Shared routines of the built-in workloads (appended to every workload source by build.mjs).
.text
# Linux RV32 ABI; each routine clobbers only a0-a7 and t0-t6.

# print(a0 = address, a1 = length) -> stdout
print:
  mv a2, a1
  mv a1, a0
  li a0, 1
  li a7, 64
  ecall
  ret

# print_hex(a0 = value): eight hex digits and a newline
print_hex:
  la t0, hexbuf
  li t1, 28
1:
  srl t2, a0, t1
  andi t2, t2, 15
  la t3, hexdigits
  add t3, t3, t2
  lbu t3, 0(t3)
  sb t3, 0(t0)
  addi t0, t0, 1
  addi t1, t1, -4
  bgez t1, 1b
  li t3, 10
  sb t3, 0(t0)
  la a0, hexbuf
  li a1, 9
  j print

# parse_uint(a0 = C string or 0, a1 = default) -> a0: the decimal number, or the default
parse_uint:
  beqz a0, 2f
  li t0, 0
  li t2, 10
  lbu t1, 0(a0)
  beqz t1, 2f
1:
  lbu t1, 0(a0)
  beqz t1, 3f
  addi t1, t1, -48
  bltu t1, t2, 4f
  j 2f
4:
  mul t0, t0, t2
  add t0, t0, t1
  addi a0, a0, 1
  j 1b
3:
  mv a0, t0
  ret
2:
  mv a0, a1
  ret

# arg_uint(a0 = sp at _start, a1 = argument index, a2 = default) -> a0: argv[a1] as a decimal
# number, or the default when there is no such argument
arg_uint:
  lw t0, 0(a0)
  bge a1, t0, 1f
  slli t1, a1, 2
  add t1, t1, a0
  lw a0, 4(t1)
  mv a1, a2
  j parse_uint
1:
  mv a0, a2
  ret

# exit(a0 = status)
exit:
  li a7, 93
  ecall

.section .rodata
hexdigits: .ascii "0123456789abcdef"
.data
hexbuf: .space 9
.text
