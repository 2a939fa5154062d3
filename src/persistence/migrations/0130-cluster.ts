import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Cluster mode (docs/cluster.md): the `nodes` table (one row per running node, with its heartbeat),
 * the node that owns each host, and the node that runs each Operation (a node that is lost fails
 * its Operations with reason `node-lost`), and the Socket.IO Postgres adapter's attachments table.
 * Single-node mode leaves the new columns null and the new tables empty.
 */
export class Cluster1764000000130 implements MigrationInterface {
  name = 'Cluster1764000000130';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE nodes (
      id text PRIMARY KEY,
      address text NOT NULL,
      http_url text NOT NULL,
      capacity_mib int NOT NULL,
      heartbeat_at timestamptz NOT NULL DEFAULT now(),
      started_at timestamptz NOT NULL DEFAULT now()
    )`);
    await q.query('ALTER TABLE hosts ADD COLUMN owner_node_id text NULL');
    await q.query('CREATE INDEX hosts_owner_node_id ON hosts (owner_node_id)');
    await q.query('ALTER TABLE operations ADD COLUMN node_id text NULL');
    // The Socket.IO Postgres adapter's table for payloads over NOTIFY's 8000 bytes (its documented layout).
    await q.query(`CREATE TABLE socket_io_attachments (id bigserial UNIQUE, created_at timestamptz DEFAULT now(), payload bytea)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE socket_io_attachments');
    await q.query('ALTER TABLE operations DROP COLUMN node_id');
    await q.query('DROP INDEX hosts_owner_node_id');
    await q.query('ALTER TABLE hosts DROP COLUMN owner_node_id');
    await q.query('DROP TABLE nodes');
  }
}
