import { MigrationInterface, QueryRunner } from 'typeorm';

/** Experiments: a workload run once per technique variant, with the comparison as result. */
export class Experiments1764000000005 implements MigrationInterface {
  name = 'Experiments1764000000005';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE experiments (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      tenant_id uuid NOT NULL REFERENCES tenants(id),
      operation_id uuid,
      spec jsonb NOT NULL,
      state text NOT NULL CHECK (state IN ('pending', 'running', 'succeeded', 'failed', 'cancelled')),
      result jsonb,
      error text,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now())`);
    await q.query('CREATE INDEX experiments_tenant ON experiments (tenant_id, created_at)');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE experiments');
  }
}
