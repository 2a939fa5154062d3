// Jest's test order: the suites known to run longest start first, so on a fresh clone (no timing
// cache: Jest would order by file size) the 200-VM stress suite, cluster mode and the differential
// suite do not start last and leave one worker running alone at the end. Otherwise Jest's order
// (last failures first, then longest by its cache, then by size).
const Sequencer = require('@jest/test-sequencer').default;

const LONGEST = ['test/stress.e2e.ts', 'test/cluster.e2e.ts', 'src/cpu/differential.spec.ts', 'test/dashboard.e2e.ts', 'test/migrations.e2e.ts'];

class LongestFirst extends Sequencer {
  sort(tests) {
    const ordered = super.sort(tests);
    const rank = (t) => { const i = LONGEST.findIndex((f) => t.path.endsWith(f)); return i < 0 ? LONGEST.length : i; };
    return [...ordered].sort((a, b) => rank(a) - rank(b));
  }
}

module.exports = LongestFirst;
