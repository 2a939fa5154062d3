/** TypeORM entities. Domain rules live in services; these only describe rows. */
import { Column, CreateDateColumn, Entity, Index, PrimaryColumn, PrimaryGeneratedColumn, UpdateDateColumn } from 'typeorm';

@Entity({ name: 'tenants' })
export class TenantEntity {
  @PrimaryGeneratedColumn('uuid') id!: string;
  @Column({ type: 'text' }) name!: string;
  /** sha256 of the bearer token, hex. */
  @Index({ unique: true })
  @Column({ name: 'token_hash', type: 'text' }) tokenHash!: string;
  /** Last event sequence number allocated for this tenant. */
  @Column({ name: 'event_seq', type: 'bigint', default: 0 }) eventSeq!: string;
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt!: Date;
}

@Entity({ name: 'hosts' })
@Index(['tenantId', 'name'], { unique: true })
export class HostEntity {
  @PrimaryGeneratedColumn('uuid') id!: string;
  @Column({ name: 'tenant_id', type: 'uuid' }) tenantId!: string;
  @Column({ type: 'text' }) name!: string;
  @Column({ type: 'int' }) cpus!: number;
  @Column({ name: 'memory_mib', type: 'int' }) memoryMiB!: number;
  @Column({ type: 'jsonb', default: {} }) techniques!: Record<string, unknown>;
  @Column({ type: 'text', default: 'ready' }) state!: string;
  /** Cluster mode: the node that owns the host (runs its DRAM and VMs); null on a single node. */
  @Column({ name: 'owner_node_id', type: 'text', nullable: true }) ownerNodeId!: string | null;
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt!: Date;
  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' }) updatedAt!: Date;
}

/** Cluster mode: one running node, with its heartbeat (docs/cluster.md). */
@Entity({ name: 'nodes' })
export class NodeEntity {
  @PrimaryColumn({ type: 'text' }) id!: string;
  @Column({ type: 'text' }) address!: string;
  @Column({ name: 'http_url', type: 'text' }) httpUrl!: string;
  @Column({ name: 'capacity_mib', type: 'int' }) capacityMiB!: number;
  @Column({ name: 'heartbeat_at', type: 'timestamptz' }) heartbeatAt!: Date;
  @Column({ name: 'started_at', type: 'timestamptz' }) startedAt!: Date;
}

@Entity({ name: 'events' })
export class EventEntity {
  @PrimaryColumn({ name: 'tenant_id', type: 'uuid' }) tenantId!: string;
  @PrimaryColumn({ type: 'bigint' }) seq!: string;
  @Column({ type: 'timestamptz' }) time!: Date;
  @Column({ type: 'text' }) type!: string;
  @Column({ type: 'text' }) subject!: string;
  @Column({ type: 'jsonb' }) data!: Record<string, unknown>;
}

@Entity({ name: 'images' })
export class ImageEntity {
  @PrimaryGeneratedColumn('uuid') id!: string;
  @Column({ name: 'tenant_id', type: 'uuid' }) tenantId!: string;
  @Column({ type: 'text' }) name!: string;
  @Column({ type: 'text' }) format!: 'elf' | 'asm';
  @Column({ type: 'text' }) sha256!: string;
  @Column({ name: 'size_bytes', type: 'int' }) sizeBytes!: number;
  @Column({ type: 'bigint' }) entry!: string;
  /** Assembly source for format asm (the content is then the assembled ELF). */
  @Column({ type: 'text', nullable: true }) source!: string | null;
  @Column({ type: 'bytea', select: false }) content!: Buffer;
  /** One of the built-in workload images (workloads/), materialized for this tenant. */
  @Column({ type: 'boolean', default: false }) builtin!: boolean;
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt!: Date;
}

/** A process of a VM definition: stdin is text, or the read end of a named pipe another process's stdout writes. */
export interface ProcessSpec { imageId: string; argv?: string[]; env?: string[]; stdin?: string | { pipe: string }; stdout?: { pipe: string } }
/** A VM disk: over an image's bytes (copy-on-write) or empty. */
export type DiskSpecRow = { imageId: string } | { sizeMiB: number };

@Entity({ name: 'vms' })
export class VmEntity {
  @PrimaryGeneratedColumn('uuid') id!: string;
  @Column({ name: 'tenant_id', type: 'uuid' }) tenantId!: string;
  @Column({ name: 'host_id', type: 'uuid' }) hostId!: string;
  @Column({ type: 'text' }) name!: string;
  @Column({ type: 'int' }) vcpus!: number;
  @Column({ name: 'memory_mib', type: 'int' }) memoryMiB!: number;
  @Column({ type: 'jsonb' }) processes!: ProcessSpec[];
  @Column({ type: 'jsonb', default: [] }) disks!: DiskSpecRow[];
  @Column({ type: 'jsonb', default: {} }) techniques!: Record<string, unknown>;
  @Column({ type: 'bigint', default: 0 }) seed!: string;
  @Column({ type: 'text', default: 'created' }) state!: string;
  @Column({ name: 'state_reason', type: 'text', nullable: true }) stateReason!: string | null;
  @Column({ type: 'text', default: 'jit' }) engine!: 'interp' | 'jit';
  @Column({ name: 'spectre_v2', type: 'text', default: 'none' }) spectreV2Mitigation!: 'none' | 'retpoline';
  @Column({ name: 'crossing_preset', type: 'text', default: 'none' }) crossingPreset!: 'none' | 'kpti';
  /** Secure protection domains (technique 7), in gate order. */
  @Column({ type: 'jsonb', default: [] }) domains!: DomainDef[];
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt!: Date;
  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' }) updatedAt!: Date;
}

/** A protection domain of a VM definition: an image and its entry symbols (gates), and its private memory. */
export interface DomainDef { name: string; imageId: string; entryPoints: string[]; memoryKiB: number }

/** The latest run of a VM: what it left behind once it stopped (or so far, while it runs). */
@Entity({ name: 'vm_runs' })
export class VmRunEntity {
  @PrimaryColumn({ name: 'vm_id', type: 'uuid' }) vmId!: string;
  @Column({ name: 'tenant_id', type: 'uuid' }) tenantId!: string;
  @Column({ name: 'started_at', type: 'timestamptz' }) startedAt!: Date;
  @Column({ name: 'stopped_at', type: 'timestamptz', nullable: true }) stoppedAt!: Date | null;
  @Column({ type: 'jsonb', default: [] }) processes!: unknown[];
  @Column({ type: 'jsonb', nullable: true }) counters!: Record<string, unknown> | null;
  @Column({ name: 'console_stdout', type: 'bytea', select: false }) consoleStdout!: Buffer;
  @Column({ name: 'console_stderr', type: 'bytea', select: false }) consoleStderr!: Buffer;
  @Column({ name: 'console_truncated', type: 'boolean', default: false }) consoleTruncated!: boolean;
}

/** What a stopped VM's last run wrote over disk `disk`'s base: chunk indices (ascending) and their bytes, concatenated. */
@Entity({ name: 'vm_disk_contents' })
export class VmDiskContentEntity {
  @PrimaryColumn({ name: 'vm_id', type: 'uuid' }) vmId!: string;
  @PrimaryColumn({ type: 'int' }) disk!: number;
  @Column({ name: 'tenant_id', type: 'uuid' }) tenantId!: string;
  @Column({ type: 'jsonb' }) chunks!: number[];
  @Column({ type: 'bytea' }) content!: Buffer;
  @Column({ name: 'stored_at', type: 'timestamptz', default: () => 'now()' }) storedAt!: Date;
}

@Entity({ name: 'experiments' })
export class ExperimentEntity {
  @PrimaryGeneratedColumn('uuid') id!: string;
  @Column({ name: 'tenant_id', type: 'uuid' }) tenantId!: string;
  @Column({ name: 'operation_id', type: 'uuid', nullable: true }) operationId!: string | null;
  @Column({ type: 'jsonb' }) spec!: Record<string, unknown>;
  @Column({ type: 'text' }) state!: 'pending' | 'running' | 'succeeded' | 'failed' | 'cancelled';
  @Column({ type: 'jsonb', nullable: true }) result!: Record<string, unknown> | null;
  @Column({ type: 'text', nullable: true }) error!: string | null;
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt!: Date;
  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' }) updatedAt!: Date;
}

@Entity({ name: 'memory_errors' })
export class MemoryErrorEntity {
  @PrimaryGeneratedColumn('uuid') id!: string;
  @Column({ name: 'tenant_id', type: 'uuid' }) tenantId!: string;
  @Column({ name: 'host_id', type: 'uuid' }) hostId!: string;
  @Column({ type: 'int' }) frame!: number;
  @Column({ type: 'text' }) kind!: 'uncorrectable' | 'corrected';
  @Column({ type: 'boolean', default: false }) latent!: boolean;
  /** corrected | retired (free frame) | latent | known (a VM's page) | fatal (hypervisor data) */
  @Column({ type: 'text' }) state!: string;
  @Column({ type: 'jsonb' }) hit!: Record<string, unknown>;
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt!: Date;
  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' }) updatedAt!: Date;
}

@Entity({ name: 'operations' })
export class OperationEntity {
  @PrimaryGeneratedColumn('uuid') id!: string;
  @Column({ name: 'tenant_id', type: 'uuid' }) tenantId!: string;
  @Column({ type: 'text' }) kind!: string;
  @Column({ type: 'text' }) subject!: string;
  @Column({ type: 'text' }) state!: 'pending' | 'running' | 'succeeded' | 'failed' | 'cancelled';
  @Column({ type: 'real', default: 0 }) progress!: number;
  @Column({ type: 'jsonb', nullable: true }) error!: Record<string, unknown> | null;
  @Column({ type: 'jsonb', nullable: true }) result!: Record<string, unknown> | null;
  /** Cluster mode: the node that runs the operation; null on a single node. */
  @Column({ name: 'node_id', type: 'text', nullable: true }) nodeId!: string | null;
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt!: Date;
  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' }) updatedAt!: Date;
}

@Entity({ name: 'idempotency_keys' })
export class IdempotencyEntity {
  @PrimaryColumn({ name: 'tenant_id', type: 'uuid' }) tenantId!: string;
  @PrimaryColumn({ type: 'text' }) key!: string;
  @Column({ type: 'text' }) route!: string;
  @Column({ name: 'body_hash', type: 'text' }) bodyHash!: string;
  @Column({ type: 'int' }) status!: number;
  @Column({ type: 'jsonb' }) response!: Record<string, unknown>;
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt!: Date;
}


/** A live migration of a VM between hosts (KubeVirt-style phases; QEMU query-migrate-style stats). */
@Entity({ name: 'vm_migrations' })
export class MigrationEntity {
  @PrimaryGeneratedColumn('uuid') id!: string;
  @Column({ name: 'tenant_id', type: 'uuid' }) tenantId!: string;
  @Column({ name: 'vm_id', type: 'uuid' }) vmId!: string;
  @Column({ name: 'source_host_id', type: 'uuid' }) sourceHostId!: string;
  @Column({ name: 'destination_host_id', type: 'uuid' }) destinationHostId!: string;
  @Column({ name: 'operation_id', type: 'uuid', nullable: true }) operationId!: string | null;
  @Column({ type: 'text' }) mode!: 'precopy';
  /** pending | preparing-target | target-ready | running | completed | failed | cancelled */
  @Column({ type: 'text' }) phase!: string;
  @Column({ type: 'jsonb' }) params!: Record<string, unknown>;
  @Column({ type: 'jsonb' }) faults!: Record<string, unknown>;
  @Column({ type: 'jsonb', nullable: true }) stats!: Record<string, unknown> | null;
  @Column({ name: 'failure_reason', type: 'text', nullable: true }) failureReason!: string | null;
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt!: Date;
  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' }) updatedAt!: Date;
  @Column({ name: 'completed_at', type: 'timestamptz', nullable: true }) completedAt!: Date | null;
}

export const ENTITIES = [TenantEntity, HostEntity, EventEntity, ImageEntity, VmEntity, VmRunEntity, VmDiskContentEntity, ExperimentEntity, MemoryErrorEntity, MigrationEntity, OperationEntity, IdempotencyEntity, NodeEntity];
