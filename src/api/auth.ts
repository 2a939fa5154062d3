/**
 * Bearer-token authentication. Tokens are random; only their sha256 is stored. A request's
 * principal is resolved once, before its body is parsed (bodies of unauthenticated requests are
 * never parsed), and the guard reuses it. Failed attempts are rate-limited per (client address,
 * failing token hash): 429 once that pair's budget of the last minute is spent. A valid token is
 * never refused by the limiter, so bad requests behind one address (a NAT) lock out nobody else.
 * Socket.IO handshakes (events.gateway.ts) count against the same budget.
 */
import { CanActivate, ExecutionContext, Inject, Injectable, SetMetadata, createParamDecorator } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { DataSource } from 'typeorm';
import { ProblemError, unauthorized } from './errors.js';
import { TenantEntity } from '../persistence/entities.js';
import { CONFIG } from './tokens.js';
import type { Config } from '../config/config.js';

export const hashToken = (token: string) => createHash('sha256').update(token).digest('hex');
export const newToken = (prefix: string) => `${prefix}_${randomBytes(24).toString('base64url')}`;

export type Principal = { kind: 'admin' } | { kind: 'tenant'; tenantId: string };

const ADMIN_ONLY = 'hvsim:adminOnly';
export const AdminOnly = () => SetMetadata(ADMIN_ONLY, true);
const PUBLIC = 'hvsim:public';
export const Public = () => SetMetadata(PUBLIC, true);

/** The authenticated tenant's id (routes that are not admin-only). */
export const TenantId = createParamDecorator((_: unknown, ctx: ExecutionContext) => {
  const p = ctx.switchToHttp().getRequest<Request & { principal?: Principal }>().principal;
  if (!p || p.kind !== 'tenant') throw new ProblemError(403, 'Forbidden', 'this endpoint needs a tenant token');
  return p.tenantId;
});

/** What a request's Authorization header proved: the principal, or why not (with the hash of the token tried). */
type Resolution = { principal: Principal } | { principal: null; detail: string; tokenHash: string };
type AuthRequest = Request & { principal?: Principal; [RESOLVED]?: Promise<Resolution> };
const RESOLVED = Symbol('hvsim:auth');

/** Most (address, token) pairs the limiter remembers; past it, the oldest are forgotten. */
const MAX_TRACKED = 10_000;
const WINDOW_MS = 60_000;
export const TOO_MANY = 'too many failed authentications with this token from this address; retry in a minute';

@Injectable()
export class Authenticator {
  readonly adminTokenHash: string;
  private failures = new Map<string, number[]>();

  constructor(private readonly ds: DataSource, @Inject(CONFIG) private readonly config: Config & { resolvedAdminToken: string }) {
    this.adminTokenHash = hashToken(config.resolvedAdminToken);
  }

  /** Resolves the request's bearer token once (later calls share the answer). */
  resolve(req: Request): Promise<Resolution> {
    const r = req as AuthRequest;
    return (r[RESOLVED] ??= this.lookup(req.headers.authorization));
  }

  private async lookup(header: string | undefined): Promise<Resolution> {
    const m = /^Bearer (\S+)$/.exec(header ?? '');
    if (!m) return { principal: null, detail: 'missing bearer token (Authorization: Bearer TOKEN)', tokenHash: '' };
    const hash = hashToken(m[1]);
    if (timingSafeEqual(Buffer.from(hash), Buffer.from(this.adminTokenHash))) return { principal: { kind: 'admin' } };
    const tenant = await this.ds.getRepository(TenantEntity).findOneBy({ tokenHash: hash });
    return tenant ? { principal: { kind: 'tenant', tenantId: tenant.id } } : { principal: null, detail: 'invalid token', tokenHash: hash };
  }

  /**
   * Counts a failed authentication of `tokenHash` from `addr` (HTTP and Socket.IO handshakes share
   * the budget). Returns false when the pair has already failed authFailuresPerMinute times in the
   * last minute: the attempt is then refused (429) and not counted.
   */
  countFailure(addr: string, tokenHash: string): boolean {
    const key = `${addr} ${tokenHash}`;
    const now = Date.now();
    const recent = (this.failures.get(key) ?? []).filter((t) => now - t < WINDOW_MS);
    if (recent.length >= this.config.authFailuresPerMinute) return false;
    recent.push(now);
    this.failures.delete(key);
    this.failures.set(key, recent);
    if (this.failures.size > MAX_TRACKED) this.forgetOld(now);
    return true;
  }

  /**
   * Counts a failed authentication of `tokenHash` from `addr`.
   * Raises: 429 when the pair has failed authFailuresPerMinute times in the last minute, else 401.
   */
  fail(addr: string, tokenHash: string, detail: string): never {
    if (!this.countFailure(addr, tokenHash)) throw new ProblemError(429, 'Too Many Requests', TOO_MANY);
    throw unauthorized(detail);
  }

  /** The tenant a Socket.IO handshake's token belongs to (null: not a tenant token). Raises: database errors. */
  async tenantOf(token: string): Promise<string | null> {
    return (await this.ds.getRepository(TenantEntity).findOneBy({ tokenHash: hashToken(token) }))?.id ?? null;
  }

  /** Drops pairs with no failure in the window, then the least recently failed beyond MAX_TRACKED. */
  private forgetOld(now: number): void {
    for (const [k, ts] of this.failures) if (now - ts[ts.length - 1] >= WINDOW_MS) this.failures.delete(k);
    for (const k of this.failures.keys()) {
      if (this.failures.size <= MAX_TRACKED) break;
      this.failures.delete(k);
    }
  }

  /**
   * Wraps body parsers so that they run only for authenticated requests: an unauthenticated
   * request's body is never read into a parser (the guard answers 401 without it).
   */
  parseBodiesAfterAuth(...parsers: RequestHandler[]): RequestHandler {
    return (req: Request, res: Response, next: NextFunction) => {
      this.resolve(req).then((r) => {
        if (!r.principal) return next();
        let i = 0;
        const step = (err?: unknown): void => {
          if (err || i === parsers.length) next(err);
          else parsers[i++](req, res, step);
        };
        step();
      }, () => next()); // the guard meets the same failure and answers it (503 when the database is down)
    };
  }
}

@Injectable()
export class AuthGuard implements CanActivate {
  constructor(private readonly reflector: Reflector, private readonly auth: Authenticator) {}

  async canActivate(ctx: ExecutionContext): Promise<boolean> {
    if (this.reflector.getAllAndOverride<boolean>(PUBLIC, [ctx.getHandler(), ctx.getClass()])) return true;
    const req = ctx.switchToHttp().getRequest<AuthRequest>();
    const r = await this.auth.resolve(req);
    if (!r.principal) return this.auth.fail(req.ip ?? 'unknown', r.tokenHash, r.detail);
    const adminOnly = this.reflector.getAllAndOverride<boolean>(ADMIN_ONLY, [ctx.getHandler(), ctx.getClass()]);
    req.principal = r.principal;
    if (r.principal.kind === 'admin' && !adminOnly) throw new ProblemError(403, 'Forbidden', 'the admin token manages tenants; use a tenant token here');
    if (r.principal.kind === 'tenant' && adminOnly) throw new ProblemError(403, 'Forbidden', 'this endpoint needs the admin token');
    return true;
  }
}
