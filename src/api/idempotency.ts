/**
 * Idempotency-Key for creating POSTs: the first response for a (tenant, key) is stored with a
 * hash of the route and body; the same key with the same request returns that response again
 * (same status and body), the same key with a different request is a 422.
 */
import { CallHandler, ExecutionContext, Injectable, NestInterceptor, SetMetadata, UseInterceptors, applyDecorators } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Request, Response } from 'express';
import { createHash } from 'node:crypto';
import { from, Observable, of, switchMap } from 'rxjs';
import { DataSource } from 'typeorm';
import { ProblemError } from './errors.js';
import type { Principal } from './auth.js';
import { IdempotencyEntity } from '../persistence/entities.js';

const KEY = 'hvsim:idempotent';

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
    return from(repo.findOneBy({ tenantId, key })).pipe(switchMap((prior) => {
      if (prior) {
        if (prior.bodyHash !== bodyHash || prior.route !== route) {
          throw new ProblemError(422, 'Unprocessable Content', 'this Idempotency-Key was used with a different request');
        }
        res.status(prior.status).setHeader('Idempotent-Replayed', 'true');
        return of(prior.response);
      }
      return next.handle().pipe(switchMap((response) => from(
        repo.createQueryBuilder().insert().values({ tenantId, key, route, bodyHash, status: res.statusCode, response: response as never })
          .orIgnore().execute().then(() => response),
      )));
    }));
  }
}

/** Marks a creating POST as honouring Idempotency-Key. */
export const Idempotent = () => applyDecorators(SetMetadata(KEY, true), UseInterceptors(IdempotencyInterceptor));
