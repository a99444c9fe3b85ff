/** GB/T 28181 test helpers: a broker with SIP on a free port, devices created through the API. */
import type { Test } from 'tap';
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';
import { randomBytes } from 'node:crypto';
import { auth, buildTestBroker, type TestBroker } from '../helper.js';
import { GbDeviceSimulator, type GbDeviceSimulatorOptions } from '../../src/gb28181/device-simulator.js';

export const SERVER_ID = '44010000002000000001';

/** A port free for both UDP and TCP on loopback (SIP listens on both). */
export async function freeSipPort(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const udp = createSocket('udp4');
    const port = await new Promise<number>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind(0, '127.0.0.1', () => resolve(udp.address().port));
    });
    const tcpFree = await new Promise<boolean>((resolve) => {
      const tcp = createServer();
      tcp.once('error', () => resolve(false));
      tcp.listen(port, '127.0.0.1', () => tcp.close(() => resolve(true)));
    });
    await new Promise<void>((resolve) => udp.close(() => resolve()));
    if (tcpFree) return port;
  }
  throw new Error('no port free for UDP and TCP');
}

export interface GbTestBroker extends TestBroker {
  sipPort: number;
  /** Creates a device through the API; returns its id and password. */
  device(input?: { id?: string; channelClass?: 1 | 2 | 3; mediaTransport?: 'udp' | 'tcp-passive' }): Promise<{ id: string; password: string }>;
  /** A simulator for a device of this broker (closed at teardown). */
  simulator(options: Partial<GbDeviceSimulatorOptions> & { deviceId: string; password: string }, register?: boolean): Promise<GbDeviceSimulator>;
}

let serial = 0;
/** Device ids: 4401060000 + type 118 (NVR) or 200 (platform) + network 0 + a serial. */
export const newDeviceId = (type = '118') => `4401060000${type}0${String(++serial).padStart(3, '0')}${randomBytes(2).readUInt16BE(0) % 1000}`.slice(0, 20).padEnd(20, '0');

export async function buildGbBroker(t: Test, options: { env?: Record<string, string> } = {}): Promise<GbTestBroker> {
  const sipPort = await freeSipPort();
  const tb = await buildTestBroker(t, { env: { BROKER_GB_SIP_PORT: String(sipPort), ...options.env } });
  const device: GbTestBroker['device'] = async (input = {}) => {
    const id = input.id ?? newDeviceId();
    const password = randomBytes(9).toString('base64url');
    const res = await tb.app.inject({
      method: 'POST',
      url: '/api/v1/gb/devices',
      headers: auth(tb.adminToken),
      payload: { id, name: `设备 ${id.slice(-4)}`, password, ...(input.channelClass && { channelClass: input.channelClass }), ...(input.mediaTransport && { mediaTransport: input.mediaTransport }) },
    });
    if (res.statusCode !== 201) throw new Error(`device ${id}: ${res.statusCode} ${res.body}`);
    return { id, password };
  };
  const simulator: GbTestBroker['simulator'] = async (opts, register = true) => {
    const full: GbDeviceSimulatorOptions = { serverHost: '127.0.0.1', serverPort: sipPort, serverId: SERVER_ID, keepaliveSeconds: 0, ...opts };
    const sim = register ? await GbDeviceSimulator.start(full) : await GbDeviceSimulator.create(full);
    t.teardown(() => sim.close());
    return sim;
  };
  return { ...tb, sipPort, device, simulator };
}
