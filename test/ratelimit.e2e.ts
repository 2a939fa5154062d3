import request from 'supertest';
import { BACKENDS, startTestService } from './support/service.js';

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
}, 60_000);
