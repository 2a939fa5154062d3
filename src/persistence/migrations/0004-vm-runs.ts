import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Execution settings of a VM definition (engine, Spectre-v2 mitigation of the guest kernel,
 * crossing-cost preset) and the record of its latest run: process statuses, final counters and
 * the console (bounded), kept after the VM stops so they stay readable through REST.
 */
export class VmRuns1764000000004 implements MigrationInterface {
  name = 'VmRuns1764000000004';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE vms ADD COLUMN engine text NOT NULL DEFAULT 'jit' CHECK (engine IN ('interp', 'jit')),
      ADD COLUMN spectre_v2 text NOT NULL DEFAULT 'none' CHECK (spectre_v2 IN ('none', 'retpoline')),
      ADD COLUMN crossing_preset text NOT NULL DEFAULT 'none' CHECK (crossing_preset IN ('none', 'kpti'))`);
    await q.query(`CREATE TABLE vm_runs (
      vm_id uuid PRIMARY KEY REFERENCES vms(id) ON DELETE CASCADE,
      tenant_id uuid NOT NULL REFERENCES tenants(id),
      started_at timestamptz NOT NULL,
      stopped_at timestamptz,
      processes jsonb NOT NULL DEFAULT '[]',
      counters jsonb,
      console_stdout bytea NOT NULL DEFAULT '',
      console_stderr bytea NOT NULL DEFAULT '',
      console_truncated boolean NOT NULL DEFAULT false)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE vm_runs');
    await q.query('ALTER TABLE vms DROP COLUMN engine, DROP COLUMN spectre_v2, DROP COLUMN crossing_preset');
  }
}
