/**
 * Makes the request schemas of the OpenAPI document say what the DTOs' class-validator rules
 * check: integers, ranges, lengths, enums, patterns, UUIDs, array sizes, and no unknown fields
 * (the global ValidationPipe rejects them). Nest's generator sees only @ApiProperty, so without
 * this the document would call every integer a `number` and accept any length.
 */
import { getMetadataStorage } from 'class-validator';
import type { OpenAPIObject } from '@nestjs/swagger';
import type { SchemaObject } from '@nestjs/swagger';

type Rule = (s: SchemaObject, c: unknown[], each: boolean) => void;

/** Applies `f` to the property schema, or to its items when the rule validates each element. */
const on = (f: (s: SchemaObject, c: unknown[]) => void): Rule => (s, c, each) => f(each && s.items ? s.items as SchemaObject : s, c);

const RULES: Record<string, Rule> = {
  isInt: on((s) => { s.type = 'integer'; }),
  isBoolean: on((s) => { s.type = 'boolean'; }),
  isString: on((s) => { s.type = 'string'; }),
  isObject: on((s) => { s.type = 'object'; if (!s.properties) s.additionalProperties = true; }),
  isUuid: on((s) => { s.type = 'string'; s.format = 'uuid'; }),
  min: on((s, c) => { s.minimum = c[0] as number; }),
  max: on((s, c) => { s.maximum = c[0] as number; }),
  isLength: on((s, c) => { s.minLength = c[0] as number; if (c[1] !== undefined) s.maxLength = c[1] as number; }),
  maxLength: on((s, c) => { s.maxLength = c[0] as number; }),
  isIn: on((s, c) => { s.enum = [...(c[0] as unknown[])]; }),
  matches: on((s, c) => { s.pattern = (c[0] as RegExp).source; }),
  arrayMinSize: (s, c) => { s.minItems = c[0] as number; },
  arrayMaxSize: (s, c) => { s.maxItems = c[0] as number; },
};

export function describeRequestSchemas(doc: OpenAPIObject): void {
  const schemas = doc.components?.schemas ?? {};
  const storage = getMetadataStorage() as unknown as { validationMetadatas: Map<Function, Array<{ name?: string; propertyName: string; constraints?: unknown[]; each?: boolean }>> };
  for (const cls of storage.validationMetadatas.keys()) {
    const schema = schemas[cls.name] as SchemaObject | undefined;
    if (!schema?.properties) continue;
    schema.additionalProperties = false;
    for (const m of storage.validationMetadatas.get(cls) ?? []) {
      const prop = schema.properties[m.propertyName] as SchemaObject | undefined;
      const rule = m.name ? RULES[m.name] : undefined;
      if (prop && rule && !('$ref' in prop)) rule(prop, m.constraints ?? [], m.each === true);
    }
  }
}
