/**
 * GB/T 28181 registration and keepalive load on one broker (issue 11, "Done when"): 10,000 devices are created
 * in the broker process (bench/servers/broker.ts, BENCH_GB_DEVICES); the first 1,000 REGISTER at once (digest: a 401 challenge, then the answer) and
 * the time until all of them are online is the first figure; the other 9,000 register in waves of 1,000. Every
 * registration is followed, as with a real device, by the broker's Catalog query and catalog SUBSCRIBE, which
 * the simulated devices answer (an empty catalog). No wave starts after REGISTER_BUDGET_S, so a starved machine
 * still ends the run within ~2 minutes (the JSON says how many registered). Then the devices keepalive at the
 * rate 10,000 devices at 60 s intervals make, spread evenly: 10,000 / 60 ≈ 167 MESSAGEs a second, in
 * registration order, each once its record is KEEPALIVE_WRITE_MS old (so the broker writes it, as in a steady
 * state). The broker's CPU (user + system of its process, from /proc) over that phase is the second figure,
 * per keepalive.
 * Baseline in the same run: a bare UDP server answering 200 OK to the same keepalives from the same simulated
 * devices at the same rate (bench/servers/sip-answerer.ts), its CPU per keepalive. Loopback only; the
 * simulated devices share a few UDP sockets (src/gb28181/simulator-socket.ts), all in this process.
 */
import { GbDeviceSimulator } from '../src/gb28181/device-simulator.js';
import { SimulatorSocket } from '../src/gb28181/simulator-socket.js';
import { findFreePort } from '../src/media/net-ports.js';
import { cpuSeconds, log, result, startServer } from './lib.js';
import { sleep, startBrokerServer } from './media-lib.js';

const DEVICES = Number(process.env.BENCH_GB_DEVICES ?? 10_000);
const FIRST_WAVE = Math.min(DEVICES, Number(process.env.BENCH_GB_FIRST_WAVE ?? 1000));
const KEEPALIVE_INTERVAL_S = 60;
const KEEPALIVE_PHASE_S = Number(process.env.BENCH_GB_KEEPALIVE_SECONDS ?? 25);
const BASELINE_PHASE_S = Number(process.env.BENCH_GB_BASELINE_SECONDS ?? 12);
/** No registration wave starts after this many seconds of the run (the whole run stays within ~2 min). */
const REGISTER_BUDGET_S = Number(process.env.BENCH_GB_REGISTER_BUDGET_SECONDS ?? 55);
/** Devices per shared UDP socket (a lower platform's worth). */
const DEVICES_PER_SOCKET = 200;
/** The broker writes a keepalive to its store when the record is at least this old (gb-server.ts). */
const KEEPALIVE_WRITE_MS = 30_000;
const SERVER_ID = '44010000002000000001';
const PASSWORD = 'bench-gb-devices-pw';

const deviceId = (i: number) => `44010600001180${String(i + 1).padStart(6, '0')}`;
const round = (n: number, digits = 1) => Math.round(n * 10 ** digits) / 10 ** digits;

/**
 * Sends keepalives from `sims` at `perSecond`, evenly (each device in turn, as 60 s timers started at random
 * moments would), for `seconds`; answers the CPU seconds process `pid` spent meanwhile and what was answered.
 */
async function keepalivePhase(sims: readonly GbDeviceSimulator[], perSecond: number, seconds: number, pid: number) {
  const cpuBefore = cpuSeconds(pid);
  const ownBefore = process.cpuUsage();
  const started = performance.now();
  let sent = 0;
  let ok = 0;
  let failed = 0;
  const inFlight = new Set<Promise<void>>();
  while (performance.now() - started < seconds * 1000) {
    const due = Math.floor(((performance.now() - started) / 1000) * perSecond);
    for (; sent < due; sent++) {
      const sim = sims[sent % sims.length]!;
      const p: Promise<void> = sim.keepalive().then(
        (status) => void (status === 200 ? ok++ : failed++),
        () => void failed++,
      ).finally(() => inFlight.delete(p));
      inFlight.add(p);
    }
    await sleep(20);
  }
  const elapsed = (performance.now() - started) / 1000;
  const cpu = cpuSeconds(pid) - cpuBefore;
  const own = process.cpuUsage(ownBefore);
  await Promise.all(inFlight);
  return { sent, ok, failed, elapsed, cpu, loadGeneratorCpu: (own.user + own.system) / 1e6 };
}

export async function gbDevicesBench() {
  const benchStarted = performance.now();
  const sipPort = await findFreePort();
  const ids = Array.from({ length: DEVICES }, (_, i) => deviceId(i));
  const broker = await startBrokerServer<{ port: number; pid: number; adminToken: string; gbCreateMs: number }>({
    BROKER_MEDIA: 'none',
    BENCH_SEED: '0',
    BROKER_GB_SIP_PORT: String(sipPort),
    BROKER_LOG_LEVEL: 'error',
    BENCH_GB_DEVICES: String(DEVICES),
    BENCH_GB_FIRST_ID: ids[0]!,
    BENCH_GB_PASSWORD: PASSWORD,
  });
  const sockets: SimulatorSocket[] = [];
  const sims: GbDeviceSimulator[] = [];
  try {
    const api = `http://127.0.0.1:${broker.info.port}/api/v1`;
    const headers = { authorization: `Bearer ${broker.info.adminToken}` };
    const listed = (await (await fetch(`${api}/gb/devices`, { headers })).json()) as { items: unknown[] };
    if (listed.items.length !== DEVICES) throw new Error(`the broker lists ${listed.items.length} devices, not ${DEVICES}`);
    log(`${DEVICES} devices created in the broker process in ${broker.info.gbCreateMs} ms (GET /gb/devices lists them)`);

    for (let i = 0; i < Math.ceil(DEVICES / DEVICES_PER_SOCKET); i++) sockets.push(await SimulatorSocket.open());
    for (const [i, id] of ids.entries()) {
      sims.push(await GbDeviceSimulator.create({
        deviceId: id,
        password: PASSWORD,
        serverHost: '127.0.0.1',
        serverPort: sipPort,
        serverId: SERVER_ID,
        channels: 0,
        keepaliveSeconds: 0,
        socket: sockets[Math.floor(i / DEVICES_PER_SOCKET)]!,
      }));
    }

    /** When each device's REGISTER was answered 200 (its wave's end: the latest it can be). */
    const registeredAt = new Map<GbDeviceSimulator, number>();
    const registerWave = async (wave: readonly GbDeviceSimulator[]) => {
      const started = performance.now();
      const cpuBefore = cpuSeconds(broker.info.pid);
      // 0: no final answer within the simulator's 10 s (the stack retransmits over UDP meanwhile).
      const doneMs: number[] = [];
      const statuses = await Promise.all(wave.map((sim) => sim.register().catch(() => 0).finally(() => doneMs.push(performance.now() - started))));
      const refused = statuses.filter((s) => s !== 200).length;
      if (refused > 0) log(`${refused} of ${wave.length} REGISTERs were not answered 200: ${[...new Set(statuses)].join(', ')}`);
      doneMs.sort((a, b) => a - b);
      const pct = (p: number) => Math.round(doneMs[Math.min(doneMs.length - 1, Math.floor((p / 100) * doneMs.length))]!);
      const at = performance.now();
      for (const [i, sim] of wave.entries()) if (statuses[i] === 200) registeredAt.set(sim, at);
      return { ms: at - started, p50: pct(50), p90: pct(90), refused, cpu: cpuSeconds(broker.info.pid) - cpuBefore, registered: wave.filter((_, i) => statuses[i] === 200) };
    };
    const first = await registerWave(sims.slice(0, FIRST_WAVE));
    const online = async () => ((await (await fetch(`${api}/gb/devices`, { headers })).json()) as { items: Array<{ online: boolean }> }).items.filter((d) => d.online).length;
    const firstOnline = await online();
    log(`first wave: ${FIRST_WAVE} devices REGISTER at once (digest) → all answered in ${Math.round(first.ms)} ms (half in ${first.p50} ms, 90 % in ${first.p90} ms); ${firstOnline} online per GET /gb/devices; broker CPU ${round(first.cpu, 2)} s (${round((first.cpu / FIRST_WAVE) * 1000, 2)} ms per registration)`);

    const t0 = performance.now();
    let refused = first.refused;
    const registered = [...first.registered];
    let attempted = FIRST_WAVE;
    const registerCpuBefore = cpuSeconds(broker.info.pid);
    // The run must end by itself within about 2 minutes: on a starved machine not every wave fits.
    while (attempted < DEVICES && performance.now() - benchStarted < REGISTER_BUDGET_S * 1000) {
      const wave = await registerWave(sims.slice(attempted, attempted + FIRST_WAVE));
      attempted += FIRST_WAVE;
      refused += wave.refused;
      registered.push(...wave.registered);
    }
    const restMs = performance.now() - t0;
    const restCpu = cpuSeconds(broker.info.pid) - registerCpuBefore;
    const lastRegistration = performance.now();
    const allOnline = await online();
    log(`then ${attempted - FIRST_WAVE} more in waves of ${FIRST_WAVE}: ${Math.round(restMs)} ms, broker CPU ${round(restCpu, 2)} s; ${allOnline} of ${DEVICES} online${attempted < DEVICES ? ` (the registration budget of ${REGISTER_BUDGET_S} s ran out before the other ${DEVICES - attempted})` : ''}`);

    // The broker queries each new device's catalog and subscribes to it: let that finish before measuring.
    const deadline = performance.now() + 5000;
    while (performance.now() < deadline && registered.some((s) => s.seen.catalogQueries === 0 || s.seen.subscribes === 0)) await sleep(200);
    const synced = registered.filter((s) => s.seen.catalogQueries > 0 && s.seen.subscribes > 0).length;
    log(`${synced} of ${DEVICES} devices got their Catalog query and SUBSCRIBE ${Math.round(performance.now() - lastRegistration)} ms after the last registration`);

    // Keepalives go out in registration order; wait until each record is KEEPALIVE_WRITE_MS old when its
    // device's keepalive comes, so the broker writes it as it would in a steady state of 60 s keepalives.
    // The rate is that of all DEVICES: 10,000 / 60 s, even when fewer registered.
    const rate = DEVICES / KEEPALIVE_INTERVAL_S;
    const senders = Math.min(registered.length, Math.ceil(rate * KEEPALIVE_PHASE_S));
    let startAt = performance.now();
    for (let k = 0; k < senders; k++) startAt = Math.max(startAt, registeredAt.get(registered[k]!)! + KEEPALIVE_WRITE_MS - (k / rate) * 1000);
    const idleFrom = performance.now();
    const idleCpuBefore = cpuSeconds(broker.info.pid);
    await sleep(startAt - idleFrom);
    const idleS = (performance.now() - idleFrom) / 1000;
    const idleCpuPct = idleS > 1 ? round(((cpuSeconds(broker.info.pid) - idleCpuBefore) / idleS) * 100) : null;
    if (idleCpuPct !== null) log(`broker idle with ${allOnline} devices online: ${idleCpuPct} % of a core over ${round(idleS)} s`);

    // Only registered devices keepalive (one that is not would be answered 403, a cheaper path).
    const gb = await keepalivePhase(registered, rate, KEEPALIVE_PHASE_S, broker.info.pid);
    const stillOnline = await online();
    const gbUs = (gb.cpu / gb.ok) * 1e6;
    const gbPct = (gb.cpu / gb.elapsed) * 100;
    log(`broker: ${gb.ok} keepalives answered 200 (${gb.failed} not) in ${round(gb.elapsed)} s = ${round(gb.ok / gb.elapsed)}/s; CPU ${round(gbPct)} % of a core, ${round(gbUs, 0)} µs per keepalive; ${stillOnline} online after`);

    const answerer = await startServer<{ port: number; pid: number }>('bench/servers/sip-answerer.ts');
    try {
      const baselineSims: GbDeviceSimulator[] = [];
      // The same devices in the same order, now sending to the bare answerer.
      for (const sim of registered) {
        const i = sims.indexOf(sim);
        const id = ids[i]!;
        baselineSims.push(await GbDeviceSimulator.create({
          deviceId: id,
          password: PASSWORD,
          serverHost: '127.0.0.1',
          serverPort: answerer.info.port,
          serverId: SERVER_ID,
          channels: 0,
          keepaliveSeconds: 0,
          socket: sockets[Math.floor(i / DEVICES_PER_SOCKET)]!,
        }));
      }
      const bare = await keepalivePhase(baselineSims, rate, BASELINE_PHASE_S, answerer.info.pid);
      const bareUs = (bare.cpu / bare.ok) * 1e6;
      const barePct = (bare.cpu / bare.elapsed) * 100;
      log(`baseline, bare UDP 200-answerer: ${bare.ok} keepalives (${bare.failed} not) in ${round(bare.elapsed)} s; CPU ${round(barePct)} % of a core, ${round(bareUs, 0)} µs per keepalive`);
      log(`load generator (this process, all simulated devices): ${round((gb.loadGeneratorCpu / gb.elapsed) * 100)} % of a core during the broker phase`);
      log(`whole run: ${round((performance.now() - benchStarted) / 1000)} s`);
      result('gb-devices', gbUs, 'µs CPU per keepalive', bareUs, {
        brokerCpuPct: round(gbPct),
        baselineCpuPct: round(barePct),
        keepalivesPerSecond: round(gb.ok / gb.elapsed),
        keepalivesFailed: gb.failed,
        firstWaveDevices: FIRST_WAVE,
        firstWaveAllOnlineMs: Math.round(first.ms),
        firstWaveOnline: firstOnline,
        devices: DEVICES,
        allOnline,
        onlineAfterKeepalives: stillOnline,
        devicesRegistered: registered.length,
        restRegisterMs: Math.round(restMs),
        restCpuMsPerRegistration: attempted > FIRST_WAVE ? round((restCpu / (attempted - FIRST_WAVE)) * 1000, 2) : null,
        keepaliveSenders: senders,
        registrationsRefused: refused,
        firstWaveCpuMsPerRegistration: round((first.cpu / FIRST_WAVE) * 1000, 2),
        createMs: broker.info.gbCreateMs,
        idleCpuPct,
      });
    } finally {
      await answerer.stop();
    }
  } finally {
    await Promise.all(sockets.map((s) => s.close()));
    await broker.stop();
  }
}
