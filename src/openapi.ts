/**
 * The OpenAPI document (npm run openapi writes openapi.yaml): the paths, parameters and request
 * schemas Nest generates from the controllers and DTOs, completed from one table
 * (src/api/dto/operations.docs.ts) with summaries, descriptions, success and problem responses
 * with their schemas (src/api/dto/schemas.ts), and request examples.
 */
import type { INestApplication } from '@nestjs/common';
import { DocumentBuilder, OpenAPIObject, SwaggerModule } from '@nestjs/swagger';
import type { OperationObject, ParameterObject, ResponseObject, ResponsesObject } from '@nestjs/swagger';
import { stringify } from 'yaml';
import { assemble } from './isa/assembler.js';
import { ASM_EXAMPLE, Content, OPERATION_DOCS, OperationDoc, SuccessDoc } from './api/dto/operations.docs.js';
import { ref, SCHEMAS } from './api/dto/schemas.js';
import { describeRequestSchemas } from './api/dto/request-schemas.js';
import { CreateImageDto } from './api/images.js';

export const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const;

const MEDIA: Record<Content, string> = { json: 'application/json', octet: 'application/octet-stream', text: 'text/plain' };

const PROBLEM_DEFAULTS: Record<number, string> = {
  400: 'invalid parameters or body (each problem in `errors`)',
  401: 'missing or invalid bearer token',
  403: 'the token is of the wrong kind (the admin token manages tenants; tenant tokens everything else)',
  404: 'no such resource of this tenant',
  429: 'too many failed authentications from this address in the last minute',
};

function successResponse(s: SuccessDoc): ResponseObject {
  const media = (c: Content, schema?: string) => ({
    [MEDIA[c]]: { schema: c === 'json' ? ref(schema!) : { type: 'string' as const, ...(c === 'octet' ? { format: 'binary' } : {}) } },
  });
  if (!s.schema && !s.content) return { description: s.description };
  const content = media(s.content ?? 'json', s.schema);
  for (const a of s.alternatives ?? []) Object.assign(content, media(a.content));
  const more = (s.alternatives ?? []).map((a) => ` (${MEDIA[a.content]}: ${a.description})`).join('');
  return { description: s.description + more, content };
}

const problem = (description: string): ResponseObject => ({ description, content: { 'application/problem+json': { schema: ref('Problem') } } });

/** The problem statuses an operation can return: its own, and those its shape implies. */
function problemStatuses(op: OperationObject, path: string, d: OperationDoc): Map<number, string> {
  const out = new Map<number, string>();
  const params = (op.parameters ?? []) as ParameterObject[];
  const validated = op.requestBody !== undefined || params.some((p) => p.in === 'query' || (p.in === 'path' && p.name !== 'name'));
  if (validated) out.set(400, PROBLEM_DEFAULTS[400]);
  if (op.security?.length) for (const s of [401, 403, 429]) out.set(s, PROBLEM_DEFAULTS[s]);
  if (/\{(id|errorId|name)\}/.test(path)) out.set(404, PROBLEM_DEFAULTS[404]);
  if (d.idempotent) out.set(422, 'the Idempotency-Key was used with a different request');
  for (const [s, text] of Object.entries(d.errors ?? {})) {
    const prior = out.get(Number(s));
    out.set(Number(s), prior && prior !== PROBLEM_DEFAULTS[Number(s)] ? `${text}; or ${prior}` : text!);
  }
  return new Map([...out].sort((a, b) => a[0] - b[0]));
}

/** Applies an operation's entry of OPERATION_DOCS to the generated operation. */
function complete(op: OperationObject, path: string, d: OperationDoc, elfBase64: string): void {
  op.summary = d.summary;
  op.security ??= [];
  if (d.description) op.description = d.description;
  const params = (op.parameters ?? []) as ParameterObject[];
  for (const p of params) {
    // Path ids are UUIDs; `name` (a technique or domain) and `n` (a vCPU index) keep their declared schema.
    if (p.in === 'path' && p.name !== 'name' && p.name !== 'n') p.schema = { type: 'string', format: 'uuid' };
    if (d.params && p.name in d.params) p.example = d.params[p.name];
  }
  if (d.idempotent) {
    params.push({
      in: 'header', name: 'Idempotency-Key', required: false, schema: { type: 'string', minLength: 1, maxLength: 200, pattern: '^[\\x21-\\x7e]+$' },
      description: 'Repeating a request with the same key returns the first response again (same status and body); the same key with a different request is a 422.',
      example: 'create-host-a-2026-01-01',
    });
  }
  op.parameters = params;
  if (d.examples || d.octetBody) {
    const body = op.requestBody as { content?: Record<string, { schema: unknown; examples?: unknown }>; required?: boolean; description?: string } | undefined;
    const json = body?.content?.['application/json'] ?? { schema: ref('CreateImageDto') };
    const examples = Object.fromEntries(Object.entries(d.examples ?? {}).map(([k, e]) => {
      const value = k === 'elf' && d.octetBody ? { ...(e.value as object), content: elfBase64 } : e.value;
      return [k, { summary: e.summary, value }];
    }));
    op.requestBody = {
      required: true,
      content: {
        'application/json': { schema: json.schema as never, ...(d.examples ? { examples } : {}) },
        ...(d.octetBody ? { 'application/octet-stream': { schema: { type: 'string', format: 'binary', description: d.octetBody } } } : {}),
      },
    };
  }
  const responses: ResponsesObject = {};
  for (const s of d.ok) responses[String(s.status)] = successResponse(s);
  for (const [s, text] of problemStatuses(op, path, d)) responses[String(s)] = problem(text);
  op.responses = responses;
}

export function openApiDocument(app: INestApplication): OpenAPIObject {
  const config = new DocumentBuilder()
    .setTitle('hvsim')
    .setDescription('Simulated hypervisor service: tenants, hosts, images, VMs and their lifecycle, live migration, memory errors, techniques, experiments, operations and events. Every error is an RFC 9457 `application/problem+json` body. Live events stream over Socket.IO at `/events` (see docs/api.md).')
    .setVersion('0.1.0')
    .setLicense('MIT', 'https://opensource.org/licenses/MIT')
    .addServer('/', 'this service')
    .addBearerAuth({ type: 'http', scheme: 'bearer', bearerFormat: 'opaque', description: 'A tenant token (from POST /v1/tenants), or the admin token for POST /v1/tenants. Tokens are opaque random strings, not JWTs.' }, 'bearer')
    .build();
  // CreateImageDto is validated by hand (the route accepts two content types), so Nest does not see it.
  const doc = SwaggerModule.createDocument(app, config, { extraModels: [CreateImageDto] });
  describeRequestSchemas(doc);
  doc.components = { ...doc.components, schemas: { ...doc.components?.schemas, ...SCHEMAS } };
  const elfBase64 = Buffer.from(assemble(ASM_EXAMPLE, { fileName: 'hi.s' }).elf).toString('base64');
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const method of HTTP_METHODS) {
      const op = item[method] as OperationObject | undefined;
      const d = op?.operationId ? OPERATION_DOCS[op.operationId] : undefined;
      if (op && d) complete(op, path, d, elfBase64);
    }
  }
  return doc;
}

export const openApiYaml = (app: INestApplication): string => stringify(openApiDocument(app), { sortMapEntries: true, aliasDuplicateObjects: false });
