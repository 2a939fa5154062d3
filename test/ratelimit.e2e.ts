import request from 'supertest';
import { io } from 'socket.io-client';
import { ADMIN, BACKENDS, startTestService } from './support/service.js';

test('failed authentications are rate-limited per client address and token (429 after 20 in a minute)', async () => {
  const svc = await startTestService(BACKENDS[0]);
  try {
    for (let i = 0; i < 20; i++) await request(svc.url).get('/v1/hosts').set('Authorization', 'Bearer wrong').expect(401);
    const r = await request(svc.url).get('/v1/hosts').set('Authorization', 'Bearer wrong').expect(429);
    expect(r.body).toMatchObject({ status: 429, title: 'Too Many Requests' });
    await request(svc.url).get('/healthz').expect(200); // public endpoints are not affected
  } finally {
    await svc.close();
  }
}, 600_000);

/** One Socket.IO handshake on /events with `token` (real socket.io-client): 'connected', or the refusal's status and message. */
function handshake(url: string, token: string): Promise<{ status: number | 'connected'; message: string }> {
  return new Promise((resolve) => {
    const sock = io(`${url}/events`, { auth: { token }, transports: ['websocket'], reconnection: false, forceNew: true });
    sock.on('connect', () => { sock.disconnect(); resolve({ status: 'connected', message: '' }); });
    sock.on('connect_error', (e: Error & { data?: { status?: number } }) => { sock.disconnect(); resolve({ status: e.data?.status ?? 0, message: e.message }); });
  });
}

test('Socket.IO handshakes with a bad token are limited like HTTP (keyed on the token hash and address); a valid token still connects (issue 23)', async () => {
  const svc = await startTestService(BACKENDS[0]);
  try {
    const token = (await request(svc.url).post('/v1/tenants').set('Authorization', `Bearer ${ADMIN}`).send({ name: 'ws-limit' }).expect(201)).body.token as string;
    for (let i = 0; i < 20; i++) expect(await handshake(svc.url, 'bad-socket-token')).toEqual({ status: 401, message: 'invalid token' });
    const limited = await handshake(svc.url, 'bad-socket-token');
    expect(limited.status).toBe(429);
    expect(limited.message).toMatch(/too many failed authentications/);
    // The same bad token over HTTP shares the spent budget.
    await request(svc.url).get('/v1/hosts').set('Authorization', 'Bearer bad-socket-token').expect(429);
    // Never a valid token, from the same address, over either door.
    expect(await handshake(svc.url, token)).toEqual({ status: 'connected', message: '' });
    await request(svc.url).get('/v1/hosts').set('Authorization', `Bearer ${token}`).expect(200);
    // Another bad token has its own budget.
    expect(await handshake(svc.url, 'another-bad-socket-token')).toEqual({ status: 401, message: 'invalid token' });
    // HTTP failures count toward the handshake's budget too.
    for (let i = 0; i < 20; i++) await request(svc.url).get('/v1/hosts').set('Authorization', 'Bearer bad-http-first').expect(401);
    expect((await handshake(svc.url, 'bad-http-first')).status).toBe(429);
  } finally {
    await svc.close();
  }
}, 600_000);
