/**
 * Writes a static little-endian ELF32 RISC-V executable: one PT_LOAD segment per non-empty
 * segment (code: .text + .rodata, R-X; data: .data + .bss, RW-), section headers for every
 * section, and a .symtab/.strtab with the given symbols.
 */
import { EM_RISCV, ET_EXEC, PT_LOAD } from './elf.js';

export interface ElfSectionIn {
  name: string;
  addr: number;
  /** File contents; empty for NOBITS sections. */
  bytes: Uint8Array;
  /** Memory size (bytes.length, or more for .bss). */
  size: number;
  flags: 'rx' | 'r' | 'rw';
  nobits?: boolean;
}

export interface ElfSymbolIn { name: string; value: number; section: string | null; global: boolean }

const SHT_PROGBITS = 1, SHT_SYMTAB = 2, SHT_STRTAB = 3, SHT_NOBITS = 8;
const SHF_WRITE = 1, SHF_ALLOC = 2, SHF_EXECINSTR = 4;

class StrTab {
  bytes: number[] = [0];
  add(s: string): number {
    const off = this.bytes.length;
    for (const b of new TextEncoder().encode(s)) this.bytes.push(b);
    this.bytes.push(0);
    return off;
  }
}

/**
 * Builds the file. Preconditions: sections are given in address order, code sections before
 * data sections, and each segment's sections are contiguous in memory.
 */
export function writeElf32(entry: number, sections: ElfSectionIn[], symbols: ElfSymbolIn[]): Uint8Array {
  const segments = [
    sections.filter((s) => s.flags !== 'rw' && s.size > 0),
    sections.filter((s) => s.flags === 'rw' && s.size > 0),
  ].filter((g) => g.length > 0);
  const ehsize = 52, phentsize = 32;
  const phoff = ehsize;
  const phnum = segments.length;
  // File layout: headers, then each segment's bytes at an offset congruent to its address mod 4096.
  let off = phoff + phnum * phentsize;
  const fileOff = new Map<ElfSectionIn, number>();
  const segInfo: Array<{ offset: number; vaddr: number; filesz: number; memsz: number; flags: number }> = [];
  for (const g of segments) {
    const vaddr = g[0].addr;
    off = off + ((vaddr - off) % 4096 + 4096) % 4096;
    const segOff = off;
    for (const s of g) fileOff.set(s, segOff + (s.addr - vaddr));
    const fileEnd = Math.max(...g.filter((s) => !s.nobits).map((s) => s.addr + s.bytes.length), vaddr);
    const memEnd = Math.max(...g.map((s) => s.addr + s.size));
    segInfo.push({ offset: segOff, vaddr, filesz: fileEnd - vaddr, memsz: memEnd - vaddr, flags: g[0].flags === 'rw' ? 6 : g.some((s) => s.flags === 'rx') ? 5 : 4 });
    off = segOff + (fileEnd - vaddr);
  }
  // Symbol and string tables.
  const strtab = new StrTab();
  const shstrtab = new StrTab();
  const allSections = sections;
  const secIndex = (name: string | null) => (name === null ? 0xfff1 : allSections.findIndex((s) => s.name === name) + 1);
  const locals = symbols.filter((s) => !s.global);
  const globals = symbols.filter((s) => s.global);
  const symEntries = [{ name: 0, value: 0, info: 0, shndx: 0 }, ...[...locals, ...globals].map((s) => ({
    name: strtab.add(s.name), value: s.value >>> 0, info: (s.global ? 1 : 0) << 4, shndx: secIndex(s.section),
  }))];
  const symtabOff = (off + 3) & ~3;
  const symtabSize = symEntries.length * 16;
  const strtabOff = symtabOff + symtabSize;
  const strBytes = Uint8Array.from(strtab.bytes);
  const names = allSections.map((s) => shstrtab.add(s.name));
  const symtabName = shstrtab.add('.symtab');
  const strtabName = shstrtab.add('.strtab');
  const shstrtabName = shstrtab.add('.shstrtab');
  const shstrOff = strtabOff + strBytes.length;
  const shstrBytes = Uint8Array.from(shstrtab.bytes);
  const shoff = (shstrOff + shstrBytes.length + 3) & ~3;
  const shnum = allSections.length + 4;
  const total = shoff + shnum * 40;

  const out = new Uint8Array(total);
  const dv = new DataView(out.buffer);
  out.set([0x7f, 0x45, 0x4c, 0x46, 1, 1, 1, 0], 0);
  dv.setUint16(16, ET_EXEC, true);
  dv.setUint16(18, EM_RISCV, true);
  dv.setUint32(20, 1, true);
  dv.setUint32(24, entry >>> 0, true);
  dv.setUint32(28, phoff, true);
  dv.setUint32(32, shoff, true);
  dv.setUint32(36, 0, true); // e_flags: soft-float ABI, no RVC flag needed for static images
  dv.setUint16(40, ehsize, true);
  dv.setUint16(42, phentsize, true);
  dv.setUint16(44, phnum, true);
  dv.setUint16(46, 40, true);
  dv.setUint16(48, shnum, true);
  dv.setUint16(50, shnum - 1, true);
  segInfo.forEach((p, i) => {
    const o = phoff + i * phentsize;
    dv.setUint32(o, PT_LOAD, true);
    dv.setUint32(o + 4, p.offset, true);
    dv.setUint32(o + 8, p.vaddr >>> 0, true);
    dv.setUint32(o + 12, p.vaddr >>> 0, true);
    dv.setUint32(o + 16, p.filesz, true);
    dv.setUint32(o + 20, p.memsz, true);
    dv.setUint32(o + 24, p.flags, true);
    dv.setUint32(o + 28, 4096, true);
  });
  for (const s of allSections) if (!s.nobits && fileOff.has(s)) out.set(s.bytes, fileOff.get(s)!);
  symEntries.forEach((e, i) => {
    const o = symtabOff + i * 16;
    dv.setUint32(o, e.name, true);
    dv.setUint32(o + 4, e.value, true);
    out[o + 12] = e.info;
    dv.setUint16(o + 14, e.shndx, true);
  });
  out.set(strBytes, strtabOff);
  out.set(shstrBytes, shstrOff);
  const sh = (i: number, name: number, type: number, flags: number, addr: number, offset: number, size: number, link = 0, info = 0, align = 1, entsize = 0) => {
    const o = shoff + i * 40;
    [name, type, flags, addr >>> 0, offset, size, link, info, align, entsize].forEach((v, k) => dv.setUint32(o + 4 * k, v, true));
  };
  allSections.forEach((s, i) => {
    const flags = SHF_ALLOC | (s.flags === 'rw' ? SHF_WRITE : 0) | (s.flags === 'rx' ? SHF_EXECINSTR : 0);
    sh(i + 1, names[i], s.nobits ? SHT_NOBITS : SHT_PROGBITS, flags, s.addr, fileOff.get(s) ?? 0, s.size, 0, 0, 4);
  });
  const symIdx = allSections.length + 1;
  sh(symIdx, symtabName, SHT_SYMTAB, 0, 0, symtabOff, symtabSize, symIdx + 1, locals.length + 1, 4, 16);
  sh(symIdx + 1, strtabName, SHT_STRTAB, 0, 0, strtabOff, strBytes.length);
  sh(symIdx + 2, shstrtabName, SHT_STRTAB, 0, 0, shstrOff, shstrBytes.length);
  return out;
}
