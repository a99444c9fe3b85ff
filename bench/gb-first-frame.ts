/**
 * Time to first frame of GB/T 28181 channels: from POST /streams on a channel nobody watches (the broker opens an
 * RTP port on its embedded media node, INVITEs the simulated device, the device sends PS over RTP, the first picture
 * is demuxed and published in-process) to the first byte of the HTTP-FLV body, over UDP and over TCP passive.
 * Baseline in the same run, through the same broker: a channel pulled from an RTMP camera of the simulator (the
 * ffmpeg relay path, bench first-frame). Both clips have a keyframe every second; runs are interleaved, each after a
 * random pause so neither always starts at the same point of the keyframe cycle.
 * Goal (issue 11): median ≤ 1.0 s with a 1 s GOP (WVP's default play timeout is 10 s).
 * The simulated device starts sending at a keyframe when it is ACKed, as cameras do (they force an I-frame on
 * INVITE); a device that starts mid-GOP adds up to one GOP, which this bench does not measure.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GbDeviceSimulator } from '../src/gb28181/device-simulator.js';
import { answerGbInvite, encodeGbClip, loadGbClip } from '../src/media/gb-media-sender.js';
import { findFreePort } from '../src/media/net-ports.js';
import { log, result } from './lib.js';
import { firstBodyByte, percentile, sleep, startBrokerServer, startSimulatorProcess } from './media-lib.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 15);
const GOAL_MS = 1000;
const KEYFRAME_INTERVAL_MS = 1000;
const SERVER_ID = '44010000002000000001';


const summary = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return { median: percentile(sorted, 50), p95: percentile(sorted, 95), min: sorted[0]!, max: sorted[sorted.length - 1]! };
};
const rounded = (s: ReturnType<typeof summary>) => Object.fromEntries(Object.entries(s).map(([k, v]) => [k, Math.round(v)]));

export async function gbFirstFrameBench() {
  const workDir = await mkdtemp(join(tmpdir(), 'gb-first-frame-'));
  const camera = await startSimulatorProcess(ROUNDS, await findFreePort());
  const sipPort = await findFreePort();
  const simulators: GbDeviceSimulator[] = [];
  try {
    await encodeGbClip(join(workDir, 'clip.h264'), 'h264', 4);
    const clip = await loadGbClip(join(workDir, 'clip.h264'), 'h264');
    const broker = await startBrokerServer<{ port: number; token: string; adminToken: string; channelIds: string[] }>({
      BROKER_MEDIA: 'embedded',
      BROKER_MEDIA_RTMP_PORT: String(await findFreePort()),
      BROKER_MEDIA_HTTP_PORT: String(await findFreePort()),
      BROKER_MEDIA_CONTROL_PORT: String(await findFreePort()),
      BROKER_GB_SIP_PORT: String(sipPort),
      BROKER_IDLE_CLOSE_SECONDS: '0',
      BROKER_LOG_LEVEL: 'error',
      BENCH_CAMERA_BASE_URL: camera.baseUrl,
      BENCH_CAMERAS: String(ROUNDS),
    });
    try {
      const api = `http://127.0.0.1:${broker.info.port}/api/v1`;
      const as = (token: string) => ({ authorization: `Bearer ${token}`, 'content-type': 'application/json' });
      const channels: Record<'udp' | 'tcp-passive', string[]> = { udp: [], 'tcp-passive': [] };
      for (const [d, transport] of (['udp', 'tcp-passive'] as const).entries()) {
        const id = `44010600001180${String(d + 1).padStart(6, '0')}`;
        const password = `bench-${d}-password`;
        const created = await fetch(`${api}/gb/devices`, { method: 'POST', headers: as(broker.info.adminToken), body: JSON.stringify({ id, name: `bench device ${d}`, password, mediaTransport: transport }) });
        if (created.status !== 201) throw new Error(`POST /gb/devices: ${created.status} ${await created.text()}`);
        const items = Array.from({ length: ROUNDS }, (_, i) => ({
          deviceId: `4401060000131${d + 1}${String(i + 1).padStart(6, '0')}`,
          name: `bench GB camera ${i + 1}`,
          status: 'ON',
          civilCode: '440106',
          parentId: id,
        }));
        channels[transport] = items.map((item) => item.deviceId);
        simulators.push(
          await GbDeviceSimulator.start({
            deviceId: id,
            password,
            serverHost: '127.0.0.1',
            serverPort: sipPort,
            serverId: SERVER_ID,
            channels: items,
            keepaliveSeconds: 60,
            onInvite: async (offer) => answerGbInvite(clip, offer, '127.0.0.1'),
          }),
        );
        for (;;) {
          const device = (await (await fetch(`${api}/gb/devices/${id}`, { headers: as(broker.info.adminToken) })).json()) as { channels?: number };
          if ((device.channels ?? 0) >= ROUNDS) break;
          await sleep(100);
        }
      }
      log(`GB devices online with ${ROUNDS} channels each (UDP, TCP passive); ${ROUNDS} RTMP cameras for the baseline`);
      const headers = as(broker.info.token);
      const play = async (channelId: string) => {
        await sleep(Math.random() * KEYFRAME_INTERVAL_MS);
        const started = performance.now();
        const res = await fetch(`${api}/streams`, { method: 'POST', headers, body: JSON.stringify({ channelId, purpose: 'bench GB first frame' }) });
        const session = (await res.json()) as { id: string; urls: { flv: string } };
        if (res.status !== 201) throw new Error(`POST /streams ${channelId}: ${res.status} ${JSON.stringify(session)}`);
        const ms = await firstBodyByte(session.urls.flv, started);
        await fetch(`${api}/streams/${session.id}`, { method: 'DELETE', headers: { authorization: headers.authorization } });
        return ms;
      };
      const udpMs: number[] = [];
      const tcpMs: number[] = [];
      const baselineMs: number[] = [];
      for (let i = 0; i < ROUNDS; i += 1) {
        baselineMs.push(await play(broker.info.channelIds[i]));
        udpMs.push(await play(channels.udp[i]));
        tcpMs.push(await play(channels['tcp-passive'][i]));
      }
      const udp = summary(udpMs);
      const tcp = summary(tcpMs);
      const baseline = summary(baselineMs);
      log(`GB/T 28181 over UDP: POST /streams → first HTTP-FLV byte ${JSON.stringify(rounded(udp))} ms`);
      log(`GB/T 28181 over TCP passive: ${JSON.stringify(rounded(tcp))} ms`);
      log(`baseline: an RTMP camera through the same broker (ffmpeg relay) ${JSON.stringify(rounded(baseline))} ms`);
      const worst = Math.max(udp.median, tcp.median);
      log(`goal: median ≤ ${GOAL_MS} ms → ${worst <= GOAL_MS ? 'met' : 'NOT met'}`);
      result('gb-first-frame', udp.median, 'ms', baseline.median, {
        tcpMedianMs: Math.round(tcp.median),
        tcpRatio: Math.round((tcp.median / baseline.median) * 100) / 100,
        udpP95: Math.round(udp.p95),
        tcpP95: Math.round(tcp.p95),
        baselineP95: Math.round(baseline.p95),
        rounds: ROUNDS,
        goalMs: GOAL_MS,
      });
    } finally {
      await Promise.all(simulators.map((s) => s.close()));
      await broker.stop();
    }
  } finally {
    await camera.stop();
    await rm(workDir, { recursive: true, force: true });
  }
}
