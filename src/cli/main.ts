/**
 * The hvsim command, on commander. Commands come from modules: a module is a function that adds
 * its commands to the program (`registerLocalCommands` here; client commands register the same
 * way). Every command has --help; usage errors are one line and exit status 2.
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { CliError } from './cli-error.js';
import { registerLocalCommands } from './local.js';
import { registerCompletion } from './completion.js';

/** Adds commands to the program. */
export type CommandModule = (program: Command) => void;

/** The modules of the local commands (run, experiment, asm, disasm, serve) and `completion`. */
export const COMMAND_MODULES: CommandModule[] = [registerLocalCommands, registerCompletion];

const LOCAL_COMMANDS = new Set(['run', 'experiment', 'asm', 'disasm', 'serve']);

/**
 * The modules for one invocation: a local command loads only the local module (the client
 * commands' SDK and table library cost ~100 ms of start-up that `hvsim run` must not pay);
 * anything else (help, a client command, a global option first) also loads the client commands.
 */
export async function modulesFor(argv: string[]): Promise<CommandModule[]> {
  if (argv.length > 0 && LOCAL_COMMANDS.has(argv[0])) return COMMAND_MODULES;
  const { registerClientCommands } = await import('./client/index.js');
  return [...COMMAND_MODULES, registerClientCommands];
}

/** The package version (package.json sits two levels above both src/cli and dist/cli). */
export function version(): string {
  return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}

/** Where help and usage errors go (stdout and stderr unless a test captures them). */
export interface CliIo { out(s: string): void; err(s: string): void }
const STDIO: CliIo = { out: (s) => { process.stdout.write(s); }, err: (s) => { process.stderr.write(s); } };

/** The hvsim program with the commands of `modules`; errors throw CommanderError instead of exiting. */
export function buildProgram(modules: CommandModule[] = COMMAND_MODULES, io: CliIo = STDIO): Command {
  const program = new Command('hvsim')
    .description('Simulated hypervisor-as-a-service: run RV32 programs locally, or serve the REST API.')
    .version(version(), '-V, --version', 'print the version')
    .helpCommand('help [command]', 'show help for a command')
    .exitOverride()
    // Commander puts a suggestion ("Did you mean ...?") on a line of its own: keep errors one line.
    .configureOutput({ writeOut: io.out, writeErr: io.err, outputError: (s, write) => write(s.replace(/\n(?=.)/g, ' ')) });
  for (const register of modules) register(program);
  return program;
}

/** Runs hvsim with `argv` (without node and script); resolves to the exit status. */
export async function main(argv: string[], io: CliIo = STDIO): Promise<number> {
  const program = buildProgram(await modulesFor(argv), io);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      // Help or version asked for: 0. No command, or a usage error (already printed): 2.
      return e.code === 'commander.helpDisplayed' || e.code === 'commander.version' ? 0 : 2;
    }
    if (e instanceof CliError) {
      io.err(`${e.message}\n`);
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
