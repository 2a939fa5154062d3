/**
 * VM state outside guest RAM, as the migration stream carries it: one VCPU record per vCPU
 * (binary), one DEVICE record (KHV and UHV state, JSON) and one GUEST_OS record (the guest
 * kernel's exportState, JSON). See docs/migration-protocol.md.
 *
 * Not carried, by design: the G-stage table and hgatp, the gate page's host address and the
 * per-CPU views (the destination builds its own); TLBs and translated blocks (flushed, rebuilt on
 * demand); an LR/SC reservation (lost, so a pending SC fails and the guest retries, as the ISA allows).
 */
import { crc32 } from 'node:zlib';
import { Hart } from '../cpu/hart.js';
import { Btb, Rsb } from '../uarch/costs.js';
import type { Vcpu } from '../hypervisor/khv.js';
import type { DeviceState, MigratableMemory, VcpuState } from './migratable.js';
import { PayloadReader, PayloadWriter, WireError } from './wire.js';

/** Hart fields in VCPU-record order (each an int32). */
export const HART_FIELDS = [
  'pc', 'priv', 'virt', 'mstatus', 'mstatush', 'medeleg', 'mideleg', 'mie', 'mip', 'mtvec', 'mepc', 'mcause', 'mtval', 'mtval2', 'mtinst',
  'mscratch', 'mcounteren', 'stvec', 'sepc', 'scause', 'stval', 'sscratch', 'satp', 'scounteren', 'hstatus', 'hedeleg', 'hideleg', 'htval',
  'htinst', 'hcounteren', 'htimedelta', 'vsstatus', 'vstvec', 'vsscratch', 'vsepc', 'vscause', 'vstval', 'vsatp',
] as const satisfies ReadonlyArray<keyof Hart>;

export function captureVcpu(v: Vcpu, idleCycles: number): VcpuState {
  const h = v.hart;
  const rec = h as unknown as Record<string, number>;
  return {
    id: v.id, halted: v.halted, wfiPending: h.wfiPending, deadline: v.deadline, idleCycles,
    x: h.x.slice(), fields: Int32Array.from(HART_FIELDS, (f) => rec[f]), ctr: h.ctr.slice(),
    btbTag: h.btb.tag.slice(), btbTarget: h.btb.target.slice(), rsb: h.rsb.stack.slice(), rsbTop: h.rsb.top, rsbDepth: h.rsb.depth,
  };
}

/** Puts `s` into vCPU `v` (already configured for this KHV); returns its idle cycles. */
export function restoreVcpu(v: Vcpu, s: VcpuState): number {
  const h = v.hart;
  const rec = h as unknown as Record<string, number>;
  HART_FIELDS.forEach((f, i) => { rec[f] = s.fields[i]; });
  h.x.set(s.x);
  h.x[0] = 0;
  h.ctr.set(s.ctr);
  h.btb.tag.set(s.btbTag);
  h.btb.target.set(s.btbTarget);
  h.rsb.stack.set(s.rsb);
  h.rsb.top = s.rsbTop;
  h.rsb.depth = s.rsbDepth;
  h.wfiPending = s.wfiPending;
  h.reservation = -1;
  h.irqDirty = true;
  h.mmu.flushAll();
  v.halted = s.halted;
  v.deadline = s.deadline;
  return s.idleCycles;
}

export function encodeVcpu(s: VcpuState): Buffer {
  const w = new PayloadWriter().u16(s.id).u8(s.halted ? 1 : 0).u8(s.wfiPending ? 1 : 0).f64(s.deadline).f64(s.idleCycles);
  for (const v of s.x) w.i32(v);
  w.u16(s.fields.length);
  for (const v of s.fields) w.i32(v);
  w.u16(s.ctr.length);
  for (const v of s.ctr) w.f64(v);
  for (const v of s.btbTag) w.i32(v);
  for (const v of s.btbTarget) w.i32(v);
  for (const v of s.rsb) w.i32(v);
  return w.u8(s.rsbTop).u8(s.rsbDepth).done();
}

/** Raises: WireError for a record that does not fit this machine (field or counter counts, ranges). */
export function decodeVcpu(payload: Buffer, ctrCount: number): VcpuState {
  const r = new PayloadReader(payload, 'VCPU');
  const id = r.u16(), halted = r.u8() === 1, wfiPending = r.u8() === 1, deadline = r.f64(), idleCycles = r.f64();
  const x = Int32Array.from({ length: 32 }, () => r.i32());
  const nf = r.u16();
  if (nf !== HART_FIELDS.length) throw new WireError(`VCPU record has ${nf} hart fields, want ${HART_FIELDS.length}`);
  const fields = Int32Array.from({ length: nf }, () => r.i32());
  const nc = r.u16();
  if (nc !== ctrCount) throw new WireError(`VCPU record has ${nc} counters, want ${ctrCount}`);
  const ctr = Float64Array.from({ length: nc }, () => r.f64());
  const btbTag = Int32Array.from({ length: Btb.ENTRIES }, () => r.i32());
  const btbTarget = Int32Array.from({ length: Btb.ENTRIES }, () => r.i32());
  const rsb = Int32Array.from({ length: Rsb.ENTRIES }, () => r.i32());
  const rsbTop = r.u8(), rsbDepth = r.u8();
  r.end();
  if (rsbTop >= Rsb.ENTRIES || rsbDepth > Rsb.ENTRIES) throw new WireError('VCPU record: return stack out of range');
  if (!(deadline >= 0) || !(idleCycles >= 0) || [...ctr].some((c) => !(c >= 0))) throw new WireError('VCPU record: negative or non-numeric clock');
  return { id, halted, wfiPending, deadline, idleCycles, x, fields, ctr, btbTag, btbTarget, rsb, rsbTop, rsbDepth };
}

/** A JSON record payload. */
export function encodeJson(v: unknown): Buffer { return Buffer.from(JSON.stringify(v), 'utf8'); }

/** Raises: WireError for a payload that is not JSON of an object. */
export function decodeJson<T>(payload: Buffer, what: string): T {
  let v: unknown;
  try { v = JSON.parse(payload.toString('utf8')); } catch (e) { throw new WireError(`${what} record is not JSON: ${(e as Error).message}`); }
  if (typeof v !== 'object' || v === null) throw new WireError(`${what} record is not a JSON object`);
  return v as T;
}

/**
 * The END record's RAM digest: a CRC-32 chained over the page number (u32) and the 4096 bytes of
 * every backed guest page in ascending order, except those `skip` names. Source and destination
 * compute it over their own frames.
 */
export function ramDigest(ram: MigratableMemory, skip: (page: number) => boolean = () => false): number {
  const n = Buffer.allocUnsafe(4);
  let d = 0;
  for (const i of ram.backedPages()) {
    if (skip(i)) continue;
    n.writeUInt32LE(i);
    d = crc32(ram.frameBytes(i)!, crc32(n, d));
  }
  return d;
}

