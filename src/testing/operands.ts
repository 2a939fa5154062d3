/** fast-check arbitraries for the operands of an instruction-table row. */
import fc from 'fast-check';
import { IMM_RANGE } from '../isa/encode.js';
import { INSNS } from '../isa/table.js';

export interface OperandOptions {
  /** Registers (default: 0-31 uniformly). */
  reg?: fc.Arbitrary<number>;
  /** CSR addresses (default: 0-0xfff). */
  csr?: fc.Arbitrary<number>;
  /** Smallest FENCE pred/succ set (default 0). */
  minFenceSet?: number;
  /** Also draw 0 and +-one unit of the immediate more often. */
  edgeImmediates?: boolean;
}

/** Random operands within the ranges of row `id`'s format. */
export function operandsFor(id: number, opts: OperandOptions = {}) {
  const [lo, hi, align] = IMM_RANGE[INSNS[id].format] ?? [0, 0, 1];
  const uniform = fc.integer({ min: Math.ceil(lo / align), max: Math.floor(hi / align) }).map((v) => v * align);
  const imm = opts.edgeImmediates
    ? fc.oneof(uniform, fc.constantFrom(0, align, -align, 255, 2047, -2048).filter((v) => v >= lo && v <= hi && v % align === 0))
    : uniform;
  const reg = opts.reg ?? fc.integer({ min: 0, max: 31 });
  const set = fc.integer({ min: opts.minFenceSet ?? 0, max: 15 });
  return fc.record({
    rd: reg, rs1: reg, rs2: reg, imm, csr: opts.csr ?? fc.integer({ min: 0, max: 0xfff }),
    aq: fc.integer({ min: 0, max: 1 }), rl: fc.integer({ min: 0, max: 1 }), pred: set, succ: set,
  });
}
