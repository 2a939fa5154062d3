import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** Runs `body` in a fresh Node process (TypeScript through tsx); resolves with its exit code and output. */
function run(body: string): Promise<{ code: number | null; out: string }> {
  const guard = fileURLToPath(new URL('./process-guard.ts', import.meta.url));
  const script = `import(${JSON.stringify(guard)}).then((g) => { ${body} });`;
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { out += d; });
    child.on('exit', (code) => resolve({ code, out }));
  });
}

describe('process guard', () => {
  test('without it an unhandled rejection ends the process (the failure it guards against)', async () => {
    const r = await run(`Promise.reject(new Error('pool timeout')); setTimeout(() => console.log('ALI' + 'VE'), 200);`);
    expect(r.code).not.toBe(0);
    expect(r.out.split('\n')).not.toContain('ALIVE');
  }, 300_000);

  test('with it the rejection is logged and counted, and the process keeps running', async () => {
    const r = await run(`
      const lines = [];
      g.installProcessGuard({ error: (m) => lines.push(m) });
      Promise.reject(new Error('timeout exceeded when trying to connect'));
      setTimeout(() => { console.log(JSON.stringify({ n: g.processGuard.unhandledRejections, logged: lines.join('') })); console.log('ALI' + 'VE'); }, 200);`);
    expect(r.code).toBe(0);
    expect(r.out.split('\n')).toContain('ALIVE');
    const report = JSON.parse(r.out.split('\n')[0]) as { n: number; logged: string };
    expect(report.n).toBe(1);
    expect(report.logged).toContain('timeout exceeded when trying to connect');
  }, 300_000);
});
