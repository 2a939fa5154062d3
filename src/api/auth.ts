/**
 * Bearer-token authentication. Tokens are random; only their sha256 is stored. Failed attempts
 * are rate-limited per client address (429 once the budget of the last minute is spent).
 */
import { CanActivate, ExecutionContext, Injectable, SetMetadata, createParamDecorator } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Request } from 'express';
import { DataSource } from 'typeorm';
import { ProblemError, unauthorized } from './errors.js';
import { TenantEntity } from '../persistence/entities.js';
import { CONFIG } from './tokens.js';
import { Inject } from '@nestjs/common';
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

@Injectable()
export class AuthGuard implements CanActivate {
  private failures = new Map<string, number[]>();
  readonly adminTokenHash: string;

  constructor(private readonly reflector: Reflector, private readonly ds: DataSource, @Inject(CONFIG) private readonly config: Config & { resolvedAdminToken: string }) {
    this.adminTokenHash = hashToken(config.resolvedAdminToken);
  }

  async canActivate(ctx: ExecutionContext): Promise<boolean> {
    if (this.reflector.getAllAndOverride<boolean>(PUBLIC, [ctx.getHandler(), ctx.getClass()])) return true;
    const req = ctx.switchToHttp().getRequest<Request & { principal?: Principal }>();
    const addr = req.ip ?? 'unknown';
    const now = Date.now();
    const recent = (this.failures.get(addr) ?? []).filter((t) => now - t < 60_000);
    if (recent.length >= this.config.authFailuresPerMinute) {
      throw new ProblemError(429, 'Too Many Requests', 'too many failed authentications from this address; retry in a minute');
    }
    const fail = (detail: string): never => {
      recent.push(now);
      this.failures.set(addr, recent);
      throw unauthorized(detail);
    };
    const m = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '');
    if (!m) return fail('missing bearer token (Authorization: Bearer TOKEN)');
    const hash = hashToken(m[1]);
    const adminOnly = this.reflector.getAllAndOverride<boolean>(ADMIN_ONLY, [ctx.getHandler(), ctx.getClass()]);
    if (timingSafeEqual(Buffer.from(hash), Buffer.from(this.adminTokenHash))) {
      req.principal = { kind: 'admin' };
      if (!adminOnly) throw new ProblemError(403, 'Forbidden', 'the admin token manages tenants; use a tenant token here');
      return true;
    }
    const tenant = await this.ds.getRepository(TenantEntity).findOneBy({ tokenHash: hash });
    if (!tenant) return fail('invalid token');
    if (adminOnly) throw new ProblemError(403, 'Forbidden', 'this endpoint needs the admin token');
    req.principal = { kind: 'tenant', tenantId: tenant.id };
    return true;
  }
}
