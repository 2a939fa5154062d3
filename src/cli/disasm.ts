import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { ElfError, parseElf32 } from '../isa/elf.js';
import { disassembleRange, SymbolLookup } from '../isa/disasm.js';
import { CliError } from './cli-error.js';

/** objdump -d style listing of every executable section of an ELF. */
export function listing(bytes: Uint8Array, fileName: string): string {
  const elf = parseElf32(bytes);
  const byAddr = [...elf.symbols].filter(([n]) => !n.startsWith('$') && n !== '').map(([name, addr]) => ({ name, addr }))
    .sort((a, b) => a.addr - b.addr || a.name.localeCompare(b.name));
  const lookup: SymbolLookup = (a) => {
    let best: { name: string; addr: number } | undefined;
    for (const s of byAddr) { if (s.addr <= a) best = s; else break; }
    return best;
  };
  const out: string[] = ['', `${fileName}:     file format elf32-littleriscv`, '', ''];
  const sections = elf.sections.length ? elf.sections.filter((s) => s.executable && !s.nobits && s.size > 0)
    : elf.segments.filter((s) => s.executable).map((s, i) => ({ name: `segment${i}`, addr: s.vaddr, offset: s.offset, size: s.filesz }));
  for (const sec of sections) {
    out.push(`Disassembly of section ${sec.name}:`);
    const labels = new Map<number, string>();
    for (const s of byAddr) if (s.addr >= sec.addr && s.addr < sec.addr + sec.size && !labels.has(s.addr)) labels.set(s.addr, s.name);
    for (const l of disassembleRange(bytes.subarray(sec.offset, sec.offset + sec.size), sec.addr, lookup)) {
      const label = labels.get(l.addr);
      if (label !== undefined) out.push('', `${l.addr.toString(16).padStart(8, '0')} <${label}>:`);
      out.push(`${l.addr.toString(16).padStart(8, ' ')}:\t${l.bytes.padEnd(20, ' ')}\t${l.text}`);
    }
    out.push('');
  }
  return out.join('\n') + '\n';
}

/** `hvsim disasm FILE.elf`; resolves to the exit status. Raises: CliError for unreadable or bad files. */
export async function disassembleFile(file: string): Promise<number> {
  let bytes: Uint8Array;
  try { bytes = new Uint8Array(readFileSync(file)); } catch (e) { throw new CliError(`disasm: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? e}`); }
  try {
    process.stdout.write(listing(bytes, basename(file)));
    return 0;
  } catch (e) {
    if (e instanceof ElfError) throw new CliError(`disasm: ${file}: ${e.message} (offset ${e.offset})`);
    throw e;
  }
}
