/**
 * A hart as the rest of the system runs it: the architectural state and memory access of
 * HartCore (hart-core.ts) plus the engine seam, which lives here on the engines' side: which
 * engine `run` uses and the JIT's translation cache. The engines themselves (interp.ts, jit.ts)
 * know only HartCore, so src/cpu has no import circle: trap.ts, csr-bits.ts <- hart-core.ts <-
 * interp.ts, jit*.ts, csr.ts <- hart.ts (which hands the CSR table to the hart).
 */
import { HartCore } from './hart-core.js';
import { CSR_BY_ADDR } from './csr.js';
import { runInterpreter } from './interp.js';
import { Jit, runJit } from './jit.js';
import { runWasm } from './wasm/engine.js';

export { TRAP, STOP, StopReason } from './trap.js';
export { HartCore, PRIV_U, PRIV_S, PRIV_M, NATIVE_M, NATIVE_HS, NATIVE_VS } from './hart-core.js';

/**
 * Execution engines: the reference interpreter, the block translator (default), or hot pages
 * compiled to WebAssembly (opt-in; needs RAM from createWasmDram, see wasm/engine.ts).
 */
export type Engine = 'interp' | 'jit' | 'wasm';

export class Hart extends HartCore {
  protected readonly csrs = CSR_BY_ADDR;
  /** The engine `run` uses; switching is allowed between runs (the state is the same). */
  engine: Engine = 'jit';
  /** Translation cache of the jit engine, created on first use. */
  jit: Jit | null = null;

  /**
   * Runs at most `max` instructions. Returns a StopReason. On Trap, the trap has been taken
   * architecturally (pc is the handler address in the native mode). On Gate, pc is the gate
   * address and nothing was executed there.
   */
  run(max: number): number {
    if (this.engine === 'interp') return runInterpreter(this, max);
    if (this.engine === 'wasm') return runWasm(this, max);
    this.jit ??= new Jit(this);
    return runJit(this, this.jit, max);
  }
}
