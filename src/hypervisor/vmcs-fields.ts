/**
 * The VM-control state of one VM as fields (technique 5, US20240028359A1), and the field access
 * map the KHV configures: for each field, whether the UHV running in the unprivileged hypervisor
 * mode may read and/or write it directly.
 *
 * A UHV access to a field goes one of three ways (VmControl.access):
 * - direct: the technique is on and the map grants the access: a plain access (COSTS.base);
 * - mediated: otherwise: the access faults to the KHV, which performs it and returns (the
 *   baseline's ioctl-style KHV call: uhv->khv, khv->uhv, COSTS.uhvFieldCall);
 * - refused: the field is reserved to the KHV (`khvOnly`: the G-stage root, host interrupt state,
 *   exception delegation, the maps themselves): the fault is reported (an event), nothing changes.
 * A map can never grant a khvOnly field: the catalogue's `fieldAccess` parameter lists only the
 * others, so a configuration naming one is a 400.
 */
export const FIELD_READ = 1;
export const FIELD_WRITE = 2;

export interface VmcsField {
  readonly name: string;
  /** Reserved to the KHV: a UHV access is always refused. */
  readonly khvOnly: boolean;
  readonly description: string;
}

/** One row per field; ids are the row indexes (FIELD). */
export const VMCS_FIELDS: readonly VmcsField[] = [
  { name: 'guestRegs', khvOnly: false, description: 'the vCPU\'s general registers x1-x31' },
  { name: 'guestPc', khvOnly: false, description: 'the pc of the exiting instruction' },
  { name: 'exitReason', khvOnly: false, description: 'why the vCPU exited (mmio, hypercall)' },
  { name: 'exitQualification', khvOnly: false, description: 'exit details: for MMIO the guest-physical address, size, direction, register and sign of the access (the syndrome the hardware decodes)' },
  { name: 'pcAdvance', khvOnly: false, description: 'bytes the guest pc advances by when the vCPU resumes' },
  { name: 'interruptInjection', khvOnly: false, description: 'the VS-level interrupts pending for the vCPU (hvip)' },
  { name: 'timerDeadline', khvOnly: false, description: 'the virtual time at which the vCPU\'s timer interrupt fires' },
  { name: 'gstageRoot', khvOnly: true, description: 'hgatp: the root of the G-stage table (escape: map host memory into the guest)' },
  { name: 'hostInterrupts', khvOnly: true, description: 'host interrupt delegation and enables (mideleg, hideleg, mie host bits)' },
  { name: 'exceptionDelegation', khvOnly: true, description: 'hedeleg/medeleg: which traps leave the guest' },
  { name: 'fieldAccessMap', khvOnly: true, description: 'this map' },
  { name: 'exitRoutingMap', khvOnly: true, description: 'the exit-routing map' },
];

export const FIELD = Object.fromEntries(VMCS_FIELDS.map((f, i) => [f.name, i])) as Record<string, number>;

/** The grantable fields, as the catalogue lists them for `fieldAccess` (a unit test checks they agree). */
export const GRANTABLE_FIELDS = VMCS_FIELDS.filter((f) => !f.khvOnly).map((f) => f.name);

/** Field access bits by field id, from a catalogue-validated `{field: ''|'r'|'w'|'rw'}`; absent fields get no access. */
export function fieldAccessBits(config: Readonly<Record<string, string>> | undefined): Uint8Array {
  const bits = new Uint8Array(VMCS_FIELDS.length);
  for (const [name, mode] of Object.entries(config ?? {})) {
    const id = FIELD[name];
    if (id === undefined || VMCS_FIELDS[id].khvOnly) throw new RangeError(`field ${name} cannot be granted to the UHV`);
    bits[id] = (mode.includes('r') ? FIELD_READ : 0) | (mode.includes('w') ? FIELD_WRITE : 0);
  }
  return bits;
}
