/**
 * Demo mode's GB/T 28181 lower platform: a simulated district platform that registers with this broker over
 * SIP (digest), answers its Catalog with a few channels and sends H.264 PS over RTP when INVITEd, so a newcomer
 * sees a GB device online and watches a GB channel from the first minute. Seeded once (the device record and its
 * password, in the demo meta document), started at every boot of a demo data dir.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Principal } from '../core/model.js';
import { answerGbInvite, encodeGbClip, loadGbClip } from '../media/gb-media-sender.js';
import { GbDeviceSimulator } from './device-simulator.js';
import type { GbServer } from './gb-server.js';

/** A platform (type 200) of 天河 (440106): GB/T 28181 digits 11-13 say what the code is. */
export const DEMO_GB_DEVICE_ID = '44010600002000000001';
export const DEMO_GB_CHANNELS = 4;

export interface DemoGbDevice {
  id: string;
  password: string;
}

export async function seedDemoGbDevice(gb: GbServer, admin: Principal): Promise<DemoGbDevice> {
  const password = randomBytes(12).toString('base64url');
  // Class 2: the demo's public-security and political-legal agencies see it on the video network.
  await gb.create(admin, { id: DEMO_GB_DEVICE_ID, name: '天河区视频共享平台(模拟下级平台)', password, channelClass: 2 });
  return { id: DEMO_GB_DEVICE_ID, password };
}

/** Starts the simulated platform against this broker's SIP port; stop() unregisters it. */
export async function startDemoGbDevice(device: DemoGbDevice, sip: { port: number; serverId: string }): Promise<{ stop(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'demo-gb-'));
  let clip;
  try {
    const file = join(dir, 'clip.h264');
    await encodeGbClip(file, 'h264');
    clip = await loadGbClip(file, 'h264');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  const sim = await GbDeviceSimulator.start({
    deviceId: device.id,
    password: device.password,
    serverHost: '127.0.0.1',
    serverPort: sip.port,
    serverId: sip.serverId,
    transport: 'udp',
    channels: DEMO_GB_CHANNELS,
    keepaliveSeconds: 60,
    onInvite: (offer) => Promise.resolve(answerGbInvite(clip, offer, '127.0.0.1')),
  });
  return {
    async stop() {
      await sim.unregister().catch(() => 0);
      await sim.close();
    },
  };
}
