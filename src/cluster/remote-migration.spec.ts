import fc from 'fast-check';
import { decodeSpec, encodeSpec } from './remote-migration.js';
import { DEFAULT_SPEC, VmSpec } from '../runtime/vm.js';

describe('a VM spec sent to another node', () => {
  test('decodeSpec(JSON of encodeSpec(spec)) is spec, byte arrays included', () => {
    const bytes = fc.uint8Array({ maxLength: 64 });
    fc.assert(fc.property(
      fc.array(fc.record({ name: fc.string(), elf: bytes, argv: fc.array(fc.string()), env: fc.array(fc.string()), stdin: bytes }), { minLength: 1, maxLength: 3 }),
      fc.array(fc.record({ sizeBytes: fc.nat(), image: bytes }), { maxLength: 2 }),
      fc.nat(),
      (processes, disks, seed) => {
        const spec: VmSpec = { ...DEFAULT_SPEC, seed, processes, disks };
        const back = decodeSpec(JSON.parse(JSON.stringify(encodeSpec(spec))));
        expect(back).toEqual(spec);
        for (const p of back.processes) expect(p.elf).toBeInstanceOf(Uint8Array);
      },
    ), { seed: 22, numRuns: 200 });
  });
});
