import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../src/config/config.js';
import { startService } from '../src/server.js';
import { answered, sdk } from './support/sdk.js';

test('the embedded database keeps its data, and the generated admin token, across a restart', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hvsim-data-'));
  const config = loadConfig({ PORT: '0', HVSIM_DATA_DIR: dir, HVSIM_LOG_LEVEL: 'silent' });
  const first = await startService(config);
  expect(first.generatedToken).toBe(true);
  expect(readFileSync(join(dir, 'admin-token'), 'utf8').trim()).toBe(first.adminToken);
  const t = await answered(sdk(first.url, first.adminToken).POST('/v1/tenants', { body: { name: 'keep' } }), 201);
  const h = await answered(sdk(first.url, t.token).POST('/v1/hosts', { body: { name: 'h', cpus: 1, memoryMiB: 32 } }), 201);
  await first.close();

  const second = await startService(config);
  try {
    expect(second.generatedToken).toBe(false);
    expect(second.adminToken).toBe(first.adminToken);
    const got = await answered(sdk(second.url, t.token).GET('/v1/hosts/{id}', { params: { path: { id: h.id } } }), 200);
    expect(got.name).toBe('h');
  } finally {
    await second.close();
  }
}, 600_000);

test('a bad configuration value is a clear error', () => {
  expect(() => loadConfig({ PORT: 'eighty' })).toThrow(/PORT must be an integer/);
  expect(() => loadConfig({ HVSIM_DB: 'sqlite' })).toThrow(/HVSIM_DB must be 'disk' or 'memory'/);
  expect(() => loadConfig({ DATABASE_URL: 'mysql://x' })).toThrow(/DATABASE_URL must be a postgres/);
});
