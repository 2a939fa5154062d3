import { assembleKernelText, buildKernelText, kernelTextFromPrebuilt, MITIGATIONS, prebuiltKernelTexts } from './kernel-text.js';

describe('prebuilt kernel text', () => {
  const json = prebuiltKernelTexts();

  it.each(MITIGATIONS)('%s: the prebuilt text is the assembled one, bytes, symbols and source', (m) => {
    const fresh = assembleKernelText(m);
    const pre = kernelTextFromPrebuilt(json, m)!;
    expect(pre).toBeDefined();
    expect(Buffer.from(pre.bytes).equals(Buffer.from(fresh.bytes))).toBe(true);
    expect([...pre.symbols]).toEqual([...fresh.symbols]);
    expect(pre.source).toBe(fresh.source);
    expect(Buffer.from(buildKernelText(m).bytes).equals(Buffer.from(fresh.bytes))).toBe(true);
  });

  it('ignores texts from another source or address, corrupt JSON, a missing variant and no file', () => {
    const texts = JSON.parse(json);
    const edited = (f: (t: Record<string, { source: string; base: number; bytes: string }>) => void) => { const t = structuredClone(texts); f(t); return JSON.stringify(t); };
    expect(kernelTextFromPrebuilt(edited((t) => { t.none.source = t.none.source.replace('csrrw sp, sscratch, sp', 'nop'); }), 'none')).toBeUndefined();
    expect(kernelTextFromPrebuilt(edited((t) => { t.none.base += 4; }), 'none')).toBeUndefined();
    expect(kernelTextFromPrebuilt(edited((t) => { t.none.bytes = ''; }), 'none')).toBeUndefined();
    expect(kernelTextFromPrebuilt(edited((t) => { delete (t as Record<string, unknown>).retpoline; }), 'retpoline')).toBeUndefined();
    expect(kernelTextFromPrebuilt(edited((t) => { t.none = t.retpoline; }), 'none')).toBeUndefined();
    expect(kernelTextFromPrebuilt(json.slice(0, json.length >> 1), 'none')).toBeUndefined();
    expect(kernelTextFromPrebuilt('null', 'none')).toBeUndefined();
    expect(kernelTextFromPrebuilt(undefined, 'none')).toBeUndefined();
  });
});
