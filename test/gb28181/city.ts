/**
 * A GB/T 28181 city of real processes for the multi-process GB tests: broker processes on the shared Redis (a key
 * prefix of the test's own) with BROKER_MEDIA=nodes and SIP on free ports, one `npm run media-node` process
 * registered there, an agency operator, and GB devices created through the API and played by the in-process
 * device simulator (a real SIP peer on its own sockets) sending a clip as PS over RTP.
 */
import type { Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { makeTempDir, until } from '../helper.js';
import { api, startBroker, type BrokerProcess } from '../process/helpers.js';
import { startMediaNodeProcess, type MediaNodeProcess } from '../media/helpers.js';
import { answerGbInvite, encodeGbClip, loadGbClip, type GbClip } from '../../src/media/gb-media-sender.js';
import { GbDeviceSimulator } from '../../src/gb28181/device-simulator.js';
import { freeSipPort, newDeviceId, SERVER_ID } from './helpers.js';

export const REDIS_URL = 'redis://127.0.0.1:6379';

export interface CityBroker extends BrokerProcess {
  sipPort: number;
}

export interface GbCity {
  prefix: string;
  controlSecret: string;
  node: MediaNodeProcess;
  brokers: CityBroker[];
  adminToken: string;
  operatorToken: string;
  clip: GbClip;
  /** A device created through broker 0's API, registered by a simulator with `broker`, with one channel of its own. */
  device(
    broker: CityBroker,
    options?: { mediaTransport?: 'udp' | 'tcp-passive'; behaviour?: 'answer' | 'ignore' },
  ): Promise<{ id: string; channelId: string; sim: GbDeviceSimulator; stopMedia(): void }>;
  open(broker: CityBroker, channelId: string): Promise<{ status: number; body: any }>;
  forwardingUsed(): Promise<number>;
}

let serial = Math.floor(Math.random() * 900_000);

export async function startGbCity(t: Test, options: { brokers: number; sourceTimeoutSeconds?: number; rtpSilenceMs?: number }): Promise<GbCity> {
  const prefix = `gbcity${randomBytes(4).toString('hex')}`;
  const playSecret = randomBytes(32).toString('hex');
  const controlSecret = randomBytes(32).toString('hex');
  const adminPassword = randomBytes(12).toString('base64url');
  const dir = await makeTempDir(t);
  const clipFile = join(dir, 'clip.h264');
  const encoded = encodeGbClip(clipFile, 'h264', 2, '320x240');
  const env = {
    BROKER_STORE: 'redis',
    BROKER_REDIS_URL: REDIS_URL,
    BROKER_REDIS_PREFIX: prefix,
    BROKER_MEDIA: 'nodes',
    BROKER_PLAY_SECRET: playSecret,
    BROKER_MEDIA_CONTROL_SECRET: controlSecret,
    BROKER_SOURCE_TIMEOUT_SECONDS: String(options.sourceTimeoutSeconds ?? 5),
    BROKER_IDLE_CLOSE_SECONDS: '0',
    BROKER_ADMIN_PASSWORD: adminPassword,
  };
  const startOne = async (): Promise<CityBroker> => {
    const sipPort = await freeSipPort();
    return { ...(await startBroker(t, { ...env, BROKER_GB_SIP_PORT: String(sipPort) })), sipPort };
  };
  // Brokers, the node and the clip start together: the admin, the secrets and the audit key are created once
  // (ifAbsent) by whichever broker comes first, and found by the others.
  const [node, ...brokers] = await Promise.all([
    startMediaNodeProcess(t, {
      nodeId: `gb-node-${randomBytes(3).toString('hex')}`,
      controlSecret,
      playSecret,
      sourceTimeoutMs: (options.sourceTimeoutSeconds ?? 5) * 1000,
      env: {
        MEDIA_REDIS_URL: REDIS_URL,
        MEDIA_REDIS_PREFIX: `${prefix}:`,
        MEDIA_NETWORKS: 'video',
        MEDIA_MAX_FORWARDS: '10',
        MEDIA_RTP_HOST: '127.0.0.1',
        ...(options.rtpSilenceMs !== undefined && { MEDIA_RTP_SILENCE_MS: String(options.rtpSilenceMs) }),
      },
    }),
    ...Array.from({ length: options.brokers }, startOne),
  ]);
  const a = brokers[0]!;
  const adminToken = (await api(a.url, 'POST', '/auth/login', undefined, { username: 'admin', password: adminPassword })).body.token as string;
  const setup = [
    await api(a.url, 'POST', '/agencies', adminToken, { id: 'gb-ops', name: '视频专网指挥中心', networks: ['video'], classes: [1], quotas: { forwarding: 10, analytics: 1 } }),
    await api(a.url, 'POST', '/agencies/gb-ops/users', adminToken, { username: 'gb.op', password: 'a-long-password', role: 'operator' }),
  ];
  if (setup.some((r) => r.status >= 300)) throw new Error(`setup failed: ${JSON.stringify(setup.map((r) => [r.status, r.body]))}`);
  const operatorToken = (await api(a.url, 'POST', '/auth/login', undefined, { username: 'gb.op', password: 'a-long-password' })).body.token as string;
  await encoded;
  const clip = await loadGbClip(clipFile, 'h264');
  await until(t, 'every broker sees the media node', async () => {
    const all = await Promise.all(brokers.map((b) => api(b.url, 'GET', '/capacity', adminToken)));
    return all.every((r) => r.body.mediaNodes?.length === 1);
  }, 15_000);

  const city: GbCity = {
    prefix,
    controlSecret,
    node,
    brokers,
    adminToken,
    operatorToken,
    clip,
    async device(broker, { mediaTransport = 'udp', behaviour = 'answer' } = {}) {
      const id = newDeviceId();
      const password = randomBytes(9).toString('base64url');
      const created = await api(a.url, 'POST', '/gb/devices', adminToken, { id, name: `设备 ${id.slice(-4)}`, password, mediaTransport });
      if (created.status !== 201) throw new Error(`device ${id}: ${created.status} ${JSON.stringify(created.body)}`);
      // Broker 0 wrote the record; the one the device registers with must have read it before the REGISTER.
      await until(t, 'the device record reaches the broker', async () => (await api(broker.url, 'GET', `/gb/devices/${id}`, adminToken)).status === 200, 10_000);
      const channelId = `44010600001310${String((serial += 1)).padStart(6, '0')}`;
      const sessions: Array<{ stop(): void }> = [];
      const sim = await GbDeviceSimulator.start({
        serverHost: '127.0.0.1',
        serverPort: broker.sipPort,
        serverId: SERVER_ID,
        keepaliveSeconds: 0,
        deviceId: id,
        password,
        channels: [{ deviceId: channelId, name: '天河路口摄像机', status: 'ON', civilCode: '440106', parentId: id }],
        inviteBehaviour: behaviour,
        onInvite: async (offer) => {
          const session = answerGbInvite(clip, offer, '127.0.0.1');
          sessions.push(session);
          return session;
        },
      });
      t.teardown(() => sim.close());
      await until(t, 'the channel lands on every broker', async () => {
        const all = await Promise.all(brokers.map((b) => api(b.url, 'GET', `/channels/${channelId}`, adminToken)));
        return all.every((r) => r.status === 200 && r.body.status === 'online');
      }, 15_000);
      // The camera stops sending without hanging up (a cut cable, a crashed encoder).
      return { id, channelId, sim, stopMedia: () => sessions.forEach((session) => session.stop()) };
    },
    open: (broker, channelId) => api(broker.url, 'POST', '/streams', operatorToken, { channelId, purpose: 'GB/T 28181 city play test' }),
    forwardingUsed: async () => (await api(a.url, 'GET', '/capacity', adminToken)).body.forwarding.used as number,
  };
  return city;
}
