/**
 * VM exit reasons as data, with a support level (DESIGN.md section 8). `handledBy` says which
 * hypervisor level handles it and so how many transitions one exit costs on the baseline path:
 * KHV-only exits are guest -> KHV -> guest (2 transitions, COSTS.vmExit); UHV exits are guest ->
 * KHV -> UHV -> KHV -> guest (4 transitions, COSTS.vmExit + COSTS.khvUhvRoundTrip).
 * An exit whose support is 'unsupported' stops the VM as `crashed` with the reason.
 */
export type ExitSupport = 'full' | 'unsupported';

export interface ExitReason {
  readonly name: string;
  readonly support: ExitSupport;
  readonly handledBy: 'khv' | 'uhv';
  readonly description: string;
}

export const EXIT_REASONS: readonly ExitReason[] = [
  { name: 'gstage-fault', support: 'full', handledBy: 'khv', description: 'first touch of an unbacked guest RAM page: the KHV backs it with a host frame (demand allocation)' },
  { name: 'mmio', support: 'full', handledBy: 'uhv', description: 'load or store to the device region: decoded by the KHV, emulated by the UHV device model (console, power)' },
  { name: 'hypercall', support: 'full', handledBy: 'khv', description: 'ecall from VS mode: SBI set_timer and system_reset; other SBI calls return SBI_ERR_NOT_SUPPORTED' },
  { name: 'wfi', support: 'full', handledBy: 'khv', description: 'vCPU idle: halted until its next timer interrupt' },
  { name: 'privileged-mode', support: 'full', handledBy: 'khv', description: 'technique 6: pmret leaving the privileged mode (emulated by the KHV, as KVM emulates RSM), or the privileged-mode doorbell register (an in-KHV device)' },
  { name: 'privileged-region', support: 'full', handledBy: 'khv', description: 'technique 6: a load or store to the privileged-mode region outside the mode: reported (regionFaults, a region-fault event) and completed as open bus (reads all ones, writes dropped)' },
  { name: 'privileged-region-fetch', support: 'unsupported', handledBy: 'khv', description: 'technique 6: an instruction fetch from the privileged-mode region outside the mode' },
  { name: 'dirty-log', support: 'full', handledBy: 'khv', description: 'first store to a guest page since live migration write-protected it (dirty-page tracking): the KHV logs the page dirty and makes it writable again' },
  { name: 'gstage-fault-outside-ram', support: 'unsupported', handledBy: 'khv', description: 'guest-physical access outside RAM and the device region' },
  { name: 'mmio-unsupported-instruction', support: 'unsupported', handledBy: 'khv', description: 'device access by an instruction other than a plain load or store (e.g. an AMO)' },
  { name: 'virtual-instruction', support: 'unsupported', handledBy: 'khv', description: 'an instruction the guest may not execute in V=1 (e.g. a hypervisor CSR)' },
  { name: 'memory-error', support: 'full', handledBy: 'khv', description: 'machine check from a poisoned frame, or an access to a guest page already found corrupted: the KHV unmaps the page and injects a memory error into the guest, whose kernel kills the owning process (SIGBUS)' },
  { name: 'memory-error-unowned', support: 'unsupported', handledBy: 'khv', description: 'machine check on a frame that is not this VM\'s guest RAM (hypervisor data)' },
  { name: 'domain-switch', support: 'full', handledBy: 'khv', description: 'dgate call or return without the fast gate: the KHV switches G-stage root and guest page table (technique 7; charged COSTS.domainSwitchExit)' },
  { name: 'domain-share', support: 'full', handledBy: 'khv', description: 'dgate registering a shared buffer page for a protection domain' },
  { name: 'domain-blocked', support: 'full', handledBy: 'khv', description: 'root-domain access to a secure protection domain\'s memory: blocked, reported, and an access fault injected into the guest' },
  { name: 'domain-violation', support: 'full', handledBy: 'khv', description: 'dgate to no registered gate (or from guest kernel mode): reported, illegal instruction injected into the guest' },
  { name: 'domain-fault', support: 'full', handledBy: 'khv', description: 'exception inside a secure protection domain: the call is abandoned and returns -EFAULT' },
  { name: 'unknown', support: 'unsupported', handledBy: 'khv', description: 'any other trap into HS or M mode' },
];

/** Native code read a guest page whose frame has an uncorrectable error (or that is already corrupted). */
export class GuestMemoryError extends Error {
  constructor(readonly gpa: number) { super(`memory error at guest-physical 0x${gpa.toString(16)}`); }
}

/** Native code (the KHV, a device, the guest kernel's copies) touched a secure protection domain's memory (domains.ts): blocked. */
export class DomainAccessError extends Error {
  constructor(readonly gpa: number, readonly domain: string) { super(`access to protection domain ${domain} memory at guest-physical 0x${gpa.toString(16)} blocked`); }
}

/** A VM stopped because of an exit it cannot handle, or a host limit. */
export class VmFault extends Error {
  constructor(readonly reason: string, detail: string) { super(`${reason}: ${detail}`); }
}
