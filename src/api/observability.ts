/**
 * Structured JSON logs with request ids (pino; secrets redacted), and Prometheus metrics (prom-client): HTTP
 * request counts and latency histograms labelled by method, route template (`/v1/vms/:id`; every
 * request no route matched is `unmatched`, so junk paths add no series) and status. /metrics is
 * the operator's: it needs the admin token. Series labelled with a VM are dropped when the VM is
 * deleted.
 */
import { Controller, Get, Header } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import type { NextFunction, Request, Response } from 'express';
import { randomUUID } from 'node:crypto';
import { pino, Logger as Pino } from 'pino';
import { pinoHttp } from 'pino-http';
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { AdminOnly } from './auth.js';
import { EventsService, HvEvent } from './events.service.js';

export class Metrics {
  readonly registry = new Registry();
  readonly requests = new Counter({ name: 'hvsim_http_requests_total', help: 'HTTP requests', labelNames: ['method', 'route', 'status'], registers: [this.registry] });
  readonly latency = new Histogram({
    name: 'hvsim_http_request_duration_seconds', help: 'HTTP request latency', labelNames: ['method', 'route'],
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5], registers: [this.registry],
  });

  constructor() { collectDefaultMetrics({ register: this.registry, prefix: 'hvsim_' }); }

  /** Removes every series labelled `vm="<vmId>"` (a deleted VM). */
  async forgetVm(vmId: string): Promise<void> {
    for (const metric of this.registry.getMetricsAsArray()) {
      const m = metric as unknown as { get(): Promise<{ values: Array<{ labels: Record<string, string | number> }> }>; remove(labels: Record<string, string | number>): void };
      for (const v of (await m.get()).values) if (v.labels.vm === vmId) m.remove(v.labels);
    }
  }

  /** Express middleware recording every request when its response finishes. */
  middleware() {
    return (req: Request, res: Response, next: NextFunction) => {
      const start = process.hrtime.bigint();
      res.on('finish', () => {
        const template = (req.route as { path?: string } | undefined)?.path;
        const full = template === undefined ? 'unmatched' : `${req.baseUrl ?? ''}${template}`;
        this.requests.inc({ method: req.method, route: full, status: String(res.statusCode) });
        this.latency.observe({ method: req.method, route: full }, Number(process.hrtime.bigint() - start) / 1e9);
      });
      next();
    };
  }
}

/**
 * Request headers that carry a secret: bearer tokens, cookies, API keys, and idempotency keys
 * (a key lets whoever holds it replay or read the stored response of a request).
 */
export const SECRET_HEADERS = ['authorization', 'proxy-authorization', 'cookie', 'x-api-key', 'idempotency-key'];
/** Query parameters that may carry a token (Socket.IO clients and some HTTP clients put it there). */
const SECRET_QUERY_PARAMS = ['token', 'access_token', 'auth', 'api_key', 'apikey', 'key'];
const SECRET_QUERY = new RegExp(`([?&](?:${SECRET_QUERY_PARAMS.join('|')})=)[^&#]*`, 'gi');

/** A URL with the values of secret-carrying query parameters replaced. */
export function redactUrl(url: string): string {
  return url.replace(SECRET_QUERY, '$1[redacted]');
}

/**
 * The pino options of every log the service writes: secret headers censored (pino `redact`),
 * secret query parameters censored in logged URLs.
 */
export function loggerOptions(level: string) {
  return {
    level,
    base: { service: 'hvsim' },
    redact: {
      paths: [...SECRET_HEADERS.map((h) => `req.headers["${h}"]`), ...SECRET_QUERY_PARAMS.map((q) => `req.query["${q}"]`), 'res.headers["set-cookie"]'],
      censor: '[redacted]',
    },
  };
}

export function httpLogger(level: string) {
  const logger: Pino = pino(loggerOptions(level));
  return pinoHttp({
    logger,
    genReqId: (req, res) => {
      const given = req.headers['x-request-id'];
      const id = typeof given === 'string' && /^[\w.-]{1,100}$/.test(given) ? given : randomUUID();
      res.setHeader('X-Request-Id', id);
      return id;
    },
    serializers: {
      req: (req: { url?: string }) => (typeof req.url === 'string' ? { ...req, url: redactUrl(req.url) } : req),
    },
    customLogLevel: (_req, res, err) => (err || res.statusCode >= 500 ? 'error' : res.statusCode >= 400 ? 'warn' : 'info'),
  });
}

@ApiTags('health')
@ApiBearerAuth()
@Controller()
export class MetricsController {
  constructor(private readonly metrics: Metrics, events: EventsService) {
    events.live.on('event', (e: HvEvent) => {
      if (e.type === 'vm.deleted') void this.metrics.forgetVm(e.subject.slice('vm:'.length));
    });
  }

  /** Prometheus text exposition (admin token: it names every tenant's VMs and hosts). */
  @Get('metrics') @AdminOnly() @Header('Content-Type', 'text/plain; version=0.0.4')
  async scrape(): Promise<string> { return this.metrics.registry.metrics(); }
}
