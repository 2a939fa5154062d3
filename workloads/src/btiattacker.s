# btiattacker: branch target injection's attacker. Its jalr at 0x100b8 aliases the guest kernel's
# syscall-table call (call_site, 0xc00000b8: the BTB keeps 16-bit tags) and jumps to the kernel's
# gadget (0xc000026c), training the shared BTB entry; the fetch there faults and it dies of SIGSEGV.
# Generated from src/testing/guest-programs.ts (btiAttackerSource(call_site, gadget) of the kernel text);
# a test checks the addresses are the kernel text's.

.option norvc
.globl _start
.text
_start:
  li t2, -1073741204
  j train
  .skip 172
train:
  jalr ra, 0(t2)
