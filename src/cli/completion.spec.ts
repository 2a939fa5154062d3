import { execFileSync } from 'node:child_process';
import { buildProgram, modulesFor } from './main.js';
import { bashCompletion } from './completion.js';

/** Completes `words` (the last one being typed) with the generated script in a real bash. */
function complete(script: string, words: string[]): string[] {
  const line = words.map((w) => `'${w}'`).join(' ');
  const out = execFileSync('bash', ['-c', `${script}\nCOMP_WORDS=(${line}); COMP_CWORD=${words.length - 1}; _hvsim; printf '%s\\n' "\${COMPREPLY[@]}"`], { encoding: 'utf8' });
  return out.split('\n').filter(Boolean).sort();
}

describe('hvsim completion', () => {
  let script = '';
  beforeAll(async () => { script = bashCompletion(buildProgram(await modulesFor(['completion']))); });

  test('completes subcommands at each level, from the command tree', () => {
    expect(complete(script, ['hvsim', 'vm', 'st'])).toEqual(['start', 'stop']);
    expect(complete(script, ['hvsim', 'ho'])).toEqual(['hosts']);
    expect(complete(script, ['hvsim', '--json', 'hosts', ''])).toEqual(['create', 'get', 'ls', 'rm']);
  });

  test('completes the options of the command reached, global ones included', () => {
    expect(complete(script, ['hvsim', 'vm', 'migrate', 'ID', 'HOST', '--w'])).toEqual(['--watch']);
    expect(complete(script, ['hvsim', 'run', '--eng'])).toEqual(['--engine']);
    expect(complete(script, ['hvsim', 'hosts', 'ls', '--js'])).toEqual(['--json']);
  });

  test('every command of the program is in the script', async () => {
    const program = buildProgram(await modulesFor(['completion']));
    for (const c of program.commands) expect(script).toContain(`'${c.name()}')`);
  });
});
