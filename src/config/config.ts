/**
 * Service configuration from the environment, validated once at start-up.
 * Raises: ConfigError naming the variable and what is wrong with it.
 */
import { join, resolve } from 'node:path';
import { hostname } from 'node:os';

export class ConfigError extends Error {}

export interface Config {
  host: string;
  port: number;
  /** Real Postgres when set; otherwise the embedded PGlite server. */
  databaseUrl: string | null;
  /** Embedded database storage: a directory, or memory. */
  embedded: { dataDir: string; memory: boolean };
  /** Fixed admin token, or null to generate one and store it under the data dir. */
  adminToken: string | null;
  /** Failed authentications allowed per client address per minute before 429. */
  authFailuresPerMinute: number;
  /** Postgres schema (tests isolate suites with it); default public. */
  schema: string;
  /** Largest accepted image upload in bytes (HVSIM_IMAGE_MAX_BYTES, default 16 MiB). */
  imageMaxBytes: number;
  /** Per-socket event flow control: unacknowledged events, then queued events (HVSIM_EVENTS_IN_FLIGHT, HVSIM_EVENTS_QUEUE). */
  events: { inFlight: number; queue: number };
  /** pino level (HVSIM_LOG_LEVEL: fatal, error, warn, info, debug, trace, silent). */
  logLevel: string;
  /**
   * Retention: events kept per tenant (HVSIM_EVENT_RETENTION, default 100,000; older ones are
   * pruned and `since` before them is 410 Gone), console bytes kept per VM and stream
   * (HVSIM_CONSOLE_BYTES, default 1 MiB), seconds between persisted vm.counters events of a
   * running VM (HVSIM_COUNTERS_EVERY_S, default 5).
   */
  retention: { events: number; consoleBytes: number; countersEverySeconds: number };
  /** Cluster mode (HVSIM_CLUSTER=on; docs/cluster.md), or null for one node (the default). */
  cluster: ClusterConfig | null;
}

export interface ClusterConfig {
  /** HVSIM_NODE_ID: this node's name in the `nodes` table (default: hostname-pid). */
  nodeId: string;
  /** HVSIM_ADVERTISE_ADDRESS: the address other nodes reach this node at (HTTP and migration listeners). Default: HOST. */
  advertiseAddress: string;
  /** HVSIM_NODE_CAPACITY_MIB: host DRAM this node takes on (placement of new hosts and takeovers). */
  capacityMiB: number;
  /** HVSIM_HEARTBEAT_MS: how often the node writes its heartbeat and looks for work (default 3000). */
  heartbeatMs: number;
  /** HVSIM_NODE_TIMEOUT_MS: a node whose heartbeat is older is gone (default 10000; more than two beats). */
  timeoutMs: number;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const port = env.PORT === undefined || env.PORT === '' ? 8080 : Number(env.PORT);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ConfigError(`PORT must be an integer 0-65535, got '${env.PORT}'`);
  const db = env.HVSIM_DB ?? 'disk';
  if (db !== 'disk' && db !== 'memory') throw new ConfigError(`HVSIM_DB must be 'disk' or 'memory', got '${db}'`);
  const url = env.DATABASE_URL?.trim() || null;
  if (url !== null && !/^postgres(ql)?:\/\//.test(url)) throw new ConfigError(`DATABASE_URL must be a postgres:// URL, got '${url}'`);
  const token = env.HVSIM_ADMIN_TOKEN?.trim() || null;
  if (token !== null && token.length < 16) throw new ConfigError('HVSIM_ADMIN_TOKEN must be at least 16 characters');
  const schema = env.HVSIM_DB_SCHEMA?.trim() || 'public';
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) throw new ConfigError(`HVSIM_DB_SCHEMA must be a lower-case SQL identifier, got '${schema}'`);
  const imageMaxBytes = env.HVSIM_IMAGE_MAX_BYTES ? Number(env.HVSIM_IMAGE_MAX_BYTES) : 16 << 20;
  if (!Number.isInteger(imageMaxBytes) || imageMaxBytes < 1024 || imageMaxBytes > 256 << 20) {
    throw new ConfigError(`HVSIM_IMAGE_MAX_BYTES must be an integer between 1024 and ${256 << 20}, got '${env.HVSIM_IMAGE_MAX_BYTES}'`);
  }
  const int = (name: string, def: number, lo: number, hi: number) => {
    const v = env[name] ? Number(env[name]) : def;
    if (!Number.isInteger(v) || v < lo || v > hi) throw new ConfigError(`${name} must be an integer between ${lo} and ${hi}, got '${env[name]}'`);
    return v;
  };
  const events = { inFlight: int('HVSIM_EVENTS_IN_FLIGHT', 64, 1, 4096), queue: int('HVSIM_EVENTS_QUEUE', 1024, 0, 1 << 20) };
  const retention = {
    events: int('HVSIM_EVENT_RETENTION', 100_000, 1000, 1e9),
    consoleBytes: int('HVSIM_CONSOLE_BYTES', 1 << 20, 4096, 64 << 20),
    countersEverySeconds: int('HVSIM_COUNTERS_EVERY_S', 5, 1, 3600),
  };
  const logLevel = env.HVSIM_LOG_LEVEL?.trim() || 'info';
  if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(logLevel)) throw new ConfigError(`HVSIM_LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent; got '${logLevel}'`);
  const cluster = clusterConfig(env, url, token, int);
  const dataDir = resolve(env.HVSIM_DATA_DIR?.trim() || join(process.cwd(), '.hvsim'));
  return {
    host: env.HOST?.trim() || '127.0.0.1',
    port,
    databaseUrl: url,
    embedded: { dataDir, memory: db === 'memory' },
    adminToken: token,
    authFailuresPerMinute: 20,
    schema,
    imageMaxBytes,
    events,
    logLevel,
    retention,
    cluster,
  };
}

function clusterConfig(env: NodeJS.ProcessEnv, url: string | null, token: string | null, int: (name: string, def: number, lo: number, hi: number) => number): ClusterConfig | null {
  const mode = env.HVSIM_CLUSTER?.trim() || 'off';
  if (mode !== 'on' && mode !== 'off') throw new ConfigError(`HVSIM_CLUSTER must be 'on' or 'off', got '${mode}'`);
  if (mode === 'off') return null;
  // The embedded database serves one connection; every node must reach the same server.
  if (url === null) throw new ConfigError('HVSIM_CLUSTER=on needs DATABASE_URL (a Postgres server every node reaches; the embedded database serves one connection)');
  // Every node must accept the same admin token (a generated one would differ per node).
  if (token === null) throw new ConfigError('HVSIM_CLUSTER=on needs HVSIM_ADMIN_TOKEN (the same on every node)');
  const nodeId = env.HVSIM_NODE_ID?.trim() || `${hostname()}-${process.pid}`;
  // It is also the lock connection's application_name ('hvsim-node ' + id, at most 63 bytes).
  if (!/^[A-Za-z0-9_.:-]{1,52}$/.test(nodeId)) throw new ConfigError(`HVSIM_NODE_ID must be 1-52 characters of letters, digits, '_', '.', ':', '-', got '${nodeId}'`);
  const advertiseAddress = env.HVSIM_ADVERTISE_ADDRESS?.trim() || env.HOST?.trim() || '127.0.0.1';
  if (!/^[A-Za-z0-9_.:-]{1,253}$/.test(advertiseAddress) || advertiseAddress === '0.0.0.0' || advertiseAddress === '::') {
    throw new ConfigError(`HVSIM_ADVERTISE_ADDRESS must be a host name or address other nodes can reach (not a wildcard), got '${advertiseAddress}'`);
  }
  const heartbeatMs = int('HVSIM_HEARTBEAT_MS', 3000, 100, 60_000);
  const timeoutMs = int('HVSIM_NODE_TIMEOUT_MS', 10_000, 300, 600_000);
  if (timeoutMs < 2 * heartbeatMs) throw new ConfigError(`HVSIM_NODE_TIMEOUT_MS (${timeoutMs}) must be at least twice HVSIM_HEARTBEAT_MS (${heartbeatMs})`);
  return { nodeId, advertiseAddress, capacityMiB: int('HVSIM_NODE_CAPACITY_MIB', 8192, 16, 1 << 24), heartbeatMs, timeoutMs };
}
