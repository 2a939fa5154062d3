# keystore: the built-in secure protection domain (technique 7). Its 32-byte key lives only in
# this domain's private memory: the KHV writes it into `domain_secret` when it builds the domain
# (derived from the VM seed), and no gate ever returns it. Gates (entry points), called with
# `dgate` from the root domain after it registered a shared buffer page (DGATE_SHARE):
#   ks_seal(a0 = len, a1 = nonce)    encrypts shared[0, len) in place and appends a 4-byte tag;
#                                    returns len + 4, or -22 (EINVAL) for len > 4092
#   ks_unseal(a0 = len, a1 = nonce)  checks the tag of shared[0, len) and decrypts in place;
#                                    returns len - 4, -74 (EBADMSG) for a wrong tag, -22 for a bad len
#   ks_sign(a0 = len, a1 = nonce)    returns a 32-bit MAC of shared[0, len) (not modified)
# The cipher is a keystream of a keyed 32-bit mixer (lowbias32) - a model of a sealing service,
# not cryptography. Domain layout (hypervisor/domains.ts): the shared page at 0x3ff000, the
# stack below it. Entry stubs save the caller's sp and ra on the domain stack and scrub every
# temporary register before returning with `dgate` (x[rs1] = -1).
.equ SHARED, 0x3ff000
.equ STACK_TOP, 0x3ff000
.equ MAXLEN, 4092
.globl _start
.text
_start:                       # not a gate: registering it faults (illegal instruction)
  unimp

.globl ks_seal
ks_seal:
  la t0, do_seal
  j enter
.globl ks_unseal
ks_unseal:
  la t0, do_unseal
  j enter
.globl ks_sign
ks_sign:
  la t0, do_sign
  j enter

# enter: t0 = the operation; switches to the domain stack and jumps to it, which ends at `leave`
# with the result in a0; leave scrubs and returns to the caller.
enter:
  mv t1, sp
  li sp, STACK_TOP
  addi sp, sp, -16
  sw t1, 0(sp)
  sw ra, 4(sp)
  jr t0
bad:
  li a0, -22
  j leave
badmsg:
  li a0, -74
leave:
  lw ra, 4(sp)
  lw t1, 0(sp)
  li a1, 0
  li a2, 0
  li a3, 0
  li a4, 0
  li a5, 0
  li a6, 0
  li a7, 0
  li t2, 0
  li t3, 0
  li t4, 0
  li t5, 0
  li t6, 0
  mv sp, t1
  li t1, 0
  li t0, -1
  dgate t0

# mix(a0) -> a0: lowbias32; clobbers t6.
mix:
  srli t6, a0, 16
  xor a0, a0, t6
  li t6, 0x7feb352d
  mul a0, a0, t6
  srli t6, a0, 15
  xor a0, a0, t6
  li t6, 0x846ca68b
  mul a0, a0, t6
  srli t6, a0, 16
  xor a0, a0, t6
  ret

# key(a0 = index) -> a0 = key word (index & 7)
key:
  andi a0, a0, 7
  slli a0, a0, 2
  la t6, domain_secret
  add t6, t6, a0
  lw a0, 0(t6)
  ret

# crypt(a2 = len, a3 = nonce): XORs shared[0, len) with the keystream; clobbers a0, a4, a5, t2-t6.
crypt:
  mv t5, ra
  li t2, 0                    # byte index
  li t3, SHARED
1:
  bgeu t2, a2, 3f
  andi t4, t2, 3
  bnez t4, 2f
  srli a0, t2, 2              # new keystream word: mix(key[i] ^ mix(nonce + i * golden))
  li a4, 0x9e3779b9
  mul a4, a0, a4
  add a0, a3, a4
  call mix
  mv a5, a0
  srli a0, t2, 2
  call key
  xor a0, a0, a5
  call mix
  mv a5, a0
2:
  add t4, t3, t2
  lbu a4, 0(t4)
  xor a4, a4, a5
  sb a4, 0(t4)
  srli a5, a5, 8
  addi t2, t2, 1
  j 1b
3:
  mv ra, t5
  ret

# mac(a2 = len, a3 = nonce) -> a0: a keyed MAC of shared[0, len); clobbers a4, a5, t2-t6.
mac:
  mv t5, ra
  li a0, 0
  call key
  xor a5, a0, a3
  li t2, 0
  li t3, SHARED
1:
  bgeu t2, a2, 2f
  add t4, t3, t2
  lbu a4, 0(t4)
  mv a0, t2
  call key
  xor a0, a0, a5
  xor a0, a0, a4
  call mix
  mv a5, a0
  addi t2, t2, 1
  j 1b
2:
  li a0, 7
  call key
  xor a0, a0, a5
  xor a0, a0, a2
  call mix
  mv ra, t5
  ret

do_seal:
  li t0, MAXLEN
  bltu t0, a0, bad
  mv a2, a0
  mv a3, a1
  call crypt
  call mac                    # tag over the ciphertext
  li t0, SHARED
  add t0, t0, a2
  sb a0, 0(t0)
  srli a0, a0, 8
  sb a0, 1(t0)
  srli a0, a0, 8
  sb a0, 2(t0)
  srli a0, a0, 8
  sb a0, 3(t0)
  addi a0, a2, 4
  j leave

do_unseal:
  li t0, 4
  bltu a0, t0, bad
  li t0, MAXLEN + 4
  bltu t0, a0, bad
  addi a2, a0, -4
  mv a3, a1
  call mac
  li t0, SHARED               # the stored tag, little-endian
  add t0, t0, a2
  lbu t1, 3(t0)
  slli t1, t1, 8
  lbu t2, 2(t0)
  or t1, t1, t2
  slli t1, t1, 8
  lbu t2, 1(t0)
  or t1, t1, t2
  slli t1, t1, 8
  lbu t2, 0(t0)
  or t1, t1, t2
  bne a0, t1, badmsg
  call crypt
  mv a0, a2
  j leave

do_sign:
  li t0, MAXLEN
  bltu t0, a0, bad
  mv a2, a0
  mv a3, a1
  call mac
  j leave

.data
.align 4
.globl domain_secret
domain_secret: .space 32
