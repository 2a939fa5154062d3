import { ConfigError, loadConfig } from './config.js';

const PG = { DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/x', HVSIM_ADMIN_TOKEN: 'a-token-of-16-chars-or-more' };

describe('cluster configuration', () => {
  test('off by default: one node', () => {
    expect(loadConfig({}).cluster).toBeNull();
    expect(loadConfig({ HVSIM_CLUSTER: 'off' }).cluster).toBeNull();
  });

  test('on: the node id, advertise address, capacity and timings, with defaults', () => {
    const c = loadConfig({ ...PG, HVSIM_CLUSTER: 'on', HVSIM_NODE_ID: 'n1', HOST: '10.0.0.5', HVSIM_NODE_CAPACITY_MIB: '4096' }).cluster!;
    expect(c).toEqual({ nodeId: 'n1', advertiseAddress: '10.0.0.5', capacityMiB: 4096, heartbeatMs: 3000, timeoutMs: 10000 });
    const d = loadConfig({ ...PG, HVSIM_CLUSTER: 'on', HOST: '0.0.0.0', HVSIM_ADVERTISE_ADDRESS: 'node-1.hvsim' }).cluster!;
    expect(d.advertiseAddress).toBe('node-1.hvsim');
    expect(d.nodeId).toMatch(/^.+-\d+$/); // hostname-pid
  });

  test.each([
    [{ HVSIM_CLUSTER: 'on', HVSIM_ADMIN_TOKEN: PG.HVSIM_ADMIN_TOKEN }, /needs DATABASE_URL/],
    [{ HVSIM_CLUSTER: 'on', DATABASE_URL: PG.DATABASE_URL }, /needs HVSIM_ADMIN_TOKEN/],
    [{ ...PG, HVSIM_CLUSTER: 'yes' }, /HVSIM_CLUSTER must be 'on' or 'off'/],
    [{ ...PG, HVSIM_CLUSTER: 'on', HOST: '0.0.0.0' }, /HVSIM_ADVERTISE_ADDRESS must be/],
    [{ ...PG, HVSIM_CLUSTER: 'on', HVSIM_NODE_ID: 'a b' }, /HVSIM_NODE_ID must be/],
    [{ ...PG, HVSIM_CLUSTER: 'on', HVSIM_NODE_ID: 'n'.repeat(53) }, /HVSIM_NODE_ID must be 1-52/],
    [{ ...PG, HVSIM_CLUSTER: 'on', HVSIM_HEARTBEAT_MS: '5000', HVSIM_NODE_TIMEOUT_MS: '6000' }, /at least twice/],
    [{ ...PG, HVSIM_CLUSTER: 'on', HVSIM_NODE_CAPACITY_MIB: '-1' }, /HVSIM_NODE_CAPACITY_MIB must be an integer/],
  ])('refused: %j', (env, message) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(message);
  });
});
