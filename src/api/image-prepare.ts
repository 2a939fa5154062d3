/**
 * The heavy part of an image upload, run in the upload worker pool (never on the main thread):
 * assembling source (output bounded by maxBytes), validating the ELF, and its sha256. Problems are
 * returned as data: errors do not keep their class across threads.
 */
import { createHash } from 'node:crypto';
import { assemble, AsmError, AsmProblem } from '../isa/assembler.js';
import { ElfError, parseElf32 } from '../isa/elf.js';

export type PrepareTask =
  | { format: 'asm'; source: string; fileName: string; maxBytes: number }
  | { format: 'elf'; bytes: Uint8Array };

export type Prepared =
  | { ok: true; elf: Uint8Array; entry: number; sha256: string }
  | { ok: false; asmProblems: AsmProblem[] }
  | { ok: false; elfError: { message: string; offset: number } };

/** Assembles (asm) and validates an image. Raises only on internal errors. */
export function prepareImage(t: PrepareTask): Prepared {
  let elf: Uint8Array;
  if (t.format === 'asm') {
    try {
      elf = assemble(t.source, { fileName: t.fileName, maxOutputBytes: t.maxBytes }).elf;
    } catch (e) {
      if (e instanceof AsmError) return { ok: false, asmProblems: e.problems };
      throw e;
    }
  } else elf = t.bytes;
  let entry: number;
  try {
    entry = parseElf32(elf).entry;
  } catch (e) {
    if (e instanceof ElfError) return { ok: false, elfError: { message: e.message, offset: e.offset } };
    throw e;
  }
  return { ok: true, elf, entry, sha256: createHash('sha256').update(elf).digest('hex') };
}

export default prepareImage;
