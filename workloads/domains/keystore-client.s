# keystore-client: the root-domain workload of the keystore protection domain (technique 7).
# It registers a page of its own as the domain's shared buffer, then ROUNDS times (argv[1],
# default 100) signs, seals, unseals and signs again a 64-byte message through the domain's
# gates (0 ks_seal, 1 ks_unseal, 2 ks_sign), checking every result, and finally shows that a
# tampered sealed message is refused. It prints a digest of the sealed bytes and signatures,
# which depends on the key but does not reveal it. Assembled together with workloads/lib.s.
.equ GATE_SEAL, 0
.equ GATE_UNSEAL, 1
.equ GATE_SIGN, 2
.equ DGATE_SHARE, -2
.equ LEN, 64
.globl _start
.text
_start:
  mv a0, sp
  li a1, 1
  li a2, 100
  call arg_uint
  mv s0, a0                   # rounds
  la s1, shared
  sw zero, 0(s1)              # touch the page: the kernel maps it
  li a0, GATE_SEAL            # the domain of this gate gets the page
  mv a1, s1
  li t0, DGATE_SHARE
  dgate t0
  bnez a0, fail
  li s2, 0                    # round
  li s3, 0                    # digest
loop:
  beq s2, s0, done
  mv a0, s2
  call fill
  li a0, LEN
  mv a1, s2
  li t0, GATE_SIGN
  dgate t0
  mv s4, a0                   # signature of the plaintext
  li a0, LEN
  mv a1, s2
  li t0, GATE_SEAL
  dgate t0
  li t1, LEN + 4
  bne a0, t1, fail
  li t0, 0                    # fold the sealed message into the digest
1:
  add t1, s1, t0
  lw t2, 0(t1)
  xor s3, s3, t2
  slli t3, s3, 5
  srli t4, s3, 27
  or s3, t3, t4
  addi t0, t0, 4
  li t1, LEN + 4
  bne t0, t1, 1b
  li a0, LEN + 4
  mv a1, s2
  li t0, GATE_UNSEAL
  dgate t0
  li t1, LEN
  bne a0, t1, fail
  mv a0, s2                   # the plaintext is back
  call check
  bnez a0, fail
  li a0, LEN
  mv a1, s2
  li t0, GATE_SIGN
  dgate t0
  bne a0, s4, fail
  xor s3, s3, s4
  addi s2, s2, 1
  j loop
done:
  # A tampered sealed message is refused with -EBADMSG.
  mv a0, s2
  call fill
  li a0, LEN
  mv a1, s2
  li t0, GATE_SEAL
  dgate t0
  lbu t1, 3(s1)
  xori t1, t1, 1
  sb t1, 3(s1)
  li a0, LEN + 4
  mv a1, s2
  li t0, GATE_UNSEAL
  dgate t0
  li t1, -74
  bne a0, t1, fail
  la a0, okmsg
  li a1, 44
  call print
  mv a0, s0
  call print_hex
  la a0, digmsg
  li a1, 17
  call print
  mv a0, s3
  call print_hex
  li a0, 0
  j exit
fail:
  la a0, failmsg
  li a1, 17
  call print
  li a0, 1
  j exit

# fill(a0 = round): shared[j] = j * 7 + round, j < LEN
fill:
  li t0, 0
1:
  li t1, 7
  mul t1, t0, t1
  add t1, t1, a0
  add t2, s1, t0
  sb t1, 0(t2)
  addi t0, t0, 1
  li t1, LEN
  bne t0, t1, 1b
  ret

# check(a0 = round) -> a0: 0 when shared holds what fill(round) wrote
check:
  li t0, 0
1:
  li t1, 7
  mul t1, t0, t1
  add t1, t1, a0
  andi t1, t1, 0xff
  add t2, s1, t0
  lbu t3, 0(t2)
  bne t1, t3, 2f
  addi t0, t0, 1
  li t1, LEN
  bne t0, t1, 1b
  li a0, 0
  ret
2:
  li a0, 1
  ret

.section .rodata
okmsg: .ascii "keystore: rounds ok, tamper refused; rounds "
digmsg: .ascii "keystore: digest "
failmsg: .ascii "keystore: FAILED\n"
.bss
.align 12
shared: .space 4096
