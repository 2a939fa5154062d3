/**
 * ELF32 loader for static RISC-V executables.
 *
 * parseElf32 validates everything it reads and raises ElfError (with the file offset of the
 * offending field) for anything malformed; it never throws anything else and never reads out of
 * bounds.
 */

export class ElfError extends Error {
  constructor(message: string, readonly offset: number) {
    super(message);
    this.name = 'ElfError';
  }
}

export interface ElfSegment {
  vaddr: number;
  memsz: number;
  filesz: number;
  offset: number;
  readable: boolean;
  writable: boolean;
  executable: boolean;
  align: number;
}

export interface ElfSectionInfo { name: string; addr: number; offset: number; size: number; executable: boolean; nobits: boolean }

export interface ElfImage {
  entry: number;
  /** Section headers (empty when the file has none). */
  sections: ElfSectionInfo[];
  segments: ElfSegment[];
  /** Global and local symbols from .symtab, by name (first definition wins). */
  symbols: Map<string, number>;
  phoff: number;
  phnum: number;
  phentsize: number;
  bytes: Uint8Array;
}

export const EM_RISCV = 243;
export const ET_EXEC = 2;
export const PT_LOAD = 1;
const PF_X = 1;
const PF_W = 2;
const PF_R = 4;
const SHT_SYMTAB = 2;

/**
 * Parses and validates a static RV32 executable.
 * Raises: ElfError naming the problem and the offset: bad magic, not ELFCLASS32, not
 * little-endian, not EM_RISCV, not ET_EXEC, program or section headers out of bounds, a PT_LOAD
 * segment whose file range is out of bounds, whose filesz exceeds memsz or whose memory range
 * leaves the 32-bit space, no PT_LOAD, entry outside every executable segment, malformed symtab.
 */
export function parseElf32(bytes: Uint8Array): ElfImage {
  const len = bytes.length;
  if (len < 52) throw new ElfError(`file too short for an ELF header (${len} bytes, need 52)`, len);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, len);
  if (bytes[0] !== 0x7f || bytes[1] !== 0x45 || bytes[2] !== 0x4c || bytes[3] !== 0x46) {
    throw new ElfError('bad magic: not an ELF file', 0);
  }
  if (bytes[4] !== 1) throw new ElfError(`not a 32-bit ELF (EI_CLASS ${bytes[4]})`, 4);
  if (bytes[5] !== 1) throw new ElfError(`not little-endian (EI_DATA ${bytes[5]})`, 5);
  if (bytes[6] !== 1) throw new ElfError(`bad EI_VERSION ${bytes[6]}`, 6);
  const type = dv.getUint16(16, true);
  const machine = dv.getUint16(18, true);
  if (machine !== EM_RISCV) throw new ElfError(`not a RISC-V executable (e_machine ${machine}, want 243)`, 18);
  if (type !== ET_EXEC) throw new ElfError(`not a static executable (e_type ${type}, want ET_EXEC 2)`, 16);
  const entry = dv.getUint32(24, true);
  const phoff = dv.getUint32(28, true);
  const shoff = dv.getUint32(32, true);
  const phentsize = dv.getUint16(42, true);
  const phnum = dv.getUint16(44, true);
  const shentsize = dv.getUint16(46, true);
  const shnum = dv.getUint16(48, true);
  if (phnum === 0) throw new ElfError('no program headers', 44);
  if (phentsize < 32) throw new ElfError(`program header entry size ${phentsize} < 32`, 42);
  if (phoff + phnum * phentsize > len) {
    throw new ElfError(`program headers (${phnum} x ${phentsize} at ${phoff}) extend past end of file`, 28);
  }

  const segments: ElfSegment[] = [];
  for (let i = 0; i < phnum; i++) {
    const o = phoff + i * phentsize;
    if (dv.getUint32(o, true) !== PT_LOAD) continue;
    const offset = dv.getUint32(o + 4, true);
    const vaddr = dv.getUint32(o + 8, true);
    const filesz = dv.getUint32(o + 16, true);
    const memsz = dv.getUint32(o + 20, true);
    const flags = dv.getUint32(o + 24, true);
    const align = dv.getUint32(o + 28, true);
    if (filesz > memsz) throw new ElfError(`segment ${i}: p_filesz ${filesz} > p_memsz ${memsz}`, o + 16);
    if (offset + filesz > len) throw new ElfError(`segment ${i}: file range [${offset}, +${filesz}) past end of file`, o + 4);
    if (vaddr + memsz > 0x1_0000_0000) throw new ElfError(`segment ${i}: memory range leaves the 32-bit address space`, o + 8);
    segments.push({
      vaddr, memsz, filesz, offset, align,
      readable: (flags & PF_R) !== 0, writable: (flags & PF_W) !== 0, executable: (flags & PF_X) !== 0,
    });
  }
  if (segments.length === 0) throw new ElfError('no PT_LOAD segment', phoff);
  if (!segments.some((s) => s.executable && entry >= s.vaddr && entry < s.vaddr + s.memsz)) {
    throw new ElfError(`entry point 0x${entry.toString(16)} is not inside an executable segment`, 24);
  }

  const symbols = readSymbols(bytes, dv, shoff, shentsize, shnum);
  return { entry, segments, sections: readSections(bytes, dv, shoff, shentsize, shnum, dv.getUint16(50, true)), symbols, phoff, phnum, phentsize, bytes };
}

function readSections(bytes: Uint8Array, dv: DataView, shoff: number, shentsize: number, shnum: number, shstrndx: number): ElfSectionInfo[] {
  if (shoff === 0 || shnum === 0) return [];
  if (shstrndx >= shnum) throw new ElfError(`section name table index ${shstrndx} out of range`, 50);
  const strOff = dv.getUint32(shoff + shstrndx * shentsize + 16, true);
  const strSize = dv.getUint32(shoff + shstrndx * shentsize + 20, true);
  if (strOff + strSize > bytes.length) throw new ElfError('section name table extends past end of file', shoff + shstrndx * shentsize + 16);
  const out: ElfSectionInfo[] = [];
  for (let i = 1; i < shnum; i++) {
    const sh = shoff + i * shentsize;
    const nameOff = dv.getUint32(sh, true);
    if (nameOff >= strSize) throw new ElfError(`section ${i} name offset outside the name table`, sh);
    let end = strOff + nameOff;
    while (end < strOff + strSize && bytes[end] !== 0) end++;
    const type = dv.getUint32(sh + 4, true);
    const flags = dv.getUint32(sh + 8, true);
    const offset = dv.getUint32(sh + 16, true);
    const size = dv.getUint32(sh + 20, true);
    const nobits = type === 8;
    if (!nobits && type !== 0 && offset + size > bytes.length) throw new ElfError(`section ${i} extends past end of file`, sh + 16);
    out.push({ name: new TextDecoder().decode(bytes.subarray(strOff + nameOff, end)), addr: dv.getUint32(sh + 12, true), offset, size, executable: (flags & 4) !== 0, nobits });
  }
  return out;
}

function readSymbols(bytes: Uint8Array, dv: DataView, shoff: number, shentsize: number, shnum: number): Map<string, number> {
  const symbols = new Map<string, number>();
  if (shoff === 0 || shnum === 0) return symbols;
  if (shentsize < 40) throw new ElfError(`section header entry size ${shentsize} < 40`, 46);
  if (shoff + shnum * shentsize > bytes.length) throw new ElfError('section headers extend past end of file', 32);
  for (let i = 0; i < shnum; i++) {
    const sh = shoff + i * shentsize;
    if (dv.getUint32(sh + 4, true) !== SHT_SYMTAB) continue;
    const off = dv.getUint32(sh + 16, true);
    const size = dv.getUint32(sh + 20, true);
    const link = dv.getUint32(sh + 24, true);
    if (off + size > bytes.length) throw new ElfError('symbol table extends past end of file', sh + 16);
    if (link >= shnum) throw new ElfError(`symbol table links to missing section ${link}`, sh + 24);
    const str = shoff + link * shentsize;
    const stroff = dv.getUint32(str + 16, true);
    const strsize = dv.getUint32(str + 20, true);
    if (stroff + strsize > bytes.length) throw new ElfError('string table extends past end of file', str + 16);
    for (let s = off; s + 16 <= off + size; s += 16) {
      const nameOff = dv.getUint32(s, true);
      if (nameOff === 0) continue;
      if (nameOff >= strsize) throw new ElfError(`symbol name offset ${nameOff} outside string table`, s);
      let end = stroff + nameOff;
      const limit = stroff + strsize;
      while (end < limit && bytes[end] !== 0) end++;
      const name = new TextDecoder().decode(bytes.subarray(stroff + nameOff, end));
      if (!symbols.has(name)) symbols.set(name, dv.getUint32(s + 4, true));
    }
  }
  return symbols;
}
