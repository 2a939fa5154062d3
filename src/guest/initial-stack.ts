/**
 * The Linux initial process stack for RV32 (as built by fs/binfmt_elf.c create_elf_tables):
 *
 *   sp -> argc | argv[0..argc-1] | NULL | envp[..] | NULL | auxv pairs ... AT_NULL 0
 *         ... padding ... | 16 random bytes (AT_RANDOM) | argv and env strings | top
 *
 * Shared by the test harness and the guest OS so the two cannot drift apart.
 */
import type { ElfImage } from '../isa/elf.js';

export const AT = {
  NULL: 0, PHDR: 3, PHENT: 4, PHNUM: 5, PAGESZ: 6, BASE: 7, FLAGS: 8, ENTRY: 9,
  UID: 11, EUID: 12, GID: 13, EGID: 14, HWCAP: 16, CLKTCK: 17, SECURE: 23, RANDOM: 25, EXECFN: 31,
} as const;

/** HWCAP bits of the ISA letters: I M A C. */
const HWCAP = (1 << ('I'.charCodeAt(0) - 65)) | (1 << ('M'.charCodeAt(0) - 65)) | (1 << ('A'.charCodeAt(0) - 65)) | (1 << ('C'.charCodeAt(0) - 65));

export interface InitialStack {
  /** Bytes to copy so that they end at `top`; `sp` is the address of their first byte. */
  bytes: Uint8Array;
  sp: number;
}

/** Address of the program headers in memory (AT_PHDR), when a PT_LOAD segment maps them. */
export function phdrAddress(elf: ElfImage): number {
  for (const s of elf.segments) {
    if (elf.phoff >= s.offset && elf.phoff + elf.phnum * elf.phentsize <= s.offset + s.filesz) {
      return (s.vaddr + elf.phoff - s.offset) >>> 0;
    }
  }
  return 0;
}

/**
 * Builds the stack image for `argv`/`env` ending at `top` (exclusive).
 * `random` must be 16 bytes (they become AT_RANDOM's target).
 * Raises: Error when the arguments do not fit in `maxBytes`.
 */
export function buildInitialStack(elf: ElfImage, argv: string[], env: string[], random: Uint8Array, top: number, maxBytes = 128 * 1024): InitialStack {
  const enc = new TextEncoder();
  const strings = [...argv, ...env].map((s) => enc.encode(s + '\0'));
  const strBytes = strings.reduce((n, s) => n + s.length, 0);
  // Strings at the very top, then 16 random bytes below them.
  let p = top - strBytes;
  const stringAddrs: number[] = [];
  for (const s of strings) { stringAddrs.push(p); p += s.length; }
  const execfn = stringAddrs[0] ?? 0;
  const randomAddr = (top - strBytes - 16) & ~15;
  const auxv: Array<[number, number]> = [
    [AT.HWCAP, HWCAP], [AT.PAGESZ, 4096], [AT.CLKTCK, 100], [AT.PHDR, phdrAddress(elf)],
    [AT.PHENT, elf.phentsize], [AT.PHNUM, elf.phnum], [AT.BASE, 0], [AT.FLAGS, 0], [AT.ENTRY, elf.entry],
    [AT.UID, 0], [AT.EUID, 0], [AT.GID, 0], [AT.EGID, 0], [AT.SECURE, 0], [AT.RANDOM, randomAddr],
    [AT.EXECFN, execfn], [AT.NULL, 0],
  ];
  const words = 1 + argv.length + 1 + env.length + 1 + auxv.length * 2;
  const sp = (randomAddr - words * 4) & ~15;
  const size = top - sp;
  if (size > maxBytes) throw new Error(`arguments and environment need ${size} bytes of stack, more than ${maxBytes}`);
  const bytes = new Uint8Array(size);
  const dv = new DataView(bytes.buffer);
  let w = 0;
  const put = (v: number) => { dv.setUint32(w, v >>> 0, true); w += 4; };
  put(argv.length);
  for (let i = 0; i < argv.length; i++) put(stringAddrs[i]);
  put(0);
  for (let i = 0; i < env.length; i++) put(stringAddrs[argv.length + i]);
  put(0);
  for (const [k, v] of auxv) { put(k); put(v); }
  bytes.set(random.subarray(0, 16), randomAddr - sp);
  let o = top - strBytes - sp;
  for (const s of strings) { bytes.set(s, o); o += s.length; }
  return { bytes, sp };
}
