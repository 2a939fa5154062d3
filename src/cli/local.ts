/**
 * The local commands: they run programs in this process, with no server or database. Each
 * action imports its implementation when it runs, so `hvsim --help` and one command's start-up
 * load only what that command needs (the emulator for run/experiment/asm/disasm, NestJS, TypeORM
 * and pg only for serve).
 */
import { Command, Option } from 'commander';
import { addVmOptions, collect, intOption } from './options.js';

export function registerLocalCommands(program: Command): void {
  addVmOptions(program.command('run')
    .summary('run an RV32 program in an in-process VM, like qemu-riscv32')
    .description('Runs FILE (a static RV32 ELF, or assembly source ending in .s/.S) as the only process of a fresh in-process VM, '
      + 'with no server or database. Guest stdout/stderr go byte for byte to ours, guest stdin is ours, and the exit status is '
      + "the guest's, or 128 + the signal number when a signal killed it (139 for SIGSEGV); 70 when the VM crashed, 124 when "
      + '--max-instructions stopped it, 2 for bad input.')
    .argument('<file>', 'static RV32 ELF, or assembly source (.s/.S)')
    .argument('[args...]', "the guest program's arguments (put them after --)"))
    .option('--technique <setting>', 'NAME=on|off or NAME.PARAM=VALUE (repeatable; see docs/techniques)', collect, [])
    .option('--stats <file.json>', "write the run's counters as JSON (checked writable before the run), with the jit's per-tier costs under 'jit'")
    .option('--max-instructions <n>', 'stop the VM after this many instructions (exit status 124)', (v) => intOption('run', '--max-instructions', v, 1, Number.MAX_SAFE_INTEGER))
    .action(async (file: string, args: string[], opts) => {
      const { runFile } = await import('./run.js');
      process.exitCode = await runFile(file, args, opts);
    });

  addVmOptions(program.command('experiment')
    .summary('run a program once per technique variant and compare cycles, crossings, exits and output')
    .description('Runs FILE on a fresh in-process VM per variant and prints the comparison against the first variant. '
      + 'SETTINGS is a comma list of NAME=on|off and NAME.PARAM=VALUE, empty for a baseline (--variant off:), '
      + 'and spectreV2=none|retpoline for the variant\'s own mitigation (default --spectre-v2). '
      + 'Exit status 0, or 1 when a variant diverged from the baseline (different output or status).')
    .argument('<file>', 'static RV32 ELF, or assembly source (.s/.S)')
    .argument('[args...]', "the guest program's arguments (put them after --)"))
    .option('--variant <name:settings>', 'a variant, NAME:SETTINGS (repeatable; the first is the baseline)', collect, [])
    .option('--repetitions <n>', 'runs per variant, 1-100 (default 1)', (v) => intOption('experiment', '--repetitions', v, 1, 100))
    .option('--json', 'print the comparison as JSON')
    .action(async (file: string, args: string[], opts) => {
      const { runExperiment } = await import('./experiment.js');
      process.exitCode = await runExperiment(file, args, opts);
    });

  program.command('asm')
    .summary('assemble GNU-as syntax RV32 source into a static ELF')
    .description('Assembles FILE.s (GNU as syntax, RV32IMAC + Zicsr + Zifencei + privileged + H) into a static ELF with entry _start '
      + 'and .text at 0x10000. Every problem is printed once as file:line:column: error: ..., and the exit status is then 2.')
    .argument('<file.s>', 'assembly source')
    .addOption(new Option('-o, --output <file.elf>', 'the ELF to write').makeOptionMandatory())
    .action(async (file: string, opts: { output: string }) => {
      const { assembleFile } = await import('./asm.js');
      process.exitCode = await assembleFile(file, opts.output);
    });

  program.command('disasm')
    .summary('list the executable sections of an RV32 ELF in objdump -d syntax')
    .argument('<file.elf>', 'RV32 ELF')
    .action(async (file: string) => {
      const { disassembleFile } = await import('./disasm.js');
      process.exitCode = await disassembleFile(file);
    });

  program.command('serve')
    .summary('run the hvsim service (as npm start; configured by environment variables, see README.md)')
    .action(async () => {
      const { runServiceFromEnv } = await import('../service-main.js');
      await runServiceFromEnv();
      await new Promise(() => { /* runs until a signal stops the process */ });
    });
}
