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
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt!: Date;
  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' }) updatedAt!: Date;
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

export const ENTITIES = [TenantEntity, HostEntity, EventEntity];
