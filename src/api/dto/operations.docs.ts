/**
 * What the OpenAPI document says about each operation beyond what the controllers declare:
 * summary, description, success responses with their schemas, the problem statuses it returns,
 * and request examples. Keyed by the operationId Nest generates (Controller_method).
 * src/openapi.ts applies this table to the generated document; test/openapi.e2e.ts fails when a
 * routed operation has no entry here (or an entry names no operation), and
 * test/openapi-contract.e2e.ts sends every request example to the real service and validates each
 * response against the schema documented for its status.
 *
 * Kept in one table instead of decorators on each controller method so the controllers stay
 * thin (they parse and forward) and API changes and their documentation review in one place.
 */
export type Content = 'json' | 'octet' | 'text';

export interface SuccessDoc {
  status: number;
  description: string;
  /** A component schema name (SCHEMAS or a request DTO); omitted for bodiless responses (204). */
  schema?: string;
  content?: Content;
  /** Further content types of the same status (for example raw console bytes). */
  alternatives?: Array<{ content: Content; description: string }>;
}

export interface RequestExample { summary: string; value: unknown }

export interface OperationDoc {
  summary: string;
  description?: string;
  ok: SuccessDoc[];
  /** Problem statuses particular to the operation; 400 (with parameters or a body), 401/403/429 (authenticated), 404 (an {id} in the path) are added for every operation they apply to. */
  errors?: Partial<Record<number, string>>;
  /** JSON request body examples, by name. */
  examples?: Record<string, RequestExample>;
  /** The body may also be raw bytes (application/octet-stream). */
  octetBody?: string;
  /** Examples of query or path parameters, by parameter name. */
  params?: Record<string, unknown>;
  /** Honours the Idempotency-Key header. */
  idempotent?: boolean;
}

/** Placeholder ids in the examples; the contract test replaces them by ids of real resources. */
export const EXAMPLE_IDS = {
  host: '0b6f3f4e-5c1a-4b8e-9a57-2f5b8f0d1c11',
  destinationHost: '9a0c2b7d-3e4f-4a5b-8c6d-7e8f9a0b1c2d',
  image: '5e2d7c1b-8a9f-4e3d-b2c1-0f9e8d7c6b5a',
  vm: '3c0e8e9a-1f4b-4f0e-8a59-6f1e2d3c4b5a',
  operation: '6d1c3a52-77b4-4f55-8c7e-0e5e2b8d9f01',
  migration: '2f4e6a8c-0b1d-4c3e-9f5a-7b9d1e3f5a7c',
  experiment: '8b7a6c5d-4e3f-4a2b-9c1d-0e9f8a7b6c5d',
  memoryError: '1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d',
  domainImage: '4f3e2d1c-0b9a-4876-a543-210fedcba987',
} as const;

/** An assembly program for the asm image example: prints "hi" and exits 0. */
export const ASM_EXAMPLE = [
  '.globl _start', '.text', '_start:', '  li a0, 1', '  la a1, msg', '  li a2, 3', '  li a7, 64', '  ecall',
  '  li a0, 0', '  li a7, 93', '  ecall', '.section .rodata', 'msg: .ascii "hi\\n"', '',
].join('\n');

const NOT_IMPLEMENTED = 'a technique that is not implemented yet was asked for';
const LIFECYCLE = (verb: string, detail: string): OperationDoc => ({
  summary: `${verb[0].toUpperCase()}${verb.slice(1)} a VM`,
  description: `${detail} The transition is checked at once (409 with the VM's \`state\` when it does not apply); the work runs as an Operation, returned with 202: follow it with GET /v1/operations/{id} or its \`operation.*\` events, and the VM's \`vm.state\` events.`,
  ok: [{ status: 202, description: 'accepted: the Operation carrying out the action', schema: 'Operation' }],
  errors: { 409: 'the VM\'s state does not allow this action (or, for start, its host has too little free memory)' },
});

export const OPERATION_DOCS: Record<string, OperationDoc> = {
  HealthController_live: {
    summary: 'Liveness', description: 'Answers 200 while the process serves requests. No token needed.',
    ok: [{ status: 200, description: 'the service is up', schema: 'Health' }],
  },
  HealthController_ready: {
    summary: 'Readiness', description: 'Answers 200 when the database answers within a second, 503 otherwise. No token needed.',
    ok: [{ status: 200, description: 'ready', schema: 'Readiness' }],
    errors: { 503: 'the database does not answer' },
  },
  MetricsController_scrape: {
    summary: 'Prometheus metrics', description: 'Process, HTTP and VM metrics in the Prometheus text format. Needs the admin token.',
    ok: [{ status: 200, description: 'metrics', content: 'text' }],
  },
  NodesController_list: {
    summary: 'List the cluster\'s nodes',
    description: 'Cluster mode (HVSIM_CLUSTER=on, docs/cluster.md): every node with its address, capacity, heartbeat, whether it is alive and leads, and the hosts it owns (`locked`: it holds the host\'s lock and runs it). On a single node: `cluster: false` and no nodes. Needs the admin token.',
    ok: [{ status: 200, description: 'the nodes', schema: 'NodeList' }],
  },
  TenantsController_create: {
    summary: 'Create a tenant',
    description: 'Creates a tenant and returns its bearer token once (only its hash is stored). Needs the admin token.',
    ok: [{ status: 201, description: 'the tenant with its token', schema: 'TenantCreated' }],
    examples: { team: { summary: 'a tenant', value: { name: 'team-blue' } } },
  },
  TechniquesController_list: {
    summary: 'List the techniques',
    description: 'The seven virtualization techniques: patent, what each changes, parameters with defaults and ranges, counters, whether it can change on a running VM, and its support level.',
    ok: [{ status: 200, description: 'the catalogue', schema: 'TechniqueList' }],
  },
  TechniquesController_get: {
    summary: 'Get a technique', ok: [{ status: 200, description: 'the technique', schema: 'Technique' }],
    errors: { 404: 'no technique of that name' }, params: { name: 'syscallLookahead' },
  },
  EventsController_list: {
    summary: 'List events',
    description: 'The tenant\'s events with `seq` greater than `since`, oldest first, optionally of one subject (`vm:ID`, `host:ID`, ...). Use it to catch up after a `lagged` notice on the Socket.IO stream at /events.',
    ok: [{ status: 200, description: 'events', schema: 'EventList' }],
    params: { since: 0, limit: 50 },
  },
  HostsController_create: {
    summary: 'Create a host',
    description: 'Creates a simulated physical machine and allocates its DRAM (shared memory of this service).',
    ok: [{ status: 201, description: 'the host with its memory accounting', schema: 'Host' }],
    errors: { 409: 'a host of that name exists', 501: NOT_IMPLEMENTED, 507: 'this service cannot allocate that much host DRAM' },
    examples: {
      small: { summary: 'a 4-CPU host with 64 MiB', value: { name: 'host-a', cpus: 4, memoryMiB: 64 } },
      lookahead: { summary: 'a host whose VMs merge syscalls by default', value: { name: 'host-b', cpus: 2, memoryMiB: 32, techniques: { syscallLookahead: { enabled: true } } } },
    },
    idempotent: true,
  },
  HostsController_list: {
    summary: 'List hosts', ok: [{ status: 200, description: 'a page of hosts, oldest first', schema: 'HostList' }], params: { pageSize: 20 },
  },
  HostsController_get: {
    summary: 'Get a host', description: 'The host with its memory accounting: frames free, poisoned, retired, and held by each running VM.',
    ok: [{ status: 200, description: 'the host', schema: 'Host' }],
  },
  HostsController_update: {
    summary: 'Update a host',
    description: 'Changes name, CPUs, memory (only while no VM runs on it), technique defaults or state (`ready`, `maintenance`: a host in maintenance starts no VM).',
    ok: [{ status: 200, description: 'the updated host', schema: 'Host' }],
    errors: { 409: 'the name is taken, or memory changes while VMs run on the host', 501: NOT_IMPLEMENTED, 507: 'this service cannot allocate the new DRAM size' },
    examples: { rename: { summary: 'rename', value: { name: 'rack1-host-a' } } },
  },
  HostsController_remove: {
    summary: 'Delete a host', ok: [{ status: 204, description: 'deleted' }],
    errors: { 409: 'VMs are still defined on the host' },
  },
  ImagesController_create: {
    summary: 'Upload an image',
    description: 'A static RV32 executable: raw ELF bytes as `application/octet-stream` (its name from `?name=`), or JSON `{name, format, content}` with the ELF as base64 (`format: elf`) or assembly source assembled on upload (`format: asm`). 201 for a new image; 200 with the existing image when the tenant already has these exact bytes.',
    ok: [
      { status: 201, description: 'the new image', schema: 'Image' },
      { status: 200, description: 'the tenant already had these bytes: the existing image', schema: 'Image' },
    ],
    errors: { 413: 'the image is larger than the service accepts', 422: 'not a valid static RV32 executable, or the assembly has errors (listed in `errors`)' },
    examples: {
      asm: { summary: 'assembly source', value: { name: 'hi', format: 'asm', content: ASM_EXAMPLE } },
      elf: { summary: 'an ELF as base64', value: { name: 'hi-elf', format: 'elf', content: '(base64 of the ELF; filled in by src/openapi.ts)' } },
    },
    octetBody: 'the ELF file\'s bytes (name the image with `?name=`)',
    params: { name: 'hi' },
    idempotent: true,
  },
  ImagesController_list: {
    summary: 'List images', description: '`builtin=true` lists only the built-in workloads (hello, cpu, syscalls, memtouch), `builtin=false` only uploads.',
    ok: [{ status: 200, description: 'a page of images', schema: 'ImageList' }], params: { builtin: 'true' },
  },
  ImagesController_get: { summary: 'Get an image', ok: [{ status: 200, description: 'the image', schema: 'Image' }] },
  ImagesController_content: {
    summary: 'Download an image', ok: [{ status: 200, description: 'the ELF bytes', content: 'octet' }],
  },
  ImagesController_remove: {
    summary: 'Delete an image', ok: [{ status: 204, description: 'deleted' }], errors: { 409: 'a VM definition uses the image' },
  },
  VmsController_create: {
    summary: 'Define a VM',
    description: 'Defines a VM (state `created`): its processes, vCPUs, memory, seed, engine and technique overrides. Without `hostId` it is placed on the ready host with the most free memory.',
    ok: [{ status: 201, description: 'the VM', schema: 'Vm' }],
    errors: { 404: 'no such host', 409: 'a VM of that name exists, or no host has room', 422: 'an image does not exist', 501: NOT_IMPLEMENTED },
    examples: {
      hello: {
        summary: 'one process on a given host',
        value: { name: 'web-1', hostId: EXAMPLE_IDS.host, vcpus: 1, memoryMiB: 16, processes: [{ imageId: EXAMPLE_IDS.image, argv: ['hello'] }], seed: 1 },
      },
    },
    idempotent: true,
  },
  VmsController_list: { summary: 'List VMs', ok: [{ status: 200, description: 'a page of VMs', schema: 'VmList' }], params: { pageSize: 20 } },
  VmsController_get: {
    summary: 'Get a VM', description: 'The VM with its current or latest run: uptime (virtual and wall), vCPUs, and each process\'s state, exit status or signal.',
    ok: [{ status: 200, description: 'the VM', schema: 'VmDetail' }],
  },
  VmsController_update: {
    summary: 'Update a VM',
    description: 'Edits the definition of a created, stopped or crashed VM. A running VM accepts only changes of techniques that can change live (applied at the technique\'s `appliesAt`).',
    ok: [{ status: 200, description: 'the VM', schema: 'Vm' }],
    errors: { 409: 'the VM runs, or the name is taken, or the host lacks memory', 422: 'an image does not exist', 501: NOT_IMPLEMENTED },
    examples: { resize: { summary: 'two vCPUs', value: { vcpus: 2 } } },
  },
  VmsController_remove: { summary: 'Delete a VM', ok: [{ status: 204, description: 'deleted' }], errors: { 409: 'the VM is not stopped' } },
  DomainsController_add: {
    summary: 'Add a protection domain',
    description: 'Adds a secure protection domain (technique 7) to a VM that has not started: the image (an RV32 ELF) holds its code and data, its entry symbols become the gates root code may call, and `memoryKiB` of private memory is mapped only by the domain\'s own G-stage table. The VM needs one vCPU.',
    ok: [{ status: 201, description: 'the domain, with its gate numbers', schema: 'Domain' }],
    errors: { 409: 'the VM has started, already has a domain of that name or the most domains, or has more than one vCPU', 422: 'the image cannot be a domain (unknown image, missing entry symbol, too large)' },
    examples: { keystore: { summary: 'the key-store domain', value: { name: 'keystore', imageId: EXAMPLE_IDS.domainImage, entryPoints: ['ks_seal', 'ks_unseal', 'ks_sign'], memoryKiB: 64 } } },
  },
  VcpusController_interrupt: {
    summary: 'Interrupt a vCPU',
    description: 'Raises the privileged-mode interrupt (technique 6) on vCPU `n` of a running or paused VM; the VM\'s worker delivers it at an instruction boundary of every vCPU, and the answer says whether the vCPU entered the mode, was queued behind the vCPU in it, coalesced with a pending request, or was dropped (queue full).',
    ok: [{ status: 200, description: 'what became of the interrupt', schema: 'InterruptResult' }],
    errors: { 409: 'the VM is not running or paused' },
    examples: { privilegedMode: { summary: 'the privileged-mode interrupt', value: { type: 'privileged-mode' } } },
    params: { n: 0 },
  },
  VmsController_disk: {
    summary: 'Download a VM disk',
    description: 'The current content of disk `n` (technique 5\'s virtio block device, copy-on-write over its image): of a running or paused VM as it is now; of a stopped or crashed VM as its last run left it (kept when it stopped; the next start boots from it); of a VM that never ran, its base. A single `Range: bytes=...` gives 206 with Content-Range.',
    ok: [{ status: 200, description: 'the whole disk', content: 'octet' }, { status: 206, description: 'the requested range', content: 'octet' }],
    errors: { 409: 'the disk\'s base image no longer exists', 416: 'the range cannot be satisfied' },
    params: { n: 0 },
  },
  DomainsController_list: { summary: 'Protection domains of a VM', ok: [{ status: 200, description: 'the domains, in gate order', schema: 'DomainList' }] },
  DomainsController_get: { summary: 'A protection domain', ok: [{ status: 200, description: 'the domain', schema: 'Domain' }], params: { name: 'keystore' } },
  DomainsController_remove: { summary: 'Remove a protection domain', ok: [{ status: 204, description: 'removed' }], errors: { 409: 'the VM has started' }, params: { name: 'keystore' } },
  VmsController_console: {
    summary: 'Console output',
    description: 'Guest stdout and stderr so far (the newest 1 MiB of each) of the current or latest run; `format=raw` with `stream` gives one stream\'s exact bytes.',
    ok: [{ status: 200, description: 'the console as UTF-8 text', schema: 'Console', alternatives: [{ content: 'octet', description: 'with format=raw: the exact bytes of one stream' }] }],
  },
  VmsController_counters: {
    summary: 'VM counters',
    description: 'Counters of the current or latest run: instructions, cycles, crossings, exits by reason, syscalls by name, TLB misses, mispredicts, in total and per vCPU.',
    ok: [{ status: 200, description: 'the counters', schema: 'Counters' }],
    errors: { 404: 'no such VM, or it never ran' },
  },
  VmsController_start: LIFECYCLE('start', 'Boots the VM on its host (admission against the host\'s free memory).'),
  VmsController_pause: LIFECYCLE('pause', 'Stops the VM\'s vCPUs at a slice boundary.'),
  VmsController_resume: LIFECYCLE('resume', 'Lets a paused VM run again.'),
  VmsController_stop: LIFECYCLE('stop', 'Powers the VM off; the VM is `stopped` before the Operation succeeds.'),
  VmsController_reset: {
    summary: 'Reset a VM', description: 'Returns a stopped or crashed VM to `created` at once (no Operation).',
    ok: [{ status: 200, description: 'the VM', schema: 'Vm' }],
    errors: { 409: 'the VM\'s state does not allow a reset' },
  },
  OperationsController_list: { summary: 'List operations', ok: [{ status: 200, description: 'a page of operations', schema: 'OperationList' }] },
  OperationsController_get: { summary: 'Get an operation', ok: [{ status: 200, description: 'the operation', schema: 'Operation' }] },
  OperationsController_cancel: {
    summary: 'Cancel an operation', description: 'Asks a pending or running operation to stop; it ends as `cancelled`.',
    ok: [{ status: 202, description: 'cancellation requested', schema: 'OperationCancel' }],
    errors: { 409: 'the operation has already ended' },
  },
  MigrationsController_create: {
    summary: 'Live-migrate a VM',
    description: 'Starts a pre-copy live migration of a running VM to another host over a real TCP stream. 202 with the Operation and the migration; its phase (pending, preparing-target, target-ready, running, completed | failed | cancelled) and statistics follow in GET /v1/migrations/{id} and `migration.phase` / `migration.progress` events.',
    ok: [{ status: 202, description: 'the Operation and the migration', schema: 'MigrationStarted' }],
    errors: {
      404: 'no such VM or destination host', 409: 'the VM is not running, the destination is not ready, or known poisoned pages without umeAwareMigration',
      507: 'the destination host has too little free memory',
    },
    examples: { precopy: { summary: 'pre-copy with a 300 ms downtime limit', value: { destinationHostId: EXAMPLE_IDS.destinationHost, mode: 'precopy', maxDowntimeMs: 300 } } },
  },
  MigrationsController_list: { summary: 'List a VM\'s migrations', ok: [{ status: 200, description: 'a page of migrations', schema: 'MigrationList' }] },
  MigrationsController_get: { summary: 'Get a migration', ok: [{ status: 200, description: 'the migration with its latest statistics', schema: 'Migration' }] },
  MigrationsController_cancel: {
    summary: 'Cancel a migration', description: 'Cancels a migration before its switch-over; the VM keeps running on the source.',
    ok: [{ status: 200, description: 'the migration', schema: 'Migration' }],
    errors: { 409: 'the migration has already ended' },
  },
  MemoryErrorsController_inject: {
    summary: 'Inject a memory error',
    description: 'Poisons a host frame, addressed by host-physical address, by a VM\'s guest-physical address, or by a process\'s user address. A free frame is retired at once; a VM\'s page kills the process that touches it (SIGBUS) and the VM survives; hypervisor data panics the host. `latent` errors are found on the next read.',
    ok: [{ status: 201, description: 'the memory error', schema: 'MemoryError' }],
    errors: { 409: 'the frame already has an uncorrectable error, the host failed, or the VM does not run here' },
    examples: {
      free: { summary: 'a free frame near the top of a 64 MiB host', value: { hostPhysicalAddress: 0x3ff0000, kind: 'uncorrectable' } },
      corrected: { summary: 'a corrected error (counted and reported only)', value: { hostPhysicalAddress: 0x3fe0000, kind: 'corrected' } },
    },
  },
  MemoryErrorsController_list: { summary: 'List a host\'s memory errors', ok: [{ status: 200, description: 'a page of memory errors', schema: 'MemoryErrorList' }] },
  MemoryErrorsController_retire: {
    summary: 'Retire a frame', description: 'Retires the frame of a memory error for good (never handed out again).',
    ok: [{ status: 204, description: 'retired' }], errors: { 409: 'a running VM still holds the frame' },
  },
  MemoryErrorsController_memoryMap: {
    summary: 'A host\'s frame map',
    description: 'Frame states as runs, for a heat map: free, guest, hypervisor, poisoned, retired, and `*-poisoned` for frames in use that have an error.',
    ok: [{ status: 200, description: 'the frame map', schema: 'MemoryMap' }],
  },
  MemoryErrorsController_vmMemory: {
    summary: 'A VM\'s backed pages',
    description: 'A running VM\'s guest pages that have host frames: guest-physical and host-physical address, owner (`process:PID` with its user address, `kernel`, `device`), and whether it is corrupted.',
    ok: [{ status: 200, description: 'a page of guest pages', schema: 'VmPageList' }],
    errors: { 409: 'the VM is not running' },
    params: { owner: 'kernel' },
  },
  ExperimentsController_create: {
    summary: 'Run an experiment',
    description: 'Runs a workload on a fresh VM per variant (each with its own techniques), on a private host, as an Operation. The result compares every variant with the first: counters, ratios, and `diverged` when a variant\'s console or exit status differs.',
    ok: [{ status: 202, description: 'the experiment and its Operation', schema: 'ExperimentStarted' }],
    errors: { 404: 'the image does not exist', 501: NOT_IMPLEMENTED },
    examples: {
      lookahead: {
        summary: 'syscall lookahead against the baseline on the hello workload',
        value: { workload: { builtin: 'hello' }, variants: [{ name: 'baseline', techniques: {} }, { name: 'lookahead', techniques: { syscallLookahead: { enabled: true } } }] },
      },
    },
  },
  ExperimentsController_list: { summary: 'List experiments', ok: [{ status: 200, description: 'a page of experiments', schema: 'ExperimentList' }] },
  ExperimentsController_get: { summary: 'Get an experiment', ok: [{ status: 200, description: 'the experiment with its result once finished', schema: 'Experiment' }] },
};
