import { Writable } from 'node:stream';
import { migrationProgress, progressView } from './progress.js';

/** A stream that records what is written, a terminal or not. */
function sink(isTTY: boolean): NodeJS.WriteStream & { text: string } {
  const s = new Writable({ write(chunk, _enc, done) { s.text += String(chunk); done(); } }) as unknown as NodeJS.WriteStream & { text: string };
  s.text = '';
  Object.assign(s, { isTTY, columns: 120, cursorTo: () => true, clearLine: () => true, moveCursor: () => true });
  return s;
}

describe('progressView', () => {
  test('off a terminal: one line per change, never a carriage return', () => {
    const s = sink(false);
    const v = progressView('migrate x', { stream: s });
    v.update(0, 'pending'); v.update(0, 'pending'); v.update(0.5, 'precopy, round 1'); v.stop();
    expect(s.text).toBe('migrate x: pending\nmigrate x: precopy, round 1\n');
  });

  test('off a terminal with lines: false, nothing', () => {
    const s = sink(false);
    const v = progressView('start x', { stream: s, lines: false });
    v.update(0.5, 'running'); v.stop();
    expect(s.text).toBe('');
  });

  test('on a terminal: a bar with the percentage and the label', () => {
    const s = sink(true);
    const v = progressView('start x', { stream: s });
    v.update(1, 'succeeded'); v.stop();
    expect(s.text).toMatch(/start x \[[^\]]*\] 100% succeeded/);
  });
});

describe('migrationProgress', () => {
  test('the share of memory already clean, with the phase, round, bytes and expected downtime', () => {
    const [f, label] = migrationProgress('precopy', { total: 4 << 20, remaining: 1 << 20, transferred: 6 << 20, round: 2, expectedDowntimeMs: 1.25 });
    expect(f).toBe(0.75);
    expect(label).toBe('precopy, round 2, 6.0 MiB sent, 1.0 MiB dirty, downtime ~1.3 ms');
    expect(migrationProgress('pending', null)).toEqual([0, 'pending']);
    expect(migrationProgress('completed', {})).toEqual([1, 'completed']);
  });
});
