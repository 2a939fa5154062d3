import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { assemble, AsmError } from '../isa/assembler.js';
import { CliError, Command } from './cli-error.js';

export const asmCommand: Command = {
  name: 'asm',
  summary: 'assemble a GNU-as syntax RV32 source into a static ELF (entry _start, text at 0x10000)',
  usage: 'hvsim asm FILE.s -o FILE.elf',
  async run(args) {
    let input: string | undefined;
    let output: string | undefined;
    for (let i = 0; i < args.length; i++) {
      if (args[i] === '-o') output = args[++i];
      else if (args[i].startsWith('-')) throw new CliError(`asm: unknown option ${args[i]}`);
      else if (input === undefined) input = args[i];
      else throw new CliError(`asm: unexpected argument ${args[i]}`);
    }
    if (!input || !output) throw new CliError(`usage: ${this.usage}`);
    let source: string;
    try { source = readFileSync(input, 'utf8'); } catch (e) { throw new CliError(`asm: cannot read ${input}: ${(e as NodeJS.ErrnoException).code ?? e}`); }
    try {
      const r = assemble(source, { fileName: input });
      writeFileSync(output, r.elf);
      chmodSync(output, 0o755);
      return 0;
    } catch (e) {
      if (e instanceof AsmError) {
        process.stderr.write(e.message + '\n');
        return 2;
      }
      throw e;
    }
  },
};
