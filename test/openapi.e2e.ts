import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import request from 'supertest';
import { parse } from 'yaml';
import { BACKENDS, startTestService } from './support/service.js';
import { HTTP_METHODS, openApiYaml } from '../src/openapi.js';
import { OPERATION_DOCS } from '../src/api/dto/operations.docs.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const committed = () => readFileSync(new URL('../openapi.yaml', import.meta.url), 'utf8');

test('openapi.yaml is what the code generates (run `npm run openapi` after API changes)', async () => {
  const svc = await startTestService(BACKENDS[0]);
  try {
    expect(openApiYaml(svc.app)).toBe(committed());
    const ui = await request(svc.url).get('/docs/').expect(200);
    expect(ui.text).toMatch(/swagger/i);
  } finally {
    await svc.close();
  }
}, 300_000);

test('every operation has a summary, typed responses, problem details for errors, and examples for its body', () => {
  const doc = parse(committed());
  const seen: string[] = [];
  const problems: string[] = [];
  for (const [path, item] of Object.entries<Record<string, any>>(doc.paths)) {
    for (const method of HTTP_METHODS) {
      const op = item[method];
      if (!op) continue;
      const where = `${method.toUpperCase()} ${path}`;
      seen.push(op.operationId);
      if (!op.summary) problems.push(`${where}: no summary`);
      const statuses = Object.keys(op.responses);
      if (!statuses.some((s) => s.startsWith('2'))) problems.push(`${where}: no success response`);
      for (const [status, r] of Object.entries<any>(op.responses)) {
        if (!r.description) problems.push(`${where} ${status}: no description`);
        if (status === '204') continue;
        const content = r.content as Record<string, { schema?: unknown }> | undefined;
        if (!content || Object.values(content).some((c) => !c.schema)) problems.push(`${where} ${status}: no response schema`);
        if (Number(status) >= 400 && !content?.['application/problem+json']) problems.push(`${where} ${status}: not problem+json`);
      }
      if (op.security?.length && !['401', '403'].every((s) => statuses.includes(s))) problems.push(`${where}: 401/403 undocumented`);
      if (/\{id\}/.test(path) && !statuses.includes('404')) problems.push(`${where}: 404 undocumented`);
      const body = op.requestBody?.content as Record<string, { examples?: object }> | undefined;
      if (body?.['application/json'] && !body['application/json'].examples) problems.push(`${where}: JSON body without examples`);
    }
  }
  expect(problems).toEqual([]);
  expect(seen.sort()).toEqual(Object.keys(OPERATION_DOCS).sort());
  // What the service really answers (the contract test checks every one against the service).
  for (const a of ['start', 'pause', 'resume', 'stop']) expect(Object.keys(doc.paths[`/v1/vms/{id}/${a}`].post.responses)).toContain('202');
  expect(Object.keys(doc.paths['/v1/vms/{id}/reset'].post.responses)).toContain('200');
  expect(Object.keys(doc.paths['/v1/images'].post.requestBody.content).sort()).toEqual(['application/json', 'application/octet-stream']);
  expect(doc.components.securitySchemes.bearer.bearerFormat).not.toMatch(/jwt/i);
});

test('openapi.yaml passes the Redocly linter', async () => {
  // The recommended rules (redocly.yaml); a non-zero exit (errors) rejects the promise.
  const { stdout } = await promisify(execFile)(process.execPath, [`${root}node_modules/@redocly/cli/bin/cli.js`, 'lint', 'openapi.yaml', '--format=json'],
    { cwd: root, env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' } });
  const report = JSON.parse(stdout) as { totals: { errors: number; warnings: number }; problems: unknown[] };
  expect(report.problems).toEqual([]);
  expect(report.totals).toMatchObject({ errors: 0, warnings: 0 });
}, 600_000);
