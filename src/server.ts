/**
 * Starting and stopping the service: resolves the database (real Postgres, or the embedded
 * PGlite server), the admin token, builds the Nest application and listens.
 */
import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import type { INestApplication } from '@nestjs/common';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { AppModule } from './app.module.js';
import type { Config } from './config/config.js';
import { startEmbeddedPostgres, EmbeddedPostgres } from './persistence/embedded.js';
import { newToken } from './api/auth.js';

export interface RunningService {
  app: INestApplication;
  url: string;
  adminToken: string;
  /** True when the admin token was generated now (print it once). */
  generatedToken: boolean;
  close(): Promise<void>;
}

/** The admin token: configured, or read from / generated into the data dir. */
function resolveAdminToken(config: Config): { token: string; generated: boolean } {
  if (config.adminToken) return { token: config.adminToken, generated: false };
  if (config.embedded.memory || config.databaseUrl) return { token: newToken('hva'), generated: true };
  const file = join(config.embedded.dataDir, 'admin-token');
  if (existsSync(file)) return { token: readFileSync(file, 'utf8').trim(), generated: false };
  mkdirSync(config.embedded.dataDir, { recursive: true });
  const token = newToken('hva');
  writeFileSync(file, token + '\n', { mode: 0o600 });
  return { token, generated: true };
}

export async function startService(config: Config): Promise<RunningService> {
  let embedded: EmbeddedPostgres | null = null;
  let databaseUrl = config.databaseUrl;
  if (!databaseUrl) {
    embedded = await startEmbeddedPostgres(config.embedded);
    databaseUrl = embedded.url;
  } else if (config.schema !== 'public') {
    const c = new pg.Client({ connectionString: databaseUrl });
    await c.connect();
    await c.query(`CREATE SCHEMA IF NOT EXISTS ${config.schema}`);
    await c.end();
  }
  const { token, generated } = resolveAdminToken(config);
  try {
    const app = await NestFactory.create(AppModule.forRoot({ config, databaseUrl, embedded: embedded !== null, adminToken: token }), { logger: ['error', 'warn'] });
    await app.listen(config.port, config.host);
    const addr = app.getHttpServer().address() as { port: number };
    return {
      app, url: `http://${config.host}:${addr.port}`, adminToken: token, generatedToken: generated,
      async close() {
        await app.close();
        await embedded?.stop();
      },
    };
  } catch (e) {
    await embedded?.stop();
    throw e;
  }
}
