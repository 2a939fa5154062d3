import { MigrationInterface, QueryRunner } from 'typeorm';

/** Images, VM definitions, operations and idempotency keys. */
export class ImagesVmsOperations1764000000002 implements MigrationInterface {
  name = 'ImagesVmsOperations1764000000002';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE images (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      tenant_id uuid NOT NULL REFERENCES tenants(id),
      name text NOT NULL,
      format text NOT NULL CHECK (format IN ('elf', 'asm')),
      sha256 text NOT NULL,
      size_bytes int NOT NULL,
      entry bigint NOT NULL,
      source text,
      content bytea NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      UNIQUE (tenant_id, sha256))`);
    await q.query(`CREATE TABLE vms (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      tenant_id uuid NOT NULL REFERENCES tenants(id),
      host_id uuid NOT NULL REFERENCES hosts(id),
      name text NOT NULL,
      vcpus int NOT NULL CHECK (vcpus BETWEEN 1 AND 16),
      memory_mib int NOT NULL,
      processes jsonb NOT NULL,
      techniques jsonb NOT NULL DEFAULT '{}',
      seed bigint NOT NULL DEFAULT 0,
      state text NOT NULL DEFAULT 'created',
      state_reason text,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now(),
      UNIQUE (tenant_id, name))`);
    await q.query(`CREATE TABLE vm_images (vm_id uuid NOT NULL REFERENCES vms(id) ON DELETE CASCADE, image_id uuid NOT NULL REFERENCES images(id), PRIMARY KEY (vm_id, image_id))`);
    await q.query(`CREATE TABLE operations (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      tenant_id uuid NOT NULL REFERENCES tenants(id),
      kind text NOT NULL,
      subject text NOT NULL,
      state text NOT NULL CHECK (state IN ('pending', 'running', 'succeeded', 'failed', 'cancelled')),
      progress real NOT NULL DEFAULT 0,
      error jsonb,
      result jsonb,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now())`);
    await q.query(`CREATE TABLE idempotency_keys (
      tenant_id uuid NOT NULL REFERENCES tenants(id),
      key text NOT NULL,
      route text NOT NULL,
      body_hash text NOT NULL,
      status int NOT NULL,
      response jsonb NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (tenant_id, key))`);
  }

  async down(q: QueryRunner): Promise<void> {
    for (const t of ['idempotency_keys', 'operations', 'vm_images', 'vms', 'images']) await q.query(`DROP TABLE ${t}`);
  }
}
