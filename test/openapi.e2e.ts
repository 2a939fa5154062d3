import { readFileSync } from 'node:fs';
import request from 'supertest';
import { ADMIN, BACKENDS, startTestService } from './support/service.js';
import { openApiYaml } from '../src/openapi.js';

test('openapi.yaml is what the code generates (run `npm run openapi` after API changes)', async () => {
  const svc = await startTestService(BACKENDS[0]);
  try {
    const committed = readFileSync(new URL('../openapi.yaml', import.meta.url), 'utf8');
    expect(openApiYaml(svc.app)).toBe(committed);
    expect(committed).toMatch(/\/v1\/vms\/\{id\}\/start:/);
    const ui = await request(svc.url).get('/docs/').expect(200);
    expect(ui.text).toMatch(/swagger/i);
    void ADMIN;
  } finally {
    await svc.close();
  }
}, 60_000);
