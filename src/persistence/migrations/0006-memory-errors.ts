import { MigrationInterface, QueryRunner } from 'typeorm';

/** Memory errors injected into host frames, with what they hit and their state. */
export class MemoryErrors1764000000006 implements MigrationInterface {
  name = 'MemoryErrors1764000000006';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE memory_errors (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      tenant_id uuid NOT NULL REFERENCES tenants(id),
      host_id uuid NOT NULL REFERENCES hosts(id) ON DELETE CASCADE,
      frame int NOT NULL,
      kind text NOT NULL CHECK (kind IN ('uncorrectable', 'corrected')),
      latent boolean NOT NULL DEFAULT false,
      state text NOT NULL,
      hit jsonb NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now())`);
    await q.query('CREATE INDEX memory_errors_host ON memory_errors (host_id, created_at)');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE memory_errors');
  }
}
