/**
 * The hvsim command. Subcommands are a table; each prints one-line errors and exits with
 * status 2 on bad input.
 */
import { asmCommand } from './asm.js';
import { disasmCommand } from './disasm.js';
import { serveCommand } from './serve.js';
import { runCommand } from './run.js';
import { experimentCommand } from './experiment.js';
import { CliError, Command } from './cli-error.js';

export const COMMANDS: Command[] = [runCommand, experimentCommand, asmCommand, disasmCommand, serveCommand];

export function help(): string {
  const w = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    'usage: hvsim COMMAND [ARGS...]',
    '',
    'commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(w)}  ${c.summary}\n  ${' '.repeat(w)}  ${c.usage}`),
    '',
    'Not available yet: bench (see README.md, "Status").',
    '',
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(help());
    return name === undefined ? 2 : 0;
  }
  const cmd = COMMANDS.find((c) => c.name === name);
  try {
    if (!cmd) throw new CliError(`hvsim: unknown command '${name}' (try hvsim --help)`);
    return await cmd.run(args);
  } catch (e) {
    if (e instanceof CliError) {
      process.stderr.write(`${e.message}\n`);
      return e.status;
    }
    throw e;
  }
}

const self = process.argv[1] ?? '';
if (/(?:^|[\\/])(main\.[jt]s|hvsim(\.js)?)$/.test(self) || import.meta.url === `file://${self}`) {
  main(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (e) => {
    process.stderr.write(`hvsim: internal error: ${e instanceof Error ? e.stack : e}\n`);
    process.exitCode = 70;
  });
}
