/** Configuration is validated at boot: a bad value stops the process with a message naming it. */
import t from 'tap';
import { ConfigError, envName, loadConfig } from '../src/config.js';
import { runScript } from './helper.js';

t.test('defaults follow API.md', async (t) => {
  const config = loadConfig({});
  t.match(config, { host: '127.0.0.1', port: 8080, store: 'memory', forwardingSlots: 3000, analyticsSlots: 1000, leaseTtlSeconds: 30, idleCloseSeconds: 10, media: 'embedded', sourceTimeoutSeconds: 8 });
  t.equal(envName('forwardingSlots'), 'BROKER_FORWARDING_SLOTS');
  t.equal(config.maxPlayersPerSession, 2, 'BROKER_MAX_PLAYERS_PER_SESSION defaults to 2 (API.md)');
  t.equal(envName('maxPlayersPerSession'), 'BROKER_MAX_PLAYERS_PER_SESSION');
});

t.test('BROKER_* variables override the files', async (t) => {
  const config = loadConfig({ BROKER_FORWARDING_SLOTS: '100', BROKER_STORE: 'redis', BROKER_MEDIA: 'none' });
  t.equal(config.forwardingSlots, 100);
  t.equal(config.store, 'redis');
});

t.test('bad values are refused with the setting named', async (t) => {
  const cases: Array<[Record<string, string>, RegExp]> = [
    [{ BROKER_FORWARDING_SLOTS: 'many' }, /BROKER_FORWARDING_SLOTS must be an integer/],
    [{ BROKER_FORWARDING_SLOTS: '0' }, /forwardingSlots \(BROKER_FORWARDING_SLOTS\)/],
    [{ BROKER_PORT: '70000' }, /port \(BROKER_PORT\)/],
    [{ BROKER_STORE: 'postgres' }, /store \(BROKER_STORE\)/],
    [{ BROKER_MEDIA: 'nodes' }, /BROKER_MEDIA.*BROKER_STORE=redis/],
    [{ BROKER_REDIS_URL: 'http://x' }, /redisUrl \(BROKER_REDIS_URL\)/],
    [{ BROKER_ADMIN_PASSWORD: 'short' }, /adminPassword \(BROKER_ADMIN_PASSWORD\)/],
    [{ BROKER_FORWARDING_SLOT: '10' }, /unknown setting BROKER_FORWARDING_SLOT/],
    [{ BROKER_WS_AUTH_RECHECK_SECONDS: '0' }, /wsAuthRecheckSeconds \(BROKER_WS_AUTH_RECHECK_SECONDS\)/],
    [{ BROKER_WS_AUTH_RECHECK_SECONDS: '60' }, /wsAuthRecheckSeconds \(BROKER_WS_AUTH_RECHECK_SECONDS\)/],
    [{ BROKER_LOGIN_MAX_FAILURE_DELAY_MS: '-1' }, /loginMaxFailureDelayMs \(BROKER_LOGIN_MAX_FAILURE_DELAY_MS\)/],
    [{ BROKER_MAX_PLAYERS_PER_SESSION: '0' }, /maxPlayersPerSession \(BROKER_MAX_PLAYERS_PER_SESSION\)/],
    [{ BROKER_MAX_PLAYERS_PER_SESSION: 'two' }, /BROKER_MAX_PLAYERS_PER_SESSION must be an integer/],
  ];
  for (const [env, message] of cases) {
    t.throws(() => loadConfig(env), ConfigError, Object.keys(env)[0]);
    t.throws(() => loadConfig(env), { message }, `${Object.keys(env)[0]}: message names it`);
  }
});

t.test('the process stops at boot on a bad value, naming it', async (t) => {
  const { code, stderr } = await runScript('src/main.ts', [], { ...process.env, BROKER_LEASE_TTL_SECONDS: '-5', BROKER_DATA_DIR: '/nonexistent' });
  t.equal(code, 78, 'EX_CONFIG');
  t.match(stderr, /leaseTtlSeconds \(BROKER_LEASE_TTL_SECONDS\)/);
});

t.test('a media node takes MEDIA_MAX_PLAYERS_PER_SESSION (default 2) and refuses a bad one by name', async (t) => {
  const { mediaNodeConfigFromEnv, MediaNodeConfigError } = await import('../src/media/media-node-config.js');
  const secrets = { MEDIA_CONTROL_SECRET: 'x'.repeat(32), MEDIA_PLAY_SECRET: 'y'.repeat(32) };
  t.equal(mediaNodeConfigFromEnv(secrets).maxPlayersPerSession, 2);
  t.equal(mediaNodeConfigFromEnv({ ...secrets, MEDIA_MAX_PLAYERS_PER_SESSION: '5' }).maxPlayersPerSession, 5);
  for (const bad of ['0', '-1', '1.5', 'two', '101']) {
    t.throws(() => mediaNodeConfigFromEnv({ ...secrets, MEDIA_MAX_PLAYERS_PER_SESSION: bad }), MediaNodeConfigError, bad);
    t.throws(() => mediaNodeConfigFromEnv({ ...secrets, MEDIA_MAX_PLAYERS_PER_SESSION: bad }), { message: /MEDIA_MAX_PLAYERS_PER_SESSION/ });
  }
});

t.test('a media node takes its transcoder restart limit (3 per 60 s by default) and refuses bad values by name', async (t) => {
  const { mediaNodeConfigFromEnv, MediaNodeConfigError } = await import('../src/media/media-node-config.js');
  const secrets = { MEDIA_CONTROL_SECRET: 'x'.repeat(32), MEDIA_PLAY_SECRET: 'y'.repeat(32) };
  t.match(mediaNodeConfigFromEnv(secrets), { maxTranscodeRestarts: 3, transcodeRestartWindowMs: 60_000 });
  t.match(
    mediaNodeConfigFromEnv({ ...secrets, MEDIA_TRANSCODE_MAX_RESTARTS: '0', MEDIA_TRANSCODE_RESTART_WINDOW_SECONDS: '300' }),
    { maxTranscodeRestarts: 0, transcodeRestartWindowMs: 300_000 },
  );
  for (const [name, bad] of [
    ['MEDIA_TRANSCODE_MAX_RESTARTS', '-1'], ['MEDIA_TRANSCODE_MAX_RESTARTS', '1.5'], ['MEDIA_TRANSCODE_MAX_RESTARTS', 'many'], ['MEDIA_TRANSCODE_MAX_RESTARTS', '101'],
    ['MEDIA_TRANSCODE_RESTART_WINDOW_SECONDS', '0'], ['MEDIA_TRANSCODE_RESTART_WINDOW_SECONDS', '2.5'], ['MEDIA_TRANSCODE_RESTART_WINDOW_SECONDS', '3601'],
  ] as const) {
    t.throws(() => mediaNodeConfigFromEnv({ ...secrets, [name]: bad }), MediaNodeConfigError, `${name}=${bad}`);
    t.throws(() => mediaNodeConfigFromEnv({ ...secrets, [name]: bad }), { message: new RegExp(name) });
  }
});

t.test('a media node takes MEDIA_TICK_MS (default 100; 0 turns batching off) and refuses a bad one by name', async (t) => {
  const { mediaNodeConfigFromEnv, MediaNodeConfigError } = await import('../src/media/media-node-config.js');
  const secrets = { MEDIA_CONTROL_SECRET: 'x'.repeat(32), MEDIA_PLAY_SECRET: 'y'.repeat(32) };
  t.equal(mediaNodeConfigFromEnv(secrets).mediaTickMs, 100);
  t.equal(mediaNodeConfigFromEnv({ ...secrets, MEDIA_TICK_MS: '0' }).mediaTickMs, 0);
  t.equal(mediaNodeConfigFromEnv({ ...secrets, MEDIA_TICK_MS: '40' }).mediaTickMs, 40);
  for (const bad of ['-1', '2.5', '1001', 'fast']) {
    t.throws(() => mediaNodeConfigFromEnv({ ...secrets, MEDIA_TICK_MS: bad }), MediaNodeConfigError, bad);
    t.throws(() => mediaNodeConfigFromEnv({ ...secrets, MEDIA_TICK_MS: bad }), { message: /MEDIA_TICK_MS/ });
  }
});
