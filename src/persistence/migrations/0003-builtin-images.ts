import { MigrationInterface, QueryRunner } from 'typeorm';

/** Built-in images (workloads/) are materialized as ordinary image rows per tenant, flagged. */
export class BuiltinImages1764000000003 implements MigrationInterface {
  name = 'BuiltinImages1764000000003';

  async up(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE images ADD COLUMN builtin boolean NOT NULL DEFAULT false');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE images DROP COLUMN builtin');
  }
}
