/**
 * The built-in secure key-store protection domain (technique 7) and the root-domain workload that
 * uses it: workloads/domains/keystore.s (the domain: seal, unseal and sign over a key that lives
 * only in its private memory) and workloads/domains/keystore-client.s (the client, assembled with
 * workloads/lib.s). Both are assembled from source with hvsim's own assembler; `npm run workloads`
 * also writes them to workloads/bin (KEYSTORE_BINARIES; a test checks the committed ones match) for
 * `hvsim run|experiment ... --domain keystore` and for uploading as images.
 */
import { readFileSync } from 'node:fs';
import { assemble } from '../isa/assembler.js';
import type { DomainSpec } from '../hypervisor/domains.js';

const ROOT = new URL('../../', import.meta.url);
const source = (path: string): string => readFileSync(new URL(path, ROOT), 'utf8');

/** Gate numbers of the key-store domain when it is a VM's first domain: its entry points in order. */
export const KEYSTORE_ENTRY_POINTS = ['ks_seal', 'ks_unseal', 'ks_sign'] as const;
export const KEYSTORE_MEMORY_KIB = 64;

/** The key-store domain's ELF. */
export function keystoreDomainElf(): Uint8Array {
  return assemble(source('workloads/domains/keystore.s'), { fileName: 'workloads/domains/keystore.s' }).elf;
}

/** The key-store domain as a VM spec's domain. */
export function keystoreDomain(name = 'keystore'): DomainSpec {
  return { name, elf: keystoreDomainElf(), entryPoints: [...KEYSTORE_ENTRY_POINTS], memoryKiB: KEYSTORE_MEMORY_KIB };
}

/** The client workload's ELF (argv[1]: rounds, default 100). */
export function keystoreClientElf(): Uint8Array {
  return assemble(source('workloads/domains/keystore-client.s') + '\n' + source('workloads/lib.s'), { fileName: 'workloads/domains/keystore-client.s' }).elf;
}

/** The committed ELFs of the key-store pair in workloads/bin, and what builds each. */
export const KEYSTORE_BINARIES: ReadonlyArray<{ file: string; build: () => Uint8Array }> = [
  { file: 'keystore-domain.elf', build: keystoreDomainElf },
  { file: 'keystore-client.elf', build: keystoreClientElf },
];
