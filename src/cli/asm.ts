import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { assemble, AsmError } from '../isa/assembler.js';
import { CliError } from './cli-error.js';

/**
 * `hvsim asm FILE.s -o FILE.elf`: assembles into a static ELF. Resolves to the exit status: 0, or
 * 2 after printing every problem as file:line:column. Raises: CliError for unreadable input.
 */
export async function assembleFile(input: string, output: string): Promise<number> {
  let source: string;
  try { source = readFileSync(input, 'utf8'); } catch (e) { throw new CliError(`asm: cannot read ${input}: ${(e as NodeJS.ErrnoException).code ?? e}`); }
  let elf: Uint8Array;
  try {
    elf = assemble(source, { fileName: input }).elf;
  } catch (e) {
    if (e instanceof AsmError) {
      process.stderr.write(e.message + '\n');
      return 2;
    }
    throw e;
  }
  try {
    writeFileSync(output, elf);
    chmodSync(output, 0o755);
  } catch (e) { throw new CliError(`asm: cannot write ${output}: ${(e as NodeJS.ErrnoException).code ?? e}`); }
  return 0;
}
