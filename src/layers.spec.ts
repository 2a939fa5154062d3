/**
 * The layer rules of docs/architecture.md ("Layers"), checked on the import graph of src/ so they
 * stay true. Every import form counts (import, import type, export ... from, dynamic import()),
 * read with the TypeScript compiler's own pre-processor. Specs (`*.spec.ts`) are exempt from the
 * direction rules: a test may assemble a whole machine to exercise one part of it.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const SRC = dirname(fileURLToPath(import.meta.url));

/** Folders with a place in the layering, lowest first; a folder may import only folders of a lower tier (and itself). */
const TIERS: ReadonlyArray<readonly string[]> = [
  ['isa', 'techniques'],
  ['mmu', 'uarch'],
  ['cpu'],
  ['hypervisor'],
  ['guest'],
  ['migration'],
  ['runtime'],
  ['api'],
];
const TIER = new Map(TIERS.flatMap((folders, t) => folders.map((f) => [f, t] as const)));
/** The emulator and hypervisor core: pure TypeScript, no service framework. */
const CORE = ['isa', 'techniques', 'mmu', 'uarch', 'cpu', 'hypervisor', 'guest', 'migration'];
/** Folders outside the layering that only the service shell (api) may use. */
const SHELL_ONLY = ['persistence', 'config', 'cli', 'cluster', 'client', 'testing'];
/** Packages of the service shell: never imported by the core. */
const FRAMEWORK = /^(@nestjs\/|typeorm$|pg$|pg-|class-validator$|class-transformer$|express$|socket\.io|@socket\.io\/|@electric-sql\/|rxjs$|pino)/;

interface Edge { from: string; to: string; spec: string }

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return sourceFiles(p);
    return p.endsWith('.ts') && !p.endsWith('.d.ts') ? [p] : [];
  });
}

/** Every import of `file`: src-relative paths for relative imports (".js" → ".ts"), package names otherwise. */
function importsOf(file: string): Edge[] {
  const info = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
  const from = relative(SRC, file);
  return info.importedFiles.map(({ fileName: spec }) => {
    if (!spec.startsWith('.')) return { from, to: spec, spec };
    let target = relative(SRC, resolve(dirname(file), spec));
    if (target.endsWith('.js')) target = target.slice(0, -3) + '.ts';
    else if (!target.endsWith('.ts')) target += '.ts';
    return { from, to: target, spec };
  });
}

const folderOf = (srcPath: string): string | null => (srcPath.includes('/') ? srcPath.split('/')[0] : null);
const isSpec = (srcPath: string): boolean => srcPath.endsWith('.spec.ts');
const isLocal = (e: Edge): boolean => e.spec.startsWith('.');

const EDGES: Edge[] = sourceFiles(SRC).flatMap(importsOf);
const fmt = (es: Edge[]): string[] => es.map((e) => `${e.from} imports ${e.spec}`);

/** Strongly connected components with more than one file (or a file importing itself): Tarjan. */
function cycles(nodes: string[], edges: Edge[]): string[][] {
  const next = new Map<string, string[]>(nodes.map((n) => [n, []]));
  for (const e of edges) next.get(e.from)?.push(e.to);
  const index = new Map<string, number>(), low = new Map<string, number>(), onStack = new Set<string>(), stack: string[] = [];
  const out: string[][] = [];
  let counter = 0;
  const visit = (v: string): void => {
    index.set(v, counter); low.set(v, counter); counter++;
    stack.push(v); onStack.add(v);
    for (const w of next.get(v) ?? []) {
      if (!next.has(w)) continue;
      if (!index.has(w)) { visit(w); low.set(v, Math.min(low.get(v)!, low.get(w)!)); } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const scc: string[] = [];
      let w: string;
      do { w = stack.pop()!; onStack.delete(w); scc.push(w); } while (w !== v);
      if (scc.length > 1 || (next.get(v) ?? []).includes(v)) out.push(scc.sort());
    }
  };
  for (const n of nodes) if (!index.has(n)) visit(n);
  return out;
}

describe('layer rules (docs/architecture.md, "Layers")', () => {
  test('the import graph was read (a sanity check of the parser: known edges are there)', () => {
    expect(EDGES.some((e) => e.from === 'runtime/vm.ts' && e.to === 'guest/kernel.ts')).toBe(true);
    expect(EDGES.some((e) => e.from === 'api/vms.ts' && FRAMEWORK.test(e.to))).toBe(true);
    expect(EDGES.filter((e) => isLocal(e) && !e.to.startsWith('..')).every((e) => statSync(join(SRC, e.to)).isFile())).toBe(true);
  });

  test('the core imports no service framework package (NestJS, TypeORM, pg, ...)', () => {
    expect(fmt(EDGES.filter((e) => CORE.includes(folderOf(e.from)!) && !isLocal(e) && FRAMEWORK.test(e.to)))).toEqual([]);
  });

  test('the core and the runtime import nothing of the service shell (api, persistence, config, cli, ...)', () => {
    const shell = ['api', ...SHELL_ONLY];
    const bad = EDGES.filter((e) => [...CORE, 'runtime'].includes(folderOf(e.from)!) && !isSpec(e.from) && isLocal(e) && shell.includes(folderOf(e.to)!));
    expect(fmt(bad)).toEqual([]);
  });

  test('imports go down the tiers only: isa/techniques ← mmu/uarch ← cpu ← hypervisor ← guest ← migration ← runtime ← api', () => {
    const bad = EDGES.filter((e) => {
      const a = folderOf(e.from), b = folderOf(e.to);
      if (!isLocal(e) || isSpec(e.from) || a === null || b === null || a === b || !TIER.has(a) || !TIER.has(b)) return false;
      return TIER.get(b)! >= TIER.get(a)!;
    });
    expect(fmt(bad)).toEqual([]);
  });

  test('the hypervisor and migration do not import the guest kernel\'s layout (the device layout is the platform\'s)', () => {
    const bad = EDGES.filter((e) => ['hypervisor', 'migration'].includes(folderOf(e.from)!) && e.to === 'guest/layout.ts');
    expect(fmt(bad)).toEqual([]);
  });

  const folders = readdirSync(SRC).filter((f) => statSync(join(SRC, f)).isDirectory()).sort();
  test.each(folders)('no import cycle inside src/%s', (folder) => {
    const local = EDGES.filter((e) => isLocal(e) && folderOf(e.from) === folder && folderOf(e.to) === folder);
    const nodes = [...new Set(local.flatMap((e) => [e.from, e.to]))];
    expect(cycles(nodes, local).map((c) => c.join(' -> '))).toEqual([]);
  });
});
