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
import { Authenticator, newToken } from './api/auth.js';
import express from 'express';
import { SwaggerModule } from '@nestjs/swagger';
import { openApiDocument } from './openapi.js';
import { httpLogger, Metrics } from './api/observability.js';
import { verifyJsonBytes } from './api/validate.js';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { installProcessGuard } from './api/process-guard.js';

/** Errors of the body parsers (too large, malformed JSON) as problem+json. */
function bodyErrors(err: { status?: number; type?: string; message?: string }, _req: express.Request, res: express.Response, next: express.NextFunction) {
  if (!err || !err.status) return next(err);
  const tooLarge = err.type === 'entity.too.large';
  const status = tooLarge ? 413 : err.status;
  const title = tooLarge ? 'Content Too Large' : 'Bad Request';
  res.status(status).type('application/problem+json').send(JSON.stringify({
    type: `https://hvsim.dev/problems/${title.toLowerCase().replace(/ /g, '-')}`, title, status,
    detail: tooLarge ? 'the request body exceeds the size limit' : `malformed request body: ${err.message}`,
  }));
}

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
  installProcessGuard();
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
    const metrics = new Metrics();
    const app = await NestFactory.create<NestExpressApplication>(
      AppModule.forRoot({ config, databaseUrl, embedded: embedded !== null, adminToken: token, metrics }),
      { logger: ['error', 'warn'], bodyParser: false },
    );
    app.use(httpLogger(config.logLevel));
    app.use(metrics.middleware());
    // JSON bodies may carry a base64 image (4/3 of the binary limit); raw uploads are ELF bytes.
    // Only an authenticated request's body is parsed.
    app.use(app.get(Authenticator).parseBodiesAfterAuth(
      express.json({ limit: Math.ceil(config.imageMaxBytes * 1.4) + 4096, verify: verifyJsonBytes }),
      express.raw({ type: 'application/octet-stream', limit: config.imageMaxBytes }),
    ));
    app.use(bodyErrors);
    SwaggerModule.setup('docs', app, () => openApiDocument(app));
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
