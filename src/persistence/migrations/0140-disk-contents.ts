import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A stopped VM's disks: what its last run wrote over each disk's base (the chunk indices and their
 * bytes), stored when it stopped, booted from at its next start and downloadable meanwhile.
 */
export class VmDiskContents1764000000140 implements MigrationInterface {
  name = 'VmDiskContents1764000000140';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE vm_disk_contents (
      vm_id uuid NOT NULL REFERENCES vms(id) ON DELETE CASCADE,
      disk int NOT NULL,
      tenant_id uuid NOT NULL REFERENCES tenants(id),
      chunks jsonb NOT NULL,
      content bytea NOT NULL,
      stored_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (vm_id, disk))`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE vm_disk_contents');
  }
}
