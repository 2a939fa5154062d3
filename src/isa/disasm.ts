/**
 * Disassembler in GNU objdump syntax (binutils 2.40, default aliases), driven by the
 * instruction table: operand layout comes from a row's format, mnemonics from its name, and
 * objdump's alias rules (li, mv, ret, beqz, csrr, ...) are applied on top.
 *
 * Known deviation: objdump's trailing comments that resolve lui/auipc + addi pairs
 * (`# 10074 <msg>`) are not produced.
 */
import { CINSNS, INSNS } from './table.js';
import { compressedRow, decode, expandCompressed } from './decode.js';
import * as F from './fields.js';
import { csrName } from './csr-names.js';

export const ABI_NAMES = [
  'zero', 'ra', 'sp', 'gp', 'tp', 't0', 't1', 't2', 's0', 's1', 'a0', 'a1', 'a2', 'a3', 'a4', 'a5',
  'a6', 'a7', 's2', 's3', 's4', 's5', 's6', 's7', 's8', 's9', 's10', 's11', 't3', 't4', 't5', 't6',
] as const;

const R = (r: number) => ABI_NAMES[r];
const hex = (v: number) => `0x${(v >>> 0).toString(16)}`;

/** Formats a jump/branch target; symbols (address -> name) add objdump's `<sym+0xoff>`. */
export type SymbolLookup = (addr: number) => { name: string; addr: number } | undefined;

function target(addr: number, sym?: SymbolLookup): string {
  const a = addr >>> 0;
  const s = sym?.(a);
  const base = a.toString(16);
  if (!s) return base;
  return s.addr === a ? `${base} <${s.name}>` : `${base} <${s.name}+${hex(a - s.addr)}>`;
}

const ins = (mn: string, ops?: string) => (ops === undefined ? mn : `${mn}\t${ops}`);
const fenceSet = (v: number) => (v === 0 ? 'unknown' : ['i', 'o', 'r', 'w'].filter((_, i) => (v >> (3 - i)) & 1).join(''));
const amoSuffix = (w: number) => (F.aq(w) ? (F.rl(w) ? '.aqrl' : '.aq') : F.rl(w) ? '.rl' : '');

/** Immediate forms that binutils 2.40 prints under their register form's name. */
const BASE_NAMED = new Set(['addi', 'xori', 'ori', 'andi']);

const COUNTER_ALIASES: Record<number, string> = {
  0xc00: 'rdcycle', 0xc01: 'rdtime', 0xc02: 'rdinstret', 0xc80: 'rdcycleh', 0xc81: 'rdtimeh', 0xc82: 'rdinstreth',
};
const FCSR_ALIASES: Record<number, [string, string]> = { 1: ['frflags', 'fsflags'], 2: ['frrm', 'fsrm'], 3: ['frcsr', 'fscsr'] };

/** Disassembles one 32-bit word at `pc`. Unknown words print as `.4byte 0x...` like objdump. */
export function disasm32(w: number, pc: number, sym?: SymbolLookup): string {
  w >>>= 0;
  const id = decode(w);
  if (id < 0) return ins('.4byte', hex(w));
  const row = INSNS[id];
  const n = row.name;
  const rd = F.rd(w), rs1 = F.rs1(w), rs2 = F.rs2(w);
  switch (row.format) {
    case 'R':
      if (n === 'sub' && rs1 === 0) return ins('neg', `${R(rd)},${R(rs2)}`);
      if (n === 'sltu' && rs1 === 0) return ins('snez', `${R(rd)},${R(rs2)}`);
      if (n === 'slt' && rs2 === 0) return ins('sltz', `${R(rd)},${R(rs1)}`);
      if (n === 'slt' && rs1 === 0) return ins('sgtz', `${R(rd)},${R(rs2)}`);
      return ins(n, `${R(rd)},${R(rs1)},${R(rs2)}`);
    case 'I': {
      const imm = F.immI(w);
      if (n === 'addi') {
        if (rd === 0 && rs1 === 0 && imm === 0) return 'nop';
        if (rs1 === 0) return ins('li', `${R(rd)},${imm}`);
        if (imm === 0) return ins('mv', `${R(rd)},${R(rs1)}`);
      }
      if (n === 'xori' && imm === -1) return ins('not', `${R(rd)},${R(rs1)}`);
      if (n === 'andi' && imm === 255) return ins('zext.b', `${R(rd)},${R(rs1)}`);
      if (n === 'sltiu' && imm === 1) return ins('seqz', `${R(rd)},${R(rs1)}`);
      // binutils 2.40 prints register-immediate ALU ops under their base names (add a0,a1,1).
      return ins(BASE_NAMED.has(n) ? n.slice(0, -1) : n, `${R(rd)},${R(rs1)},${imm}`);
    }
    case 'Ishift':
      return ins(n.slice(0, -1), `${R(rd)},${R(rs1)},${hex(F.shamt(w))}`);
    case 'IL':
      return ins(n, `${R(rd)},${F.immI(w)}(${R(rs1)})`);
    case 'S':
      return ins(n, `${R(rs2)},${F.immS(w)}(${R(rs1)})`);
    case 'B': {
      const t = target(pc + F.immB(w), sym);
      if (n === 'beq' && rs2 === 0) return ins('beqz', `${R(rs1)},${t}`);
      if (n === 'bne' && rs2 === 0) return ins('bnez', `${R(rs1)},${t}`);
      if (n === 'bge' && rs1 === 0) return ins('blez', `${R(rs2)},${t}`);
      if (n === 'bge' && rs2 === 0) return ins('bgez', `${R(rs1)},${t}`);
      if (n === 'blt' && rs2 === 0) return ins('bltz', `${R(rs1)},${t}`);
      if (n === 'blt' && rs1 === 0) return ins('bgtz', `${R(rs2)},${t}`);
      return ins(n, `${R(rs1)},${R(rs2)},${t}`);
    }
    case 'U':
      return ins(n, `${R(rd)},${hex(F.immU(w) >>> 12)}`);
    case 'J': {
      const t = target(pc + F.immJ(w), sym);
      if (rd === 0) return ins('j', t);
      if (rd === 1) return ins('jal', t);
      return ins('jal', `${R(rd)},${t}`);
    }
    case 'JALR': {
      const imm = F.immI(w);
      if (rd === 0 && rs1 === 1 && imm === 0) return 'ret';
      if (rd === 0) return ins('jr', imm === 0 ? R(rs1) : `${imm}(${R(rs1)})`);
      if (rd === 1) return ins('jalr', imm === 0 ? R(rs1) : `${imm}(${R(rs1)})`);
      return ins('jalr', imm === 0 ? `${R(rd)},${R(rs1)}` : `${R(rd)},${imm}(${R(rs1)})`);
    }
    case 'CSR': case 'CSRI': {
      const c = F.csr(w);
      const src = row.format === 'CSR' ? R(rs1) : String(rs1);
      const fa = FCSR_ALIASES[c];
      if (n === 'csrrs' && rs1 === 0) {
        if (COUNTER_ALIASES[c]) return ins(COUNTER_ALIASES[c], R(rd));
        if (fa) return ins(fa[0], R(rd));
        return ins('csrr', `${R(rd)},${csrName(c)}`);
      }
      if (fa && (n === 'csrrw' || (n === 'csrrwi' && c !== 3))) {
        const mn = n === 'csrrw' ? fa[1] : `${fa[1]}i`;
        return ins(mn, rd === 0 ? src : `${R(rd)},${src}`);
      }
      if (rd === 0 && (n === 'csrrw' || n === 'csrrwi')) return ins('csrw', `${csrName(c)},${src}`);
      if (rd === 0 && (n === 'csrrs' || n === 'csrrsi')) return ins('csrs', `${csrName(c)},${src}`);
      if (rd === 0 && (n === 'csrrc' || n === 'csrrci')) return ins('csrc', `${csrName(c)},${src}`);
      // binutils 2.40 prints csrrwi/csrrsi/csrrci under their register forms' names.
      return ins(row.format === 'CSRI' ? n.slice(0, -1) : n, `${R(rd)},${csrName(c)},${src}`);
    }
    case 'AMO':
      return ins(n + amoSuffix(w), `${R(rd)},${R(rs2)},(${R(rs1)})`);
    case 'LR':
      return ins(n + amoSuffix(w), `${R(rd)},(${R(rs1)})`);
    case 'FENCE': {
      const fm = F.fenceFm(w), pred = F.fencePred(w), succ = F.fenceSucc(w);
      if (fm === 8 && pred === 3 && succ === 3) return 'fence.tso';
      if (fm !== 0) return ins('.4byte', hex(w));
      if (pred === 15 && succ === 15) return 'fence';
      return ins('fence', `${fenceSet(pred)},${fenceSet(succ)}`);
    }
    case 'FENCEI': case 'NONE':
      return n;
    case 'SFENCE':
      if (rs2 === 0) return rs1 === 0 ? n : ins(n, R(rs1));
      return ins(n, `${R(rs1)},${R(rs2)}`);
    case 'HLV':
      return ins(n, `${R(rd)},(${R(rs1)})`);
    case 'HSV':
      return ins(n, `${R(rs2)},(${R(rs1)})`);
  }
}

/**
 * Disassembles one compressed halfword at `pc`, printing objdump's names for compressed forms
 * (objdump names most of them after their base instruction, with a few quirks such as
 * `add rd,rd,imm` for c.addi and `c.slli64` for a zero shift).
 */
export function disasm16(h: number, pc: number, sym?: SymbolLookup): string {
  h &= 0xffff;
  if (h === 0) return 'unimp';
  const row = compressedRow(h);
  const w = expandCompressed(h);
  if (row < 0 || w === 0) {
    return ins('.2byte', hex(h));
  }
  const cn = CINSNS[row].name;
  const rd = F.rd(w), rs2 = F.rs2(w);
  switch (cn) {
    case 'c.addi4spn': return ins('add', `${R(rd)},sp,${F.immI(w)}`);
    case 'c.nop': return F.immI(w) === 0 ? 'nop' : ins('c.nop', String(F.immI(w)));
    case 'c.addi': case 'c.addi16sp': return ins('add', `${R(rd)},${R(rd)},${F.immI(w)}`);
    case 'c.li': return rd === 0 ? ins('c.li', `zero,${F.immI(w)}`) : ins('li', `${R(rd)},${F.immI(w)}`);
    case 'c.lui': return rd === 0 ? ins('c.lui', `zero,${hex(F.immU(w) >>> 12)}`) : disasm32(w, pc, sym);
    case 'c.andi': return ins('and', `${R(rd)},${R(rd)},${F.immI(w)}`);
    case 'c.slli': case 'c.srli': case 'c.srai': {
      const sh = F.shamt(w);
      if (sh === 0) return ins(`${cn}64`, R(rd));
      if (rd === 0) return ins(cn, `zero,${hex(sh)}`);
      return ins(cn.slice(2, 5), `${R(rd)},${R(rd)},${hex(sh)}`);
    }
    case 'c.mv': return ins(rd === 0 ? 'c.mv' : 'mv', `${R(rd)},${R(rs2)}`);
    case 'c.add': return rd === 0 ? ins('c.add', `zero,${R(rs2)}`) : disasm32(w, pc, sym);
    default: return disasm32(w, pc, sym);
  }
}

export interface ListingLine { addr: number; bytes: string; text: string; size: number }

/**
 * Disassembles a code range the way `objdump -d` walks it: 16-bit parcels when the low bits
 * say compressed, 32-bit otherwise; a trailing incomplete instruction prints as .2byte.
 */
export function disassembleRange(code: Uint8Array, base: number, sym?: SymbolLookup): ListingLine[] {
  const out: ListingLine[] = [];
  let off = 0;
  while (off + 2 <= code.length) {
    const lo = code[off] | (code[off + 1] << 8);
    const addr = (base + off) >>> 0;
    if ((lo & 3) !== 3) {
      out.push({ addr, size: 2, bytes: lo.toString(16).padStart(4, '0'), text: disasm16(lo, addr, sym) });
      off += 2;
    } else if (off + 4 <= code.length) {
      const w = (lo | (code[off + 2] << 16) | (code[off + 3] << 24)) >>> 0;
      out.push({ addr, size: 4, bytes: w.toString(16).padStart(8, '0'), text: disasm32(w, addr, sym) });
      off += 4;
    } else {
      out.push({ addr, size: 2, bytes: lo.toString(16).padStart(4, '0'), text: ins('.2byte', hex(lo)) });
      off += 2;
    }
  }
  return out;
}
