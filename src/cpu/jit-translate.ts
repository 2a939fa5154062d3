/**
 * The JIT's translation: a guest basic block (or trace) decoded from physical memory into the code
 * of its instructions, each the row's semantics template expanded with the JIT's slots (see
 * splice), and the accounting the compiled forms need (jit-compile.ts). What an instruction is
 * (ends a block, may trap, writes memory, ...) comes from isa/facts.ts.
 */
import { INSNS, Format } from '../isa/table.js';
import { decode } from '../isa/decode.js';
import { FACTS } from '../isa/facts.js';
import { fetchInsn, insnLen, insnWord } from '../isa/fetch.js';
import { Slots as TemplateSlots, signExtend } from './semantics.js';
import { EXTRA_CYCLES, IMM_OF, expand } from './template.js';
import { COSTS } from '../uarch/costs.js';
import type { HartCore } from './hart-core.js';

/** Instructions per block at most. */
export const MAX_BLOCK = 64;

/** A block as translated, before compilation: its instructions' code and accounting. */
export interface BlockIR {
  parts: string[];
  /** The same instructions as compiled inside a region (see compileRegion), made on first use. */
  regionParts: () => string[];
  /** Static cycles of the first i instructions. */
  prefix: number[];
  pcs: number[];
  used: Set<number>;
  /** Registers the block writes (only these are written back). */
  written: Set<number>;
  /** Access groups (locals g<k>, g<k>d: see Group). */
  groups: number;
  fallthrough: number;
  /** Where the last instruction goes when it branches or jumps, if that is a constant. */
  target: number | null;
  /** Ends with an indirect jump (jalr). */
  indirect: boolean;
  selfLoop: boolean;
  /** Ends with a system instruction: its chain ends with it. */
  system: boolean;
  /** Starts with an instruction that starts a block (a CSR access: it may read the counters, which must be exact then). */
  startsBlock: boolean;
  /** Ends with a conditional branch (a basic block that counts its directions). */
  branch: boolean;
  /** Goes on through branches or jumps (a trace). */
  trace: boolean;
  /** Has inline memory accesses (plain loads or stores). */
  mem: boolean;
  /** Has a branch or jump (counts taken branches). */
  taken: boolean;
  /** Its run may end before its last instruction: on its own (`early`), inside a region (`earlyInRegion`). */
  early: boolean;
  earlyInRegion: boolean;
}

/**
 * The TLB fast path of a plain load or store (isa/facts.ts `plain`), inlined: a tag compare and a
 * host offset into the RAM views; misses, misaligned and page-crossing accesses, MMIO, poisoned
 * and gate pages (which the TLB never caches) go through the hart's slow path, which charges
 * exactly what the interpreter charges. Stores compare the store TLB's `fast` tags, which exclude
 * frames holding translated code and everything while an LR reservation is held, so the fast path
 * needs no bookkeeping; a slow-path store clears `M.dirty` first and after it ends the block
 * (`exit`) when it wrote into code.
 *
 * Inside a region the access checks first and leaves the region before the instruction when the
 * fast path does not apply (see compileRegion); the access itself is then direct.
 *
 * Returns the statements to run before the instruction (`pre`: a group's check, a region's guard)
 * and the access: the loaded value's expression, or the store statement.
 */
function inlineAccess(
  size: 1 | 2 | 4, store: boolean, base: string, imm: string, value: string,
  g: Group | null, region: boolean, clobber: string, ip: number, exit: string,
): { pre: string; access: string } {
  const view = size === 1 ? 'u8' : size === 2 ? 'u16' : 'i32';
  const shift = size === 1 ? '' : size === 2 ? ' >>> 1' : ' >>> 2';
  const mask = size - 1, n = 8 * size;
  const [tag, page] = store ? ['sfast', 'spage'] : ['ltag', 'lpage'];
  const ea = `(${base} + ${imm}) | 0`;
  // A group member whose group check passed accesses RAM directly: base register + offset + the group's host delta.
  const direct = `${view}[((g${g?.id}d + ${base} + ${imm}) | 0)${shift}]`;
  const check = g?.first ? `_a = (${base} + ${g.first.min}) | 0; _v = _a >>> 12; ` +
    `g${g.id} = ${tag}[_v & 255] === ((_v << 3) | mode) && ((((${base} + ${g.first.maxEnd}) | 0) ^ _a) >>> 12) === 0 && (${base} & ${g.first.mask}) === 0; ` +
    `g${g.id}d = (${page}[_v & 255] - (_v << 12)) | 0; ` : '';
  if (region) {
    const leave = `{ ip = ${ip}; how = 2; break run; } `;
    const pre = g === null
      ? `_a = ${ea}; _v = _a >>> 12; if (${tag}[_v & 255] !== ((_v << 3) | mode) || (_a & ${mask}) !== 0) ${leave}`
      : `${check}if (!g${g.id}) ${leave}`;
    const at = g === null ? `${view}[(${page}[_v & 255] + (_a & 0xfff))${shift}]` : direct;
    return { pre, access: store ? `${at} = ${value};` : at };
  }
  const hit = `(_a = ${ea}, _v = _a >>> 12, ${tag}[_v & 255] === ((_v << 3) | mode) && (_a & ${mask}) === 0)`;
  const at = `${view}[(${page}[_v & 255] + (_a & 0xfff))${shift}]`;
  if (store) {
    const generic = `if (${hit}) ${at} = ${value}; else { ${clobber}; M.dirty = false; h.store${n}(_a, ${value}); ${exit} }`;
    return { pre: check, access: g ? `if (g${g.id}) ${direct} = ${value}; else ${generic}` : generic };
  }
  const generic = `(${hit} ? ${at} : (${clobber}, h.load${n}(_a)))`;
  return { pre: check, access: g ? `(g${g.id} ? ${direct} : ${generic})` : generic };
}

/**
 * Plain loads (or stores) of one block with the same base register, not written in between, share
 * one TLB check at the first of them: all their bytes in one page that hits the TLB, base aligned
 * for every size (each offset is a multiple of its size). The others then access RAM directly,
 * unless any slow path ran in between (it may have refilled the TLB; the clobber expression
 * clears every group's flag), so TLB misses and walk cycles stay exactly the interpreter's.
 */
interface Group {
  id: number;
  /** Set on the first member: the check's offset range and alignment mask. */
  first: { min: number; maxEnd: number; mask: number } | null;
}

/** Groups the plain memory accesses of a decoded block (see Group); null for the others. */
function groupAccesses(insns: { id: number; w: number; format: Format }[]): (Group | null)[] {
  const version = new Array<number>(32).fill(0);
  const members = new Map<string, { i: number; off: number; size: number }[]>();
  insns.forEach(({ id, w, format }, i) => {
    const { plain, size, writesMem, writesRd } = FACTS[id], rs1 = (w >>> 15) & 31;
    if (plain && rs1 !== 0) {
      const off = IMM_OF[format](w);
      if (off % size === 0) {
        const key = `${writesMem}:${rs1}:${version[rs1]}`;
        (members.get(key) ?? members.set(key, []).get(key)!).push({ i, off, size });
      }
    }
    if (writesRd) version[(w >>> 7) & 31]++;
  });
  const out = new Array<Group | null>(insns.length).fill(null);
  let id = 0;
  for (const list of members.values()) {
    if (list.length < 2) continue;
    const first = {
      min: Math.min(...list.map((m) => m.off)),
      maxEnd: Math.max(...list.map((m) => m.off + m.size - 1)),
      mask: Math.max(...list.map((m) => m.size - 1)),
    };
    list.forEach((m, k) => { out[m.i] = { id, first: k === 0 ? first : null }; });
    id++;
  }
  return out;
}

/** A taken branch's bookkeeping in a block: its extra cycles (in `cyc`) and the taken-branch counter (in `tb`). */
const TAKEN_CODE = `cyc += ${COSTS.takenBranch}; tb++;`;

/** One decoded instruction of a block being translated; `on`: the direction a trace follows its branch or jump in. */
interface Insn { id: number; format: Format; w: number; len: number; vpc: number; on?: boolean }

/** What splicing one instruction needs to know about its place in the block. */
interface Place {
  /** Index in the block, and the taken branches the trace followed before it. */
  i: number;
  takenBefore: number;
  group: Group | null;
  /** Clears every access group's flag (an expression). */
  clobber: string;
  region: boolean;
  used: Set<number>;
  written: Set<number>;
}

/**
 * The code of one instruction in a block (or, `region`, in a region): the row's template expanded
 * with the JIT's slots (semantics.ts): fields as constants, registers in locals, plain loads and
 * stores inlined, a branch or jump a trace follows going on in the trace (the other direction a
 * side exit that leaves with `ip` instructions retired), and, read from the instruction's facts,
 * the trap index (only an instruction that may trap records it, for the handler), the group
 * clobber after a slow path, and the end of the block after a store into code.
 */
function splice(insn: Insn, p: Place): string {
  const { id, format, w, len, vpc, on } = insn;
  const { i, group, clobber, region, used, written } = p;
  const f = FACTS[id];
  const rd = (w >>> 7) & 31, rs1 = (w >>> 15) & 31, rs2 = (w >>> 20) & 31;
  const imm = `(${IMM_OF[format](w)})`;
  const next = (vpc + len) | 0;
  const reg = (r: number) => { if (r) used.add(r); return r ? `r${r}` : '0'; };
  const taken = region ? `tk = ${p.takenBefore + 1};` : TAKEN_CODE;
  // A store into code ends the block after it (slow-path stores only: the fast path never
  // writes code); inside a region, it leaves the region.
  const exit = region ? `if (M.dirty) { ip = ${i + 1}; how = 2; break run; }` : `if (M.dirty) { ip = ${i + 1}; npc = ${next}; break blk; }`;
  let pre = '';
  const access = (store: boolean) => {
    const a = inlineAccess(f.size as 1 | 2 | 4, store, reg(rs1), imm, store ? reg(rs2) : '', group, region, clobber, i, exit);
    pre = a.pre;
    return a.access;
  };
  const slots: TemplateSlots = {
    rd: String(rd), rs1: String(rs1), rs2: String(rs2),
    get r1() { return reg(rs1); },
    get r2() { return reg(rs2); },
    imm, pc: `(${vpc | 0})`, len: String(len),
    // Locals are plain numbers, not Int32Array elements: truncate every result to int32 as the
    // register file would (e.g. `>>>` yields an unsigned value).
    writeRd: (v) => { if (rd) { used.add(rd); written.add(rd); } return `${rd ? `r${rd}` : '_z'} = (${v}) | 0;`; },
    load: () => signExtend(access(false), f.size, f.signed),
    store: () => access(true),
    branch: (cond) => {
      const to = `(${(vpc + IMM_OF[format](w)) | 0})`;
      if (on === undefined) return `if (${cond}) { npc = ${to}; ${taken} }`;
      return on ? `if (${cond}) { ${taken} } else { npc = ${next}; ip = ${i + 1}; break blk; }`
        : `if (${cond}) { npc = ${to}; ${taken} ip = ${i + 1}; break blk; }`;
    },
    // A followed jump (jal x0: no link) just goes on.
    jump: (target) => (on === undefined ? `npc = ${target}; ${taken}` : taken),
  };
  const code = expand(id, slots);
  let body = pre + code; // pre is set while expanding (by load/store)
  // A slow path may refill the TLB: later group members check again (see Group). Plain accesses clobber on their own slow path.
  if (clobber !== '0' && f.mayTrap && !f.plain) body = `${clobber}; ${body}`;
  if (f.writesMem && !f.plain) body = `M.dirty = false; ${body} ${exit}`;
  return f.mayTrap && !(f.plain && region) ? `ip = ${i}; ${body}` : body;
}

/**
 * Translates the block starting at physical address `pa` for virtual pc `vpc0`. Returns null when
 * not even one instruction can be translated (illegal, or crossing the page end): the caller
 * then interprets one instruction, which raises whatever the hardware would.
 */
export function translate(h: HartCore, pa: number, vpc0: number, follow: Follow | null = null): BlockIR | null {
  const u16 = h.mem.u16;
  // Beyond the end of RAM the reader gives 0 (undefined | 0); the length check below stops there.
  const read16 = (at: number) => u16[at >>> 1] | 0;
  const pageBase = pa & ~0xfff, pageEnd = pageBase + 4096;
  const insns: Insn[] = [];
  let a = pa, vpc = vpc0, segment = vpc0;
  while (insns.length < MAX_BLOCK) {
    if (a + 2 > pageEnd) break;
    const raw = fetchInsn(read16, a);
    const len = insnLen(raw), w = insnWord(raw) >>> 0;
    if (a + len > pageEnd || w === 0) break;
    const id = decode(w);
    if (id < 0) break;
    const { format } = INSNS[id];
    const facts = FACTS[id];
    // CSR instructions may read instret/cycle/time: they start a block of their own, so the
    // counters are exact when they run.
    if (insns.length > 0 && facts.startsBlock) break;
    const insn: Insn = { id, format, w, len, vpc };
    insns.push(insn);
    const next = (vpc + len) | 0;
    // A trace goes on through a conditional branch in the direction its basic block mostly took,
    // and through a plain jump, within the page, to code it has not visited (the other direction
    // becomes a side exit); a branch back to the trace's start closes a loop and ends it.
    const target = facts.kind === 'branch' || (facts.kind === 'jal' && ((w >>> 7) & 31) === 0) ? (vpc + IMM_OF[format](w)) | 0 : null;
    const dir = follow === null || target === null || insns.length >= MAX_BLOCK ? null : facts.kind === 'branch' ? follow(segment) : true;
    const to = dir === true ? target! : dir === false ? next : null;
    if (to === null || to === vpc0 || (to ^ vpc0) >>> 12 !== 0 || insns.some((x) => x.vpc === to)) {
      if (facts.endsBlock) break;
      a += len;
      vpc = next;
      continue;
    }
    insn.on = dir!;
    a = pageBase + (to & 0xfff);
    vpc = segment = to;
  }
  const n = insns.length;
  if (n === 0) return null;
  // The trace followed its last branch or jump, but the instruction there could not join (it
  // crosses the page end, does not decode, starts a block of its own): the block ends with it
  // going either way, as in a basic block.
  delete insns[n - 1].on;
  const groups = groupAccesses(insns);
  const groupCount = groups.reduce((k, g) => Math.max(k, g ? g.id + 1 : 0), 0);
  const clobber = groupCount ? `(${Array.from({ length: groupCount }, (_, k) => `g${k}`).join(' = ')} = false)` : '0';
  const prefix: number[] = [0];
  const used = new Set<number>(), written = new Set<number>();
  // Taken branches and jumps the trace follows before each instruction (every later instruction of it ran after them).
  const takenBefore: number[] = [];
  insns.forEach(({ id }, i) => {
    takenBefore.push(i === 0 ? 0 : takenBefore[i - 1] + (insns[i - 1].on === true ? 1 : 0));
    prefix.push(prefix[i] + COSTS.base + EXTRA_CYCLES[id]);
  });
  const code = (i: number, region: boolean) =>
    splice(insns[i], { i, takenBefore: takenBefore[i], group: groups[i], clobber, region, used, written });
  const parts = insns.map((_, i) => code(i, false));
  // The region form is spliced only for blocks that join a region, once.
  let rparts: string[] | null = null;
  const last = insns[n - 1], lastFacts = FACTS[last.id];
  const target = lastFacts.kind === 'branch' || lastFacts.kind === 'jal' ? (last.vpc + IMM_OF[last.format](last.w)) | 0 : null;
  return {
    parts, regionParts: () => (rparts ??= insns.map((_, i) => code(i, true))), prefix, pcs: insns.map((x) => x.vpc), used, written, groups: groupCount, fallthrough: (last.vpc + last.len) | 0,
    target, indirect: lastFacts.kind === 'jalr', selfLoop: target === vpc0, system: lastFacts.endsChain, startsBlock: FACTS[insns[0].id].startsBlock, branch: lastFacts.kind === 'branch',
    trace: insns.some((x) => x.on !== undefined),
    mem: insns.some((x) => FACTS[x.id].plain),
    taken: insns.some((x) => FACTS[x.id].transfers),
    // A block's run ends early (break blk) at a store (into code), and in a trace at a side exit;
    // a region's, at a side exit only (it leaves the region at the others).
    early: insns.some((x) => FACTS[x.id].writesMem || (x.on !== undefined && FACTS[x.id].kind === 'branch')),
    earlyInRegion: insns.some((x) => x.on !== undefined && FACTS[x.id].kind === 'branch'),
  };
}

/** Which way the conditional branch ending the basic block at `vpc` mostly went: taken, not taken, or unknown or mixed (null). */
export type Follow = (vpc: number) => boolean | null;
