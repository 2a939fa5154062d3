import { BadRequestException } from '@nestjs/common';
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
