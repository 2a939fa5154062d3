import { BadRequestException, CanActivate, ExecutionContext, Injectable } from '@nestjs/common';
import type { Request } from 'express';
import { isUtf8 } from 'node:buffer';
import { plainToInstance } from 'class-transformer';
import { validate, ValidationError } from 'class-validator';

const flatten = (errs: ValidationError[], prefix = ''): string[] => errs.flatMap((e) => [
  ...Object.values(e.constraints ?? {}).map((m) => (prefix ? `${prefix}.${m}` : m)),
  ...flatten(e.children ?? [], prefix ? `${prefix}.${e.property}` : e.property),
]);

/**
 * Validates a body whose type the global pipe cannot see (routes accepting several content
 * types), with the same rules: whitelist, unknown fields rejected.
 * Raises: BadRequestException listing every problem.
 */
export async function validateBody<T extends object>(cls: new () => T, body: unknown): Promise<T> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new BadRequestException(['body must be a JSON object']);
  const dto = plainToInstance(cls, body);
  const errs = await validate(dto, { whitelist: true, forbidNonWhitelisted: true });
  if (errs.length) throw new BadRequestException(flatten(errs));
  return dto;
}

/** Deepest JSON nesting a body may have (the deepest DTO nests 4 levels; techniques a few more). */
export const MAX_JSON_DEPTH = 32;

const badBody = (message: string) => Object.assign(new Error(message), { status: 400 });

/**
 * body-parser `verify` hook for JSON bodies, run on the bytes before they are parsed: rejects
 * invalid UTF-8 (the decoder would turn it into U+FFFD silently) and nesting deeper than
 * MAX_JSON_DEPTH (one linear scan, so no parser or validator ever recurses on a hostile body).
 * Raises: an error with status 400 (the body-error handler answers problem+json).
 */
export function verifyJsonBytes(_req: unknown, _res: unknown, buf: Buffer): void {
  if (!isUtf8(buf)) throw badBody('the body is not valid UTF-8');
  let depth = 0, inString = false;
  for (let i = 0; i < buf.length; i++) {
    const c = buf[i];
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > MAX_JSON_DEPTH) throw badBody(`the body is nested deeper than ${MAX_JSON_DEPTH} levels`);
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
}

/** Keys that name Object.prototype machinery: rejected wherever they appear, like unknown fields. */
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);
const UUID_ANY_CASE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** False for a UUID spelled with uppercase letters (ids are lowercase everywhere). */
const uuidIsCanonical = (v: unknown) => typeof v !== 'string' || !UUID_ANY_CASE.test(v) || v === v.toLowerCase();

/** The problem with a string that is to be stored (names, argv, env, stdin, source), or null. */
function stringProblem(s: string): string | null {
  if (s.includes('\0')) return 'contains a NUL character';
  if (!(s as string & { isWellFormed(): boolean }).isWellFormed()) return 'contains an unpaired surrogate (not valid Unicode text)';
  return null;
}

/**
 * Every problem of a parsed body or query that no DTO rule sees: NUL and unpaired surrogates in
 * any string or key, `__proto__`/`constructor`/`prototype` keys, and uppercase UUIDs in `…Id` fields. Fields are named by path
 * (`processes[0].argv[1]`). Iterative: depth is bounded before parsing, but this never recurses.
 */
export function inputProblems(value: unknown, root = ''): string[] {
  const problems: string[] = [];
  const stack: Array<[unknown, string]> = [[value, root]];
  while (stack.length && problems.length < 20) {
    const [v, path] = stack.pop()!;
    if (typeof v === 'string') {
      const p = stringProblem(v);
      if (p) problems.push(`${path || 'body'} ${p}`);
    } else if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) stack.push([v[i], `${path}[${i}]`]);
    } else if (typeof v === 'object' && v !== null && !Buffer.isBuffer(v)) {
      for (const k of Object.keys(v).reverse()) {
        const at = path ? `${path}.${k}` : k;
        if (FORBIDDEN_KEYS.has(k)) { problems.push(`property ${at} should not exist`); continue; }
        const p = stringProblem(k);
        if (p) { problems.push(`${path || 'body'} has a key that ${p}`); continue; }
        const field = (v as Record<string, unknown>)[k];
        if (k.endsWith('Id') && !uuidIsCanonical(field)) { problems.push(`${at} must be a lowercase UUID (ids are canonical lowercase)`); continue; }
        stack.push([field, at]);
      }
    }
  }
  return problems;
}

/**
 * Global guard (after authentication) applying inputProblems to the body and the query, and the
 * canonical id form to path parameters: ids are lowercase UUIDs everywhere (REST, events and
 * Socket.IO subjects), so an uppercase one is a 400 rather than a second spelling of an id.
 * Raises: BadRequestException naming every field.
 */
@Injectable()
export class InputGuard implements CanActivate {
  canActivate(ctx: ExecutionContext): boolean {
    if (ctx.getType() !== 'http') return true;
    const req = ctx.switchToHttp().getRequest<Request>();
    const problems = [...inputProblems(req.body), ...inputProblems(req.query)];
    for (const [name, v] of Object.entries(req.params ?? {})) {
      if (!uuidIsCanonical(v)) problems.push(`${name} must be a lowercase UUID (ids are canonical lowercase), got '${v}'`);
    }
    if (problems.length) throw new BadRequestException(problems);
    return true;
  }
}
