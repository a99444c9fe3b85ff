/**
 * The broker as `npm start` runs it (src/main.ts, memory store, embedded media node, a live camera),
 * tried as an attacker would, in one process: the points of issue 8 that together took it down or
 * leaked from it. Each attack is followed by the same proof: the process still answers, the media
 * node still serves the viewer who was watching, and nothing secret reached the process's output.
 * The single-point regression tests beside this file show each fix on its own; this one shows them
 * holding together in the deployed shape.
 */
import t from 'tap';
import { request } from 'node:http';
import { connect } from 'node:net';
import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';
import { api, freePort, privateRedis, startBroker, type BrokerProcess } from '../process/helpers.js';
import { makeChannel } from '../fixtures.js';
import { until } from '../helper.js';
import { startSimulatorProcess } from '../media/helpers.js';
import { playHttpFlv, playWsFlv } from '../e2e/flv-player.js';

/** POST /auth/login from a chosen loopback address (all of 127/8 is this machine's). */
function loginFrom(base: string, localAddress: string, username: string, password: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const body = JSON.stringify({ username, password });
    const req = request(
      `${base}/api/v1/auth/login`,
      { method: 'POST', localAddress, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** Sends raw bytes and resolves with whatever came back before the peer closed (or 3 s passed). */
function raw(port: number, bytes: string | Buffer): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let answer = '';
    const done = () => {
      socket.destroy();
      resolve(answer);
    };
    const timer = setTimeout(done, 3000);
    socket.on('data', (d) => (answer += d.toString('latin1')));
    socket.on('close', () => (clearTimeout(timer), done()));
    socket.on('error', () => undefined);
    socket.end(bytes);
  });
}

t.test('npm start under attack: no crash, no 5xx, no credential in the output, no lockout of admin', async (t) => {
  const camera = await startSimulatorProcess(t, 1);
  const [mediaHttpPort, mediaRtmpPort, mediaControlPort] = [await freePort(), await freePort(), await freePort()];
  const adminPassword = randomBytes(12).toString('base64url');
  const broker: BrokerProcess = await startBroker(t, {
    BROKER_ADMIN_PASSWORD: adminPassword,
    BROKER_MEDIA: 'embedded',
    BROKER_MEDIA_HTTP_PORT: String(mediaHttpPort),
    BROKER_MEDIA_RTMP_PORT: String(mediaRtmpPort),
    BROKER_MEDIA_CONTROL_PORT: String(mediaControlPort),
    BROKER_LOG_LEVEL: 'info', // the level operators run at: everything it logs is checked for secrets
  });
  const base = broker.url;
  await until(t, 'the embedded media node', async () => (await fetch(`${base}/readyz`)).status === 200, 30_000);
  const admin = (await api(base, 'POST', '/auth/login', undefined, { username: 'admin', password: adminPassword })).body.token as string;
  t.equal((await api(base, 'POST', '/agencies', admin, { id: 'weather', name: '气象局', networks: ['video'], classes: [1], quotas: { forwarding: 10, analytics: 1 } })).status, 201);
  const operatorPassword = randomBytes(12).toString('base64url');
  t.equal((await api(base, 'POST', '/agencies/weather/users', admin, { username: 'weather.op', password: operatorPassword, role: 'operator' })).status, 201);
  const operatorLogin = (await api(base, 'POST', '/auth/login', undefined, { username: 'weather.op', password: operatorPassword })).body;
  const operator = operatorLogin.token as string;
  const channel = makeChannel(1, 1, 'video', { sourceUrl: camera.urls[0] });
  t.equal((await api(base, 'POST', '/channels/import', admin, JSON.stringify(channel), 'application/x-ndjson')).body.created, 1);

  // A viewer watching admin's session: it must keep receiving video through every attack below.
  const session = await api(base, 'POST', '/streams', admin, { channelId: channel.id, purpose: 'watch during the attack' });
  t.equal(session.status, 201, 'a stream to watch');
  const viewer = await playHttpFlv(session.body.urls.flv as string);
  await viewer.videoTags(3);
  t.ok(viewer.flv.videoTags >= 3, 'the viewer receives video');
  const stillServing = async (what: string) => {
    t.equal((await fetch(`${base}/healthz`)).status, 200, `${what}: the broker answers`);
    const before = viewer.flv.videoTags;
    await viewer.videoTags(before + 3);
    t.ok(viewer.flv.videoTags >= before + 3 && !viewer.isClosed(), `${what}: the viewer still receives video`);
  };

  await t.test('point 1: an events socket whose user is disabled is closed 4401; the process lives on', async (t) => {
    const socket = new WebSocket(`ws://127.0.0.1:${broker.port}/api/v1/events?token=${operator}`);
    const closed = new Promise<number>((resolve) => socket.on('close', (code) => resolve(code)));
    socket.on('error', () => undefined);
    await new Promise((resolve) => socket.once('open', resolve));
    t.equal((await api(base, 'PATCH', `/users/${operatorLogin.user.id}`, admin, { disabled: true })).status, 200);
    t.equal(await closed, 4401);
    await stillServing('after the lapsed socket');
  });

  await t.test('point 2: stream names NMS cannot handle, without a token, do not kill the media node', async (t) => {
    for (const path of ['/live/a.b.flv', '/live/a%20b.flv', '/live/..%2f..%2fx.flv', '/live/%zz.flv', `/live/${'x'.repeat(5000)}.flv`, '/live/.flv', '/x/y/z.flv']) {
      const player = await playHttpFlv(`http://127.0.0.1:${mediaHttpPort}${path}`);
      await player.closed;
      t.equal(player.flv.videoTags, 0, `${path.slice(0, 40)}: no media`);
      const ws = playWsFlv(`ws://127.0.0.1:${mediaHttpPort}${path}`);
      await ws.closed;
      t.equal(ws.flv.videoTags, 0, `${path.slice(0, 40)} over WebSocket: no media`);
    }
    await raw(mediaHttpPort, 'GET /live/a b.flv HTTP/1.1\r\nHost: x\r\n\r\n');
    await raw(mediaHttpPort, Buffer.from([0x03, ...randomBytes(4000)])); // garbage where HTTP is expected
    await raw(mediaRtmpPort, Buffer.from([0x03, ...randomBytes(3000)])); // a broken RTMP handshake
    await stillServing('after the malformed plays');
  });

  await t.test('point 7: five wrong admin passwords from one address do not lock admin out of another', async (t) => {
    for (let i = 0; i < 6; i++) await loginFrom(base, '127.0.0.2', 'admin', `wrong-password-${i}`);
    t.equal(await loginFrom(base, '127.0.0.2', 'admin', adminPassword), 429, 'the guessing address is throttled');
    t.equal(await loginFrom(base, '127.0.0.3', 'admin', adminPassword), 200, 'admin logs in from elsewhere');
  });

  await t.test('point 13: malformed requests get the error shape, never a 5xx', async (t) => {
    for (const line of ['GET /api/v1/caf\u00e9 HTTP/1.1', 'GET /api/v1/a b HTTP/1.1', 'GET /api/v1/%E0%A4%A HTTP/1.1']) {
      const answer = await raw(broker.port, `${line}\r\nHost: x\r\nConnection: close\r\n\r\n`);
      t.match(answer, /^HTTP\/1\.1 4\d\d/, `${line}: a 4xx`);
      t.match(answer, /"error":\{"code":"[A-Z_]+"/, `${line}: the error shape`);
    }
    const huge = await raw(broker.port, `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(64 * 1024)}\r\n\r\n`);
    t.match(huge, /^HTTP\/1\.1 431/, 'headers too large: 431');
    const plain = await fetch(`${base}/api/v1/events`, { headers: { authorization: `Bearer ${admin}` } });
    t.ok(plain.status === 400 || plain.status === 426, 'a plain GET on the WebSocket path: 400 or 426');
    t.match(await plain.json(), { error: { code: String } });
    await stillServing('after the malformed requests');
  });

  await t.test('point 5: no credential in anything the process wrote', async (t) => {
    // A token in the query string is the case the redaction missed.
    await fetch(`${base}/api/v1/events?token=${admin}`);
    await fetch(`${base}/api/v1/auth/me?token=${admin}`, { headers: { authorization: `Bearer ${admin}` } });
    await api(base, 'POST', '/auth/login', undefined, { username: 'admin', password: `${adminPassword}-wrong` });
    const output = broker.output();
    for (const [what, secret] of [
      ['admin token', admin],
      ['operator token', operator],
      ['admin password', adminPassword],
      ['operator password', operatorPassword],
      ['play token', new URL(session.body.urls.flv as string).searchParams.get('token')!],
    ] as const) {
      t.notOk(output.includes(secret), `no ${what} in the output`);
    }
  });

  viewer.stop();
});

t.test('three brokers on one Redis under attack: a lapsed socket, a lockout attempt and a guessing burst spread over them', async (t) => {
  const redis = await privateRedis(t);
  const adminPassword = randomBytes(12).toString('base64url');
  const env = { BROKER_STORE: 'redis', BROKER_REDIS_URL: redis.url, BROKER_ADMIN_PASSWORD: adminPassword, BROKER_LOG_LEVEL: 'info' };
  const brokers = [await startBroker(t, env), await startBroker(t, env), await startBroker(t, env)];
  const [a, b, c] = brokers as [BrokerProcess, BrokerProcess, BrokerProcess];
  const admin = (await api(a.url, 'POST', '/auth/login', undefined, { username: 'admin', password: adminPassword })).body.token as string;
  t.equal((await api(a.url, 'POST', '/agencies', admin, { id: 'weather', name: '气象局', networks: ['video'], classes: [1], quotas: { forwarding: 10, analytics: 1 } })).status, 201);
  const password = randomBytes(12).toString('base64url');
  const created = await api(b.url, 'POST', '/agencies/weather/users', admin, { username: 'weather.op', password, role: 'operator' });
  const operator = (await api(c.url, 'POST', '/auth/login', undefined, { username: 'weather.op', password })).body.token as string;

  await t.test('point 1: disabled on broker A, its events socket on broker B is closed 4401; B lives on', async (t) => {
    const socket = new WebSocket(`ws://127.0.0.1:${b.port}/api/v1/events?token=${operator}`);
    const closed = new Promise<number>((resolve) => socket.on('close', (code) => resolve(code)));
    socket.on('error', () => undefined);
    await new Promise((resolve) => socket.once('open', resolve));
    t.equal((await api(a.url, 'PATCH', `/users/${created.body.id}`, admin, { disabled: true })).status, 200);
    t.equal(await closed, 4401);
    t.equal((await fetch(`${b.url}/healthz`)).status, 200, 'broker B answers');
  });

  await t.test('points 4 and 7: one budget for the city, no lockout of admin', async (t) => {
    // 40 concurrent wrong guesses for one account from one address, spread over the three brokers.
    const answers = await Promise.all(
      Array.from({ length: 40 }, (_, i) => loginFrom(brokers[i % 3]!.url, '127.0.0.2', 'admin', `wrong-password-${i}`)),
    );
    t.ok(answers.filter((s) => s === 401).length <= 5, 'at most the limit evaluated across three brokers');
    t.equal(answers.filter((s) => s === 429).length + answers.filter((s) => s === 401).length, 40, 'the rest refused with 429');
    t.equal(await loginFrom(c.url, '127.0.0.2', 'admin', adminPassword), 429, 'the guessing address is throttled on every broker');
    t.equal(await loginFrom(b.url, '127.0.0.3', 'admin', adminPassword), 200, 'admin still logs in from another address');
  });

  await t.test('no credential in any broker\'s output', async (t) => {
    for (const broker of brokers) await fetch(`${broker.url}/api/v1/events?token=${admin}`);
    for (const broker of brokers) {
      for (const [what, secret] of [
        ['admin token', admin],
        ['operator token', operator],
        ['admin password', adminPassword],
        ['operator password', password],
      ] as const) {
        t.notOk(broker.output().includes(secret), `broker ${broker.port}: no ${what}`);
      }
    }
  });
});
