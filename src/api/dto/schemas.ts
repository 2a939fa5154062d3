/**
 * Response schemas of the REST API (OpenAPI 3.0 schema objects), added to the generated
 * document's components by src/openapi.ts. They describe what the views in src/api/*.ts return;
 * the contract test (test/openapi-contract.e2e.ts) validates real responses against them, so a
 * view and its schema cannot drift apart silently.
 */
import type { SchemaObject, ReferenceObject } from '@nestjs/swagger';
import { VM_STATES } from '../../runtime/vm-state.js';
import { MIGRATION_PHASES } from '../migrations.js';

type S = SchemaObject | ReferenceObject;
export const ref = (name: string): ReferenceObject => ({ $ref: `#/components/schemas/${name}` });
const uuid: S = { type: 'string', format: 'uuid' };
const time: S = { type: 'string', format: 'date-time' };
const int: S = { type: 'integer' };
const counts: S = { type: 'object', additionalProperties: { type: 'integer' } };
const obj = (properties: Record<string, S>, required = Object.keys(properties), extra: Partial<SchemaObject> = {}): SchemaObject =>
  ({ type: 'object', properties, required, ...extra });
const page = (item: string): SchemaObject => obj({
  items: { type: 'array', items: ref(item) },
  nextPageToken: { type: 'string', description: 'present when another page may follow: pass it as pageToken' },
}, ['items']);
const nullable = (s: SchemaObject): SchemaObject => ({ ...s, nullable: true });

const HOST_EXAMPLE = {
  id: '0b6f3f4e-5c1a-4b8e-9a57-2f5b8f0d1c11', name: 'host-a', cpus: 4, memoryMiB: 256, techniques: {}, state: 'ready',
  createdAt: '2026-01-01T00:00:00.000Z', updatedAt: '2026-01-01T00:00:00.000Z',
  memory: { frames: 65536, freeFrames: 65536, freeMiB: 256, poisonedFrames: 0, retiredFrames: 0, framesByVm: {} },
};
const OPERATION_EXAMPLE = {
  id: '6d1c3a52-77b4-4f55-8c7e-0e5e2b8d9f01', kind: 'vm.start', subject: 'vm:3c0e8e9a-1f4b-4f0e-8a59-6f1e2d3c4b5a', state: 'pending',
  progress: 0, error: null, result: null, createdAt: '2026-01-01T00:00:00.000Z', updatedAt: '2026-01-01T00:00:00.000Z',
};

export const SCHEMAS: Record<string, SchemaObject> = {
  Problem: obj({
    type: { type: 'string', format: 'uri', example: 'https://hvsim.dev/problems/not-found' },
    title: { type: 'string', example: 'Not Found' },
    status: { type: 'integer', example: 404 },
    detail: { type: 'string', example: 'vm 3c0e8e9a-1f4b-4f0e-8a59-6f1e2d3c4b5a does not exist' },
    errors: { type: 'array', description: 'per-field problems (validation errors, assembler errors)', items: { type: 'object' } },
  }, ['type', 'title', 'status', 'detail'], {
    description: 'An RFC 9457 problem: `type`, `title`, `status`, `detail`, and members particular to the problem (for example `state`, `freeMiB`, `errors`).',
    additionalProperties: true,
  }),
  Health: obj({ status: { type: 'string', enum: ['ok'] } }),
  Readiness: obj({
    status: { type: 'string', enum: ['ok', 'error'] },
    info: { type: 'object', additionalProperties: true },
    error: { type: 'object', additionalProperties: true },
    details: { type: 'object', additionalProperties: true },
  }, ['status'], { description: 'The readiness report of @nestjs/terminus: one entry per dependency (the database).' }),
  TenantCreated: obj({
    id: uuid, name: { type: 'string' },
    token: { type: 'string', description: 'the tenant\'s bearer token, shown only in this response (only its hash is stored)', example: 'hvt_c2VjcmV0LXRva2VuLWV4YW1wbGU' },
    createdAt: time,
  }),
  HostMemory: obj({
    frames: { type: 'integer', description: '4 KiB frames of host DRAM' },
    freeFrames: int, freeMiB: int, poisonedFrames: int, retiredFrames: int,
    framesByVm: { ...counts, description: 'frames held by each running VM, by VM id' } as SchemaObject,
  }),
  Host: obj({
    id: uuid, name: { type: 'string' }, cpus: int, memoryMiB: int,
    techniques: { type: 'object', additionalProperties: true, description: 'the host\'s technique defaults (GET /v1/techniques lists them)' },
    state: { type: 'string', enum: ['ready', 'maintenance', 'failed'] },
    createdAt: time, updatedAt: time, memory: ref('HostMemory'),
  }, undefined, { example: HOST_EXAMPLE }),
  HostList: page('Host'),
  Node: obj({
    id: { type: 'string', description: 'HVSIM_NODE_ID' }, address: { type: 'string', description: 'HVSIM_ADVERTISE_ADDRESS' },
    httpUrl: { type: 'string', description: 'where other nodes forward requests about its hosts' },
    capacityMiB: int, usedMiB: { type: 'integer', description: 'memory of the hosts it owns' },
    heartbeatAt: time, startedAt: time, alive: { type: 'boolean', description: 'its heartbeat is younger than HVSIM_NODE_TIMEOUT_MS' },
    leader: { type: 'boolean' },
    hosts: { type: 'array', items: obj({ id: uuid, tenantId: uuid, name: { type: 'string' }, memoryMiB: int, state: { type: 'string' }, locked: { type: 'boolean', description: 'this node holds the host\'s lock and runs it (false while it is being taken over)' } }) },
  }),
  NodeList: obj({
    cluster: { type: 'boolean', description: 'false on a single node (then no nodes are listed)' },
    thisNode: { type: 'string', nullable: true, description: 'the node that answered' },
    leader: { type: 'string', nullable: true, description: 'the node holding the leader lock' },
    nodes: { type: 'array', items: ref('Node') },
  }),
  Image: obj({
    id: uuid, name: { type: 'string' }, format: { type: 'string', enum: ['elf', 'asm'] },
    sha256: { type: 'string', pattern: '^[0-9a-f]{64}$' }, entry: { type: 'integer', description: 'the ELF entry point' },
    sizeBytes: int, builtin: { type: 'boolean' }, description: { type: 'string', description: 'built-in images only' }, createdAt: time,
  }, ['id', 'name', 'format', 'sha256', 'entry', 'sizeBytes', 'builtin', 'createdAt']),
  ImageList: page('Image'),
  Process: obj({
    imageId: uuid, argv: { type: 'array', items: { type: 'string' } }, env: { type: 'array', items: { type: 'string' } }, stdin: { type: 'string' },
  }, ['imageId']),
  Vm: obj({
    id: uuid, name: { type: 'string' }, hostId: uuid, vcpus: int, memoryMiB: int,
    processes: { type: 'array', items: ref('Process') },
    disks: { type: 'array', description: 'the VM\'s disks, /dev/vda first: an image\'s bytes or an empty disk, copy-on-write per VM', items: { type: 'object', properties: { imageId: uuid, sizeMiB: int } } },
    techniques: { type: 'object', additionalProperties: true, description: 'per-VM technique overrides' },
    seed: int, engine: { type: 'string', enum: ['interp', 'jit'] },
    spectreV2Mitigation: { type: 'string', enum: ['none', 'retpoline'] }, crossingPreset: { type: 'string', enum: ['none', 'kpti'] },
    state: { type: 'string', enum: [...VM_STATES] },
    stateReason: nullable({ type: 'string' }), createdAt: time, updatedAt: time,
  }),
  VmList: page('Vm'),
  ProcessStatus: obj({
    pid: int, name: { type: 'string' }, state: { type: 'string' },
    exitCode: int, signal: int, faultPc: int, faultAddress: int,
    status: { type: 'integer', description: 'what a shell reports: the exit code, or 128 + signal' },
  }, ['pid', 'name', 'state'], { additionalProperties: true }),
  VmRun: obj({
    startedAt: time, stoppedAt: nullable({ type: 'string', format: 'date-time' }),
    uptime: obj({ virtualNs: int, wallMs: int }),
    vcpus: { type: 'array', items: obj({ id: int, state: { type: 'string' }, instructions: int, cycles: int, idleCycles: int }, ['id', 'state']) },
    processes: { type: 'array', items: ref('ProcessStatus') },
  }, ['startedAt', 'stoppedAt', 'uptime', 'vcpus'], { nullable: true, description: 'the current or latest run; null when the VM never ran' }),
  VmDetail: { allOf: [ref('Vm'), obj({ run: ref('VmRun') })] },
  Console: obj({
    stdout: { type: 'string', description: 'guest stdout so far, as UTF-8 (the newest 1 MiB)' },
    stderr: { type: 'string' },
    truncated: { type: 'boolean', description: 'older output was dropped' },
    bytes: obj({ stdout: int, stderr: int }),
  }),
  Counters: obj({
    live: { type: 'boolean', description: 'true while the VM runs (figures still change)' },
    instructions: int, cycles: int, idleCycles: int, crossings: int, tlbMisses: int, branchMispredicts: int, interrupts: int,
    transitions: int, exits: { ...counts, description: 'VM exits by reason' } as SchemaObject,
    syscalls: { ...counts, description: 'syscalls by name' } as SchemaObject,
    enosys: { ...counts, description: 'unsupported syscalls by number (each returned -ENOSYS)' } as SchemaObject,
    doorbells: int, virtualTimeNs: int, backedPages: int,
    syscallLookahead: { type: 'object', additionalProperties: true, description: 'technique 3: syscalls merged by look-ahead and why others were not' },
    protectionDomains: nullable({ type: 'object', additionalProperties: true, description: 'technique 7; null when the VM has no protection domains' }),
    privilegedMode: { type: 'object', additionalProperties: true, description: 'technique 6: entries, rendezvous cycles, region size' },
    uhv: { type: 'object', additionalProperties: true, description: 'technique 5: transitions by edge, VM-control field accesses (direct, mediated, refused), cycles per exit reason, disks' },
    callTableInlining: { type: 'object', additionalProperties: true, description: 'technique 4: search-trampoline hits and misses per site, fallbacks, regenerations, compares' },
    instanceCallInlining: { type: 'object', additionalProperties: true, description: 'technique 2: trampoline hits and misses per process and site, fallbacks, regenerations' },
    speculativeGadgetReaches: { type: 'integer', description: 'indirect jumps mispredicted to the guest kernel\'s gadget (branch target injection\'s transient window)' },
    btbPredictedKernelCalls: { type: 'integer', description: 'guest kernel indirect calls whose target the BTB predicted (0 under the retpoline and for calls the trampolines made direct)' },
    perVcpu: { type: 'array', items: obj({ instructions: int, cycles: int, idleCycles: int, crossings: int, tlbMisses: int, branchMispredicts: int, interrupts: int }, ['instructions', 'cycles']) },
  }, ['live', 'instructions', 'cycles', 'crossings', 'exits', 'syscalls', 'tlbMisses', 'branchMispredicts', 'virtualTimeNs', 'perVcpu'], { additionalProperties: true }),
  Operation: obj({
    id: uuid, kind: { type: 'string', example: 'vm.start' }, subject: { type: 'string', example: 'vm:3c0e8e9a-1f4b-4f0e-8a59-6f1e2d3c4b5a' },
    state: { type: 'string', enum: ['pending', 'running', 'succeeded', 'failed', 'cancelled'] },
    progress: { type: 'number', minimum: 0, maximum: 1 },
    error: nullable(obj({
      message: { type: 'string' },
      reason: { type: 'string', enum: ['service-restart'], description: 'present when the operation was settled by start-up recovery' },
    }, ['message'])),
    result: nullable({ type: 'object', additionalProperties: true }),
    createdAt: time, updatedAt: time,
  }, undefined, { example: OPERATION_EXAMPLE }),
  OperationCancel: { allOf: [ref('Operation'), obj({ cancelRequested: { type: 'boolean', enum: [true] } })] },
  OperationList: page('Operation'),
  MigrationStats: { type: 'object', nullable: true, additionalProperties: true, description: 'QEMU query-migrate-style statistics after the latest round: rounds, transferred and remaining bytes, dirty rate, expected and actual downtime' },
  Migration: obj({
    id: uuid, vmId: uuid, sourceHostId: uuid, destinationHostId: uuid, operationId: nullable({ type: 'string', format: 'uuid' }),
    mode: { type: 'string', enum: ['precopy'] },
    phase: { type: 'string', enum: [...MIGRATION_PHASES] },
    params: { type: 'object', additionalProperties: true }, faults: { type: 'object', additionalProperties: true },
    stats: ref('MigrationStats'), failureReason: nullable({ type: 'string' }),
    createdAt: time, updatedAt: time, completedAt: nullable({ type: 'string', format: 'date-time' }),
  }),
  MigrationList: page('Migration'),
  MigrationStarted: obj({ operation: ref('Operation'), migration: ref('Migration') }),
  Experiment: obj({
    id: uuid, operationId: nullable({ type: 'string', format: 'uuid' }),
    spec: { type: 'object', additionalProperties: true, description: 'the experiment as run: workload, vm, variants, repetitions, migration' },
    state: { type: 'string', enum: ['pending', 'running', 'succeeded', 'failed', 'cancelled'] },
    result: nullable({ type: 'object', additionalProperties: true, description: '`variants`: each variant\'s counters and its ratios against the first variant, and `diverged`' }),
    error: nullable({ type: 'string' }), createdAt: time, updatedAt: time,
  }),
  ExperimentList: page('Experiment'),
  ExperimentStarted: { allOf: [ref('Experiment'), obj({ operation: ref('Operation') })] },
  Event: obj({
    seq: { type: 'integer', description: 'per-tenant, gap-free and increasing' }, time, type: { type: 'string', example: 'vm.state' },
    tenantId: uuid, subject: { type: 'string', example: 'vm:3c0e8e9a-1f4b-4f0e-8a59-6f1e2d3c4b5a' },
    data: { type: 'object', additionalProperties: true },
  }),
  EventList: obj({ items: { type: 'array', items: ref('Event') } }),
  Technique: obj({
    name: { type: 'string' }, number: int, patent: { type: 'string' }, title: { type: 'string' }, description: { type: 'string' },
    changes: { type: 'string' },
    parameters: { type: 'array', items: { type: 'object', properties: { name: { type: 'string' }, type: { type: 'string' }, description: { type: 'string' } }, required: ['name', 'type'], additionalProperties: true } },
    counters: { type: 'array', items: { type: 'string' }, description: 'where the technique\'s effect shows: counter names and event types' },
    live: { type: 'boolean' }, appliesAt: { type: 'string' }, support: { type: 'string' },
  }, ['name', 'number', 'patent', 'title', 'description', 'parameters', 'live', 'support'], { additionalProperties: true }),
  TechniqueList: obj({ items: { type: 'array', items: ref('Technique') } }),
  MemoryError: obj({
    id: uuid, hostId: uuid, hostPhysicalAddress: int, frame: int, kind: { type: 'string', enum: ['uncorrectable', 'corrected'] },
    latent: { type: 'boolean' }, state: { type: 'string', enum: ['known', 'latent', 'retired', 'fatal', 'corrected'] },
    hit: { type: 'object', additionalProperties: true, description: 'what the frame held: {type: free|guest|hypervisor|vm, vmId?, guestPhysicalAddress?, owner?}' },
    createdAt: time, updatedAt: time,
  }),
  MemoryErrorList: page('MemoryError'),
  MemoryMap: obj({
    frames: int, pageSize: { type: 'integer', enum: [4096] },
    runs: {
      type: 'array', description: 'consecutive frames of one state, in frame order: [state, count]',
      items: { type: 'array', minItems: 2, maxItems: 2, items: { oneOf: [{ type: 'string' }, { type: 'integer' }] } },
    },
  }),
  VmPage: obj({
    guestPhysicalAddress: int, hostPhysicalAddress: nullable({ type: 'integer' }), corrupted: { type: 'boolean' },
    owner: { type: 'string', example: 'process:1' }, guestVirtualAddress: int,
  }, ['guestPhysicalAddress', 'hostPhysicalAddress', 'corrupted', 'owner']),
  VmPageList: page('VmPage'),
  Domain: obj({
    name: { type: 'string', example: 'keystore' },
    imageId: uuid,
    entryPoints: { type: 'array', items: { type: 'string' }, example: ['ks_seal', 'ks_unseal', 'ks_sign'] },
    memoryKiB: int,
    gates: { type: 'array', description: 'the gate number each entry point has in the VM (numbered in order across its domains)', items: obj({ entryPoint: { type: 'string' }, gate: int }) },
  }, undefined, { description: 'A secure protection domain of a VM (technique 7)' }),
  DomainList: { type: 'array', items: ref('Domain') },
  InterruptResult: obj({
    vmId: uuid,
    vcpu: int,
    type: { type: 'string', enum: ['privileged-mode'] },
    outcome: { type: 'string', enum: ['entered', 'queued', 'coalesced', 'dropped'], description: 'what became of the interrupt' },
  }, undefined, { description: 'An interrupt delivered to a vCPU (technique 6)' }),
};
