/**
 * Idempotency-Key for creating POSTs: the first response for a (tenant, key) is stored with a
 * hash of the route and body; the same key with the same request returns that response again
 * (same status and body), the same key with a different request is a 422.
 *
 * The key's row is the lock: a request first inserts it as `in progress` (status 0); only the
 * request whose insert wins runs the handler, then stores the response in the row (or deletes
 * the row when the handler fails, so the key can be used again). Concurrent requests with the
 * key wait for the row to complete and replay it (409 if it is still in progress after
 * WAIT_MS). A row left in progress by a crash is taken over after STALE_MS.
 */
import { CallHandler, ExecutionContext, Injectable, NestInterceptor, SetMetadata, UseInterceptors, applyDecorators } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Request, Response } from 'express';
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { catchError, from, Observable, of, switchMap } from 'rxjs';
import { DataSource } from 'typeorm';
import { conflict, ProblemError } from './errors.js';
import type { Principal } from './auth.js';
import { IdempotencyEntity } from '../persistence/entities.js';

const KEY = 'hvsim:idempotent';
const IN_PROGRESS = 0;
const WAIT_MS = 30_000;
const POLL_MS = 25;
const STALE_MS = 120_000;

type Claim = { owner: true } | { owner: false; row: IdempotencyEntity };

@Injectable()
export class IdempotencyInterceptor implements NestInterceptor {
  constructor(private readonly ds: DataSource, private readonly reflector: Reflector) {}

  intercept(ctx: ExecutionContext, next: CallHandler): Observable<unknown> {
    const req = ctx.switchToHttp().getRequest<Request & { principal?: Principal }>();
    const res = ctx.switchToHttp().getResponse<Response>();
    const key = req.headers['idempotency-key'];
    if (!this.reflector.get<boolean>(KEY, ctx.getHandler()) || typeof key !== 'string' || req.principal?.kind !== 'tenant') return next.handle();
    if (!/^[\x21-\x7e]{1,200}$/.test(key)) throw new ProblemError(400, 'Bad Request', 'Idempotency-Key must be 1-200 visible ASCII characters');
    const tenantId = req.principal.tenantId;
    const route = `${req.method} ${req.baseUrl}${(req.route as { path: string }).path}`;
    const body = Buffer.isBuffer(req.body) ? req.body : Buffer.from(JSON.stringify(req.body ?? null));
    const bodyHash = createHash('sha256').update(route).update('\0').update(JSON.stringify(req.query)).update('\0').update(body).digest('hex');
    const repo = this.ds.getRepository(IdempotencyEntity);
    return from(this.claim(tenantId, key, route, bodyHash)).pipe(switchMap((c) => {
      if (!c.owner) {
        res.status(c.row.status).setHeader('Idempotent-Replayed', 'true');
        return of(c.row.response);
      }
      return next.handle().pipe(
        switchMap((response) => from(repo.update({ tenantId, key }, { status: res.statusCode, response: (response ?? null) as never }).then(() => response))),
        catchError((e: unknown) => from(repo.delete({ tenantId, key }).then(() => { throw e; }))),
      );
    }));
  }

  /**
   * Inserts the key's row (in progress) and returns {owner: true}, or waits for the request that
   * holds it and returns its completed row.
   * Raises: 422 for the key used with another request; 409 when the holder does not finish in WAIT_MS.
   */
  private async claim(tenantId: string, key: string, route: string, bodyHash: string): Promise<Claim> {
    const repo = this.ds.getRepository(IdempotencyEntity);
    const deadline = Date.now() + WAIT_MS;
    for (;;) {
      const inserted = await repo.createQueryBuilder().insert()
        .values({ tenantId, key, route, bodyHash, status: IN_PROGRESS, response: {} as never }).orIgnore().returning(['key']).execute();
      if ((inserted.raw as unknown[]).length === 1) return { owner: true };
      const row = await repo.findOneBy({ tenantId, key });
      if (!row) continue; // its holder failed and released it: try again
      if (row.bodyHash !== bodyHash || row.route !== route) {
        throw new ProblemError(422, 'Unprocessable Content', 'this Idempotency-Key was used with a different request');
      }
      if (row.status !== IN_PROGRESS) return { owner: false, row };
      if (Date.now() - row.createdAt.getTime() > STALE_MS) {
        await repo.delete({ tenantId, key, status: IN_PROGRESS, createdAt: row.createdAt });
        continue;
      }
      if (Date.now() > deadline) throw conflict('a request with this Idempotency-Key is still in progress; retry later');
      await sleep(POLL_MS);
    }
  }
}

/** Marks a creating POST as honouring Idempotency-Key. */
export const Idempotent = () => applyDecorators(SetMetadata(KEY, true), UseInterceptors(IdempotencyInterceptor));
