import { ApiPropertyOptional } from '@nestjs/swagger';
import { IsInt, IsOptional, IsString, Max, Min } from 'class-validator';
import { Type } from 'class-transformer';
import { ProblemError } from './errors.js';
import type { ObjectLiteral, Repository } from 'typeorm';

export class PageQuery {
  @ApiPropertyOptional() @IsOptional() @Type(() => Number) @IsInt() @Min(1) @Max(100) pageSize?: number;
  @ApiPropertyOptional() @IsOptional() @IsString() pageToken?: string;
}

/** Offset page tokens: base64url of `o:OFFSET`, the offset of the next page's first item. */
export function pageOffset(token?: string): number {
  if (token === undefined) return 0;
  const m = /^o:(\d{1,9})$/.exec(Buffer.from(token, 'base64url').toString());
  if (!m) throw new ProblemError(400, 'Bad Request', 'pageToken is not a token this service issued');
  return Number(m[1]);
}

export const nextToken = (offset: number, got: number, size: number): string | undefined =>
  (got === size ? Buffer.from(`o:${offset + size}`).toString('base64url') : undefined);

/** One page of a tenant's rows (optionally filtered by `where`), oldest first, mapped through `view`. */
export async function listPage<E extends ObjectLiteral & { tenantId: string }, V>(
  repo: Repository<E>, tenantId: string, q: PageQuery, view: (e: E) => V, where: Partial<E> = {},
): Promise<{ items: V[]; nextPageToken: string | undefined }> {
  const size = q.pageSize ?? 20;
  const offset = pageOffset(q.pageToken);
  const rows = await repo.find({ where: { ...where, tenantId } as never, order: { createdAt: 'ASC', id: 'ASC' } as never, skip: offset, take: size });
  return { items: rows.map(view), nextPageToken: nextToken(offset, rows.length, size) };
}
