import { MigrationInterface, QueryRunner } from 'typeorm';

/** Tenants, hosts and the per-tenant event log. */
export class Initial1764000000001 implements MigrationInterface {
  name = 'Initial1764000000001';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE tenants (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      name text NOT NULL,
      token_hash text NOT NULL UNIQUE,
      event_seq bigint NOT NULL DEFAULT 0,
      created_at timestamptz NOT NULL DEFAULT now())`);
    await q.query(`CREATE TABLE hosts (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      tenant_id uuid NOT NULL REFERENCES tenants(id),
      name text NOT NULL,
      cpus int NOT NULL CHECK (cpus BETWEEN 1 AND 64),
      memory_mib int NOT NULL CHECK (memory_mib BETWEEN 16 AND 65536),
      techniques jsonb NOT NULL DEFAULT '{}',
      state text NOT NULL DEFAULT 'ready',
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now(),
      UNIQUE (tenant_id, name))`);
    await q.query(`CREATE TABLE events (
      tenant_id uuid NOT NULL REFERENCES tenants(id),
      seq bigint NOT NULL,
      time timestamptz NOT NULL,
      type text NOT NULL,
      subject text NOT NULL,
      data jsonb NOT NULL,
      PRIMARY KEY (tenant_id, seq))`);
    await q.query(`CREATE INDEX events_subject ON events (tenant_id, subject, seq)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE events`);
    await q.query(`DROP TABLE hosts`);
    await q.query(`DROP TABLE tenants`);
  }
}

