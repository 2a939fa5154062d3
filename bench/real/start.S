/* hvsim's start file for picolibc programs under the Linux RV32 ABI: gp, argc/argv from the
   initial stack, a 16-byte aligned stack, then __start_c (linux.c). */
.section .text._start
.global _start
_start:
  .option push
  .option norelax
  la gp, __global_pointer$
  .option pop
  lw a0, 0(sp)
  addi a1, sp, 4
  andi sp, sp, -16
  call __start_c
