/**
 * The technique catalogue over REST, and the one place that turns catalogue validation errors
 * into problem+json (400 naming the technique/parameter/value, 501 for a technique that is not
 * implemented yet).
 */
import { Controller, Get, Param } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { ProblemError, notFound } from './errors.js';
import { TECHNIQUES, TECHNIQUE_BY_NAME, Technique, TechniqueConfigError, validateTechniques } from '../techniques/catalogue.js';

export const techniqueView = (t: Technique) => ({
  name: t.name, number: t.number, patent: t.patent, title: t.title, description: t.description, changes: t.changes,
  parameters: [{ name: 'enabled', type: 'boolean', default: t.enabledByDefault, description: 'turns the technique on' }, ...t.params],
  counters: t.counters, live: t.live, ...(t.appliesAt ? { appliesAt: t.appliesAt } : {}), support: t.support,
});

/** Validates a techniques object from a request. Raises: ProblemError 400 or 501. */
export function checkTechniques(config: unknown, field = 'techniques'): void {
  try { validateTechniques(config); } catch (e) {
    if (e instanceof TechniqueConfigError) {
      throw new ProblemError(e.status, e.status === 501 ? 'Not Implemented' : 'Bad Request', e.message, { errors: [{ field, message: e.message }] });
    }
    throw e;
  }
}

@ApiTags('techniques')
@ApiBearerAuth()
@Controller('v1/techniques')
export class TechniquesController {
  /** Every technique: patent, what it changes, parameters with defaults and ranges, counters, live changeability, support level. */
  @Get()
  list() { return { items: TECHNIQUES.map(techniqueView) }; }

  @Get(':name')
  get(@Param('name') name: string) {
    const t = TECHNIQUE_BY_NAME.get(name);
    if (!t) throw notFound('technique', name);
    return techniqueView(t);
  }
}
