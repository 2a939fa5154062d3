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
import { methodNotAllowed } from './api/method-not-allowed.js';
import { dashboard } from './api/dashboard.js';
import { installProcessGuard } from './api/process-guard.js';
import { ClusterService, lockKey } from './cluster/cluster.service.js';
import { clusterRouter } from './cluster/router.js';
import { ClusterIoAdapter } from './cluster/io-adapter.js';

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

export interface StartOptions {
  /** The embedded database, already starting (`npm start` opens it while it loads this module). */
  embedded?: Promise<EmbeddedPostgres>;
  /** performance.now() when start-up began, for the times `progress` hears. */
  t0?: number;
}

/**
 * Starts the service. `progress` hears each start-up phase as it begins and once more when the
 * service listens, with the milliseconds since the start (`npm start` prints them).
 */
export async function startService(config: Config, progress: (phase: string, ms: number) => void = () => {}, opts: StartOptions = {}): Promise<RunningService> {
  const t0 = opts.t0 ?? performance.now();
  const phase = (name: string) => progress(name, Math.round(performance.now() - t0));
  installProcessGuard();
  let embedded: EmbeddedPostgres | null = null;
  let databaseUrl = config.databaseUrl;
  if (!databaseUrl) {
    if (!opts.embedded) phase(`opening the embedded database (${config.embedded.memory ? 'in memory' : config.embedded.dataDir})`);
    embedded = await (opts.embedded ?? startEmbeddedPostgres(config.embedded));
    databaseUrl = embedded.url;
  }
  // Cluster mode: nodes starting together create the schema and run the migrations one at a time
  // (a session advisory lock held until this node's application is built).
  let migrating: pg.Client | null = null;
  if (config.databaseUrl && (config.schema !== 'public' || config.cluster)) {
    migrating = new pg.Client({ connectionString: databaseUrl });
    await migrating.connect();
    if (config.cluster) await migrating.query('SELECT pg_advisory_lock($1)', [lockKey(`hvsim-migrate:${config.schema}`)]);
    if (config.schema !== 'public') await migrating.query(`CREATE SCHEMA IF NOT EXISTS ${config.schema}`);
  }
  const { token, generated } = resolveAdminToken(config);
  try {
    phase('starting the application (schema migrations, hosts)');
    const metrics = new Metrics();
    let app: NestExpressApplication;
    try {
      app = await NestFactory.create<NestExpressApplication>(
        AppModule.forRoot({ config, databaseUrl, embedded: embedded !== null, adminToken: token, metrics }),
        { logger: ['error', 'warn'], bodyParser: false },
      );
    } finally {
      await migrating?.end().catch(() => undefined);
    }
    app.use(httpLogger(config.logLevel));
    app.use(metrics.middleware());
    const cluster = app.get(ClusterService);
    if (config.cluster) {
      const nodeId = config.cluster.nodeId;
      // Every answer names the node that produced it (a forwarded request: the owner).
      app.use((_req: express.Request, res: express.Response, next: express.NextFunction) => { res.setHeader('x-hvsim-node', nodeId); next(); });
      // Requests about hosts, VMs, migrations and Operations other nodes run go there, body unread.
      app.use(clusterRouter(cluster));
      app.useWebSocketAdapter(new ClusterIoAdapter(app, databaseUrl, config.schema));
    }
    // JSON bodies may carry a base64 image (4/3 of the binary limit); raw uploads are ELF bytes.
    // Only an authenticated request's body is parsed.
    app.use(app.get(Authenticator).parseBodiesAfterAuth(
      express.json({ limit: Math.ceil(config.imageMaxBytes * 1.4) + 4096, verify: verifyJsonBytes }),
      express.raw({ type: 'application/octet-stream', limit: config.imageMaxBytes }),
    ));
    app.use(bodyErrors);
    app.use(methodNotAllowed(() => openApiDocument(app)));
    app.use(dashboard());
    SwaggerModule.setup('docs', app, () => openApiDocument(app));
    phase('opening the HTTP port');
    // Idle keep-alive connections outlive the clients' own idle timeouts (undici's is 4 s, a
    // proxy's often 60 s), so a client never sends a request on a socket the service is closing
    // at that moment: with Node's 5 s default a busy event loop fired both timers together and a
    // request got ECONNRESET (seen in CI).
    const http = app.getHttpServer() as import('node:http').Server;
    http.keepAliveTimeout = 65_000;
    http.headersTimeout = 66_000;
    await app.listen(config.port, config.host);
    const addr = app.getHttpServer().address() as { port: number };
    if (config.cluster) {
      phase(`joining the cluster as node ${config.cluster.nodeId}`);
      await cluster.start(addr.port);
    }
    phase('ready');
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
