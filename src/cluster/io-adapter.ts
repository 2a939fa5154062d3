/**
 * Cluster mode: the Socket.IO server uses the Postgres adapter (@socket.io/postgres-adapter), so
 * `serverSideEmit` reaches the other nodes through NOTIFY (payloads over 8000 bytes through the
 * `socket_io_attachments` table). Its pool is the adapter's own (2 connections), with an error
 * handler: a dropped connection is logged and the pool reconnects; it never crashes the node.
 * The channel is per schema, so clusters sharing one server do not hear each other.
 */
import { IoAdapter } from '@nestjs/platform-socket.io';
import type { INestApplicationContext } from '@nestjs/common';
import { Logger } from '@nestjs/common';
import { createAdapter } from '@socket.io/postgres-adapter';
import pg from 'pg';

export class ClusterIoAdapter extends IoAdapter {
  private readonly log = new Logger('ClusterIoAdapter');
  readonly pool: pg.Pool;

  constructor(app: INestApplicationContext, databaseUrl: string, private readonly schema: string) {
    super(app);
    this.pool = new pg.Pool({ connectionString: databaseUrl, max: 2, options: `-c search_path=${schema}`, application_name: 'hvsim-events' });
    const onError = (e: Error) => this.log.warn(`event fan-out connection failed (reconnecting): ${e.message}`);
    this.pool.on('error', onError);
    // The adapter keeps one client checked out for LISTEN; a checked-out client that loses its
    // connection emits 'error' with no pool listener attached, which would crash the process.
    this.pool.on('connect', (client) => client.on('error', onError));
  }

  // NestJS bundles its own copy of socket.io's types; the adapter is typed against the top-level one.
  override createIOServer(port: number, options?: Parameters<IoAdapter['createIOServer']>[1]): ReturnType<IoAdapter['createIOServer']> {
    const server = super.createIOServer(port, options) as ReturnType<IoAdapter['createIOServer']>;
    const adapter = createAdapter(this.pool, { channelPrefix: `hvsim_${this.schema}`, tableName: 'socket_io_attachments', errorHandler: (e: Error) => this.log.warn(`event fan-out: ${e.message}`) });
    (server as { adapter(a: unknown): unknown }).adapter(adapter);
    return server;
  }

  override async close(server: Parameters<IoAdapter['close']>[0]): Promise<void> {
    await super.close(server);
    await this.pool.end().catch(() => undefined);
  }
}
