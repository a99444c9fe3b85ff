/**
 * `npm run simulate -- --gb28181 [--server 127.0.0.1:5060] [--server-id 44010000002000000001]
 *   [--device-id 44010600002000000001] [--devices 1] [--channels 8] [--items-per-message 20]
 *   [--transport udp|tcp] [--keepalive 60] [--codec h264|h265]`: GB/T 28181 devices or lower platforms that
 * register with the broker, answer its Catalog queries and answer an INVITE by sending MPEG-PS over RTP (UDP,
 * or TCP active) from a test-pattern clip of that codec, until SIGINT/SIGTERM. The password comes from the
 * environment (GB_DEVICE_PASSWORD), never the command line. With --devices N the ids count up from
 * --device-id, all with that password (over UDP they share a socket per 200 devices). Prints one line per
 * registered device.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { answerGbInvite, encodeGbClip, loadGbClip, type GbClip } from '../media/gb-media-sender.js';
import { GbDeviceSimulator } from './device-simulator.js';
import { SimulatorSocket } from './simulator-socket.js';

/** Over UDP, this many simulated devices share one socket (thousands fit in one process). */
const DEVICES_PER_SOCKET = 200;

/** The clip every simulated channel plays: encoded once at start (4 s, 1 s GOP), kept in memory. */
async function makeClip(codec: 'h264' | 'h265'): Promise<GbClip> {
  const dir = await mkdtemp(join(tmpdir(), 'gb-sim-'));
  try {
    const file = join(dir, `clip.${codec}`);
    await encodeGbClip(file, codec);
    return await loadGbClip(file, codec);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function int(value: string | undefined, name: string, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} must be an integer ${min}..${max}`);
  return n;
}

export async function runGbSimulatorCli(args: string[]): Promise<void> {
  let sims: GbDeviceSimulator[] = [];
  const sockets: SimulatorSocket[] = [];
  const closeAll = async () => {
    await Promise.all(sims.map((s) => s.close()));
    await Promise.all(sockets.map((s) => s.close()));
  };
  try {
    const { values } = parseArgs({
      args,
      options: {
        server: { type: 'string' },
        'server-id': { type: 'string' },
        'device-id': { type: 'string' },
        devices: { type: 'string' },
        channels: { type: 'string' },
        'items-per-message': { type: 'string' },
        transport: { type: 'string' },
        keepalive: { type: 'string' },
        codec: { type: 'string' },
      },
    });
    const [host, portText] = (values.server ?? '127.0.0.1:5060').split(/:(?=[0-9]+$)/);
    const serverPort = int(portText, 'server port', 5060, 1, 65535);
    const serverId = values['server-id'] ?? '44010000002000000001';
    const firstId = values['device-id'] ?? '44010600002000000001';
    if (!/^[0-9]{20}$/.test(serverId) || !/^[0-9]{20}$/.test(firstId)) throw new Error('--server-id and --device-id are 20-digit GB/T 28181 codes');
    const transport = values.transport ?? 'udp';
    if (transport !== 'udp' && transport !== 'tcp') throw new Error('--transport is udp or tcp');
    const password = process.env.GB_DEVICE_PASSWORD;
    if (!password) throw new Error('set GB_DEVICE_PASSWORD to the password the device was created with (POST /api/v1/gb/devices)');
    const devices = int(values.devices, 'devices', 1, 1, 100_000);
    const channels = int(values.channels, 'channels', 8, 0, 100_000);
    const itemsPerMessage = int(values['items-per-message'], 'items-per-message', 20, 1, 200);
    const keepaliveSeconds = int(values.keepalive, 'keepalive', 60, 0, 3600);
    const codec = values.codec ?? 'h264';
    if (codec !== 'h264' && codec !== 'h265') throw new Error('--codec is h264 or h265');
    const clip = await makeClip(codec);
    // The address the device's RTP comes from: the one it reaches the broker by (loopback in a demo).
    const localHost = host === 'localhost' ? '127.0.0.1' : host!;
    const prefix = firstId.slice(0, 14);
    const start = Number(firstId.slice(14));
    const ids = Array.from({ length: devices }, (_, i) => `${prefix}${String((start + i) % 1_000_000).padStart(6, '0')}`);
    if (transport === 'udp' && devices > 1) {
      for (let i = 0; i < Math.ceil(devices / DEVICES_PER_SOCKET); i++) sockets.push(await SimulatorSocket.open(localHost));
    }
    sims = await Promise.all(
      ids.map((deviceId, i) =>
        GbDeviceSimulator.start({
          socket: sockets[Math.floor(i / DEVICES_PER_SOCKET)],
          deviceId,
          password,
          serverHost: host!,
          serverPort,
          serverId,
          transport,
          channels,
          itemsPerMessage,
          keepaliveSeconds,
          onInvite: (offer) => Promise.resolve(answerGbInvite(clip, offer, localHost)),
        }),
      ),
    );
    for (const sim of sims) process.stdout.write(`${sim.deviceId} registered over ${transport} with ${sim.items.length} channels\n`);
  } catch (error) {
    process.stderr.write(`GB/T 28181 simulator failed: ${(error as Error).message}\n`);
    await closeAll();
    process.exit(1);
  }
  let stopping = false;
  const shutdown = () => {
    if (stopping) return;
    stopping = true;
    Promise.all(sims.map((s) => s.unregister().catch(() => 0))).then(closeAll).then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGINT', shutdown);
  process.on('SIGTERM', shutdown);
}
