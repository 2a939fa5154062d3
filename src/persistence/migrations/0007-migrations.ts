import { MigrationInterface, QueryRunner } from 'typeorm';

/** Live migrations of VMs between hosts (vm_migrations: TypeORM keeps its own table called migrations). */
export class VmMigrations1764000000007 implements MigrationInterface {
  name = 'VmMigrations1764000000007';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE vm_migrations (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      tenant_id uuid NOT NULL REFERENCES tenants(id),
      vm_id uuid NOT NULL REFERENCES vms(id) ON DELETE CASCADE,
      source_host_id uuid NOT NULL,
      destination_host_id uuid NOT NULL,
      operation_id uuid,
      mode text NOT NULL CHECK (mode IN ('precopy')),
      phase text NOT NULL CHECK (phase IN ('pending', 'preparing-target', 'target-ready', 'running', 'completed', 'failed', 'cancelled')),
      params jsonb NOT NULL,
      faults jsonb NOT NULL,
      stats jsonb,
      failure_reason text,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now(),
      completed_at timestamptz)`);
    await q.query('CREATE INDEX vm_migrations_vm ON vm_migrations (vm_id, created_at)');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE vm_migrations');
  }
}
