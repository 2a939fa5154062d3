import { routeOf } from './router.js';

const ID = '3c0e8e9a-1f4b-4f0e-8a59-6f1e2d3c4b5a';

describe('routeOf: which requests the owning node serves', () => {
  test.each([
    ['GET', `/v1/vms/${ID}`, { kind: 'vm', id: ID }],
    ['POST', `/v1/vms/${ID}/start`, { kind: 'vm', id: ID }],
    ['GET', `/v1/vms/${ID}/console`, { kind: 'vm', id: ID }],
    ['POST', `/v1/vms/${ID}/migrations`, { kind: 'vm', id: ID }],
    ['PATCH', `/v1/hosts/${ID}`, { kind: 'host', id: ID }],
    ['POST', `/v1/hosts/${ID}/memory-errors`, { kind: 'host', id: ID }],
    ['POST', `/v1/migrations/${ID}/cancel`, { kind: 'migration', id: ID }],
    ['POST', `/v1/operations/${ID}/cancel`, { kind: 'operation', id: ID }],
  ])('%s %s', (method, path, want) => expect(routeOf(method, path)).toEqual(want));

  test.each([
    ['GET', '/v1/vms'], ['POST', '/v1/vms'], ['POST', '/v1/hosts'], ['GET', `/v1/operations/${ID}`], ['GET', `/v1/migrations/${ID}`],
    ['GET', '/v1/events'], ['GET', '/v1/nodes'], ['POST', `/v1/internal/migrations/${ID}/target`], ['GET', `/v1/vms/${ID}x`],
  ])('served where it lands: %s %s', (method, path) => expect(routeOf(method, path)).toBeNull());
});
