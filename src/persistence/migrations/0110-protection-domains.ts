import { MigrationInterface, QueryRunner } from 'typeorm';

/** Technique 7: a VM definition's secure protection domains ({name, imageId, entryPoints, memoryKiB}[]). */
export class ProtectionDomains1764000000110 implements MigrationInterface {
  name = 'ProtectionDomains1764000000110';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE vms ADD COLUMN domains jsonb NOT NULL DEFAULT '[]'`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE vms DROP COLUMN domains');
  }
}
