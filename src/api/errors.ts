/**
 * Domain errors and their one mapping to RFC 9457 problem+json responses.
 */
import { ArgumentsHost, BadRequestException, Catch, ExceptionFilter, HttpException, Logger } from '@nestjs/common';
import type { Response } from 'express';
import { QueryFailedError } from 'typeorm';
import { TransitionError } from '../runtime/vm-state.js';
import { VmActionError } from '../runtime/vm-runner.js';
import type { WorkerErrorKind } from '../runtime/protocol.js';
import { TechniqueConfigError } from '../techniques/catalogue.js';
import { AsmError } from '../isa/assembler.js';
import { ElfError } from '../isa/elf.js';

export interface FieldError { field: string; message: string }

export class ProblemError extends Error {
  constructor(readonly status: number, readonly title: string, readonly detail: string, readonly extra: Record<string, unknown> = {}) {
    super(detail);
  }
}
export const notFound = (what: string, id: string) => new ProblemError(404, 'Not Found', `${what} ${id} does not exist`);
export const conflict = (detail: string, extra: Record<string, unknown> = {}) => new ProblemError(409, 'Conflict', detail, extra);
export const unauthorized = (detail: string) => new ProblemError(401, 'Unauthorized', detail);

const TYPE = 'https://hvsim.dev/problems/';

/** Connection-level database failures (duck-typed: errors may come from another realm). */
export function isDatabaseUnreachable(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown; driverError?: unknown } | null;
  if (!e || typeof e !== 'object') return false;
  if (err instanceof QueryFailedError && err.driverError) return isDatabaseUnreachable(err.driverError);
  const code = e.code;
  if (typeof code === 'string' && ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', '57P01', '08006', '08001'].includes(code)) return true;
  return typeof e.message === 'string' && /ECONNREFUSED|Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error/i.test(e.message);
}
/**
 * A database too busy to finish a statement: statement timeout (57014), deadlock (40P01),
 * serialization failure (40001), lock not available (55P03). Repeating the whole transaction can
 * succeed; the request itself gets 503.
 */
export function isDatabaseBusy(err: unknown): boolean {
  if (err instanceof QueryFailedError && err.driverError) return isDatabaseBusy(err.driverError);
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && ['57014', '40P01', '40001', '55P03'].includes(code);
}

/** How each kind of worker failure reaches a client. */
const WORKER_ERROR: Record<WorkerErrorKind, [number, string]> = {
  'not-allowed': [409, 'Conflict'],
  'gone': [409, 'Conflict'],
  'invalid': [422, 'Unprocessable Content'],
  'failed': [409, 'Conflict'],
  'timeout': [504, 'Gateway Timeout'],
};

/** A domain error (from the runtime, the techniques catalogue, the assembler, the ELF loader) as a problem; null for anything else. */
export function domainProblem(err: unknown): ProblemError | null {
  if (err instanceof ProblemError) return err;
  if (err instanceof TransitionError) return conflict(err.message, { state: err.from });
  if (err instanceof VmActionError) {
    const [status, title] = WORKER_ERROR[err.kind];
    return new ProblemError(status, title, err.message, { state: err.snapshot.state, kind: err.kind });
  }
  if (err instanceof TechniqueConfigError) {
    return new ProblemError(err.status, err.status === 501 ? 'Not Implemented' : 'Bad Request', err.message, { errors: [{ field: 'techniques', message: err.message }] });
  }
  if (err instanceof AsmError) return new ProblemError(422, 'Unprocessable Content', `assembly failed: ${err.problems.length} error(s)`, { errors: err.problems });
  if (err instanceof ElfError) return new ProblemError(422, 'Unprocessable Content', `not a valid static RV32 executable: ${err.message} (at offset ${err.offset})`, { offset: err.offset });
  return null;
}

const slug = (title: string) => title.toLowerCase().replace(/[^a-z0-9]+/g, '-');

/** Maps every error to application/problem+json; unexpected errors become a 500 without internals. */
@Catch()
export class ProblemFilter implements ExceptionFilter {
  private readonly log = new Logger('ProblemFilter');

  catch(err: unknown, host: ArgumentsHost): void {
    const res = host.switchToHttp().getResponse<Response>();
    let status = 500, title = 'Internal Server Error', detail = 'an unexpected error occurred';
    let extra: Record<string, unknown> = {};
    const domain = domainProblem(err);
    if (domain) {
      ({ status, title, detail, extra } = domain);
    } else if (err instanceof BadRequestException) {
      const body = err.getResponse() as { message?: unknown };
      const messages = Array.isArray(body.message) ? body.message.map(String) : [String(body.message ?? err.message)];
      status = 400; title = 'Bad Request'; detail = messages.join('; ');
      extra = { errors: messages.map((m): FieldError => ({ field: /^(?:property )?(\S+)/.exec(m)?.[1] ?? '', message: m })) };
    } else if (err instanceof HttpException) {
      status = err.getStatus(); title = err.message; detail = err.message;
    } else if (isDatabaseUnreachable(err)) {
      status = 503; title = 'Service Unavailable'; detail = 'the database is not reachable';
    } else if (isDatabaseBusy(err)) {
      status = 503; title = 'Service Unavailable'; detail = 'the database is too busy to answer in time; retry later';
    }
    if (status >= 500) this.log.error(err instanceof Error ? err.stack ?? err.message : String(err));
    res.status(status).type('application/problem+json').send(JSON.stringify({ type: TYPE + slug(title), title, status, detail, ...extra }));
  }
}
