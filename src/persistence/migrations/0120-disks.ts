import { MigrationInterface, QueryRunner } from 'typeorm';

/** VM disks (technique 5's block device): each `{imageId}` or `{sizeMiB}`, in the VM definition. */
export class VmDisks1764000000120 implements MigrationInterface {
  name = 'VmDisks1764000000120';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE vms ADD COLUMN disks jsonb NOT NULL DEFAULT '[]'`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE vms DROP COLUMN disks');
  }
}
