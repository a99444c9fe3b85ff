/**
 * INVITE dialogs as the stream path uses them: invite(deviceId, channelId, {mediaIp, mediaPort, transport,
 * ssrc}) → dialog with the device's SDP answer, ACK, bye(dialog), a device's BYE as an event, no answer in
 * time → SourceUnavailableError (504) and nothing kept, a refusal the same. The simulator's onInvite hook
 * (the media side's plug) sees the offer and is started on ACK, stopped on BYE.
 */
import t from 'tap';
import { until } from '../helper.js';
import { buildGbBroker } from './helpers.js';
import { SourceUnavailableError } from '../../src/core/ports.js';
import { buildSsrc, playOffer, parseSdpAnswer, type DialogEndReason, type GbDialog } from '../../src/gb28181/gb-dialogs.js';
import type { InviteOffer } from '../../src/gb28181/device-simulator.js';

t.test('the SSRC and the offer follow GB/T 28181', async (t) => {
  t.equal(buildSsrc('4401000000', 7), '0100000007', '0, digits 4-8 of the realm, a 4-digit index');
  t.throws(() => buildSsrc('4401000000', 10000));
  const udp = playOffer('44010000002000000001', { mediaIp: '10.0.0.5', mediaPort: 30000, transport: 'udp', ssrc: '0100000007' });
  for (const line of ['s=Play', 'c=IN IP4 10.0.0.5', 'm=video 30000 RTP/AVP 96 98 99', 'a=recvonly', 'a=rtpmap:96 PS/90000', 'a=rtpmap:98 H264/90000', 'a=rtpmap:99 H265/90000', 'y=0100000007']) {
    t.ok(udp.split('\r\n').includes(line), line);
  }
  const tcp = playOffer('44010000002000000001', { mediaIp: '10.0.0.5', mediaPort: 30000, transport: 'tcp-passive', ssrc: '0100000007' });
  t.ok(tcp.includes('m=video 30000 TCP/RTP/AVP') && tcp.includes('a=setup:passive') && tcp.includes('a=connection:new'));
  t.match(parseSdpAnswer('v=0\r\nc=IN IP4 1.2.3.4\r\nm=video 5000 TCP/RTP/AVP 96\r\na=setup:active\r\ny=0100000007\r\n'), { ip: '1.2.3.4', port: 5000, proto: 'TCP/RTP/AVP', setup: 'active', ssrc: '0100000007', payloadTypes: [96] });
  t.equal(parseSdpAnswer('garbage'), undefined);
});

for (const transport of ['udp', 'tcp'] as const) {
  t.test(`over ${transport}: invite, ACK starts the media hook, BYE from us stops it; a device BYE is an event`, async (t) => {
    const tb = await buildGbBroker(t);
    const { id, password } = await tb.device({ mediaTransport: transport === 'tcp' ? 'tcp-passive' : 'udp' });
    const offers: InviteOffer[] = [];
    const events: string[] = [];
    const sim = await tb.simulator({
      deviceId: id,
      password,
      transport,
      channels: 2,
      onInvite: async (offer) => {
        offers.push(offer);
        return {
          sdpAnswer: `v=0\r\no=${offer.channelId} 0 0 IN IP4 127.0.0.1\r\ns=Play\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=video 40000 RTP/AVP 96\r\na=sendonly\r\na=rtpmap:96 PS/90000\r\ny=${offer.ssrc}\r\n`,
          start: () => events.push(`start ${offer.channelId}`),
          stop: () => events.push(`stop ${offer.channelId}`),
        };
      },
    });
    const gb = tb.broker.gb!;
    const ended: Array<[GbDialog, DialogEndReason]> = [];
    gb.dialogs.onEnded((dialog, reason) => ended.push([dialog, reason]));
    const channelId = sim.items[0]!.deviceId;
    const ssrc = buildSsrc('4401000000', 1);
    const dialog = await gb.dialogs.invite(id, channelId, { mediaIp: '127.0.0.1', mediaPort: 30000, transport: transport === 'tcp' ? 'tcp-passive' : 'udp', ssrc });
    t.match(dialog.answer, { ip: '127.0.0.1', port: 40000, ssrc });
    t.match(offers[0], { channelId, mediaIp: '127.0.0.1', mediaPort: 30000, ssrc, transport });
    t.match(offers[0]!.sdp, /s=Play/);
    await until(t, 'ACK reached the device and started the media', () => events.includes(`start ${channelId}`));
    await gb.dialogs.bye(dialog);
    await until(t, 'our BYE stopped it', () => events.includes(`stop ${channelId}`));
    t.equal(sim.openCalls, 0);

    const second = sim.items[1]!.deviceId;
    await gb.dialogs.invite(id, second, { mediaIp: '127.0.0.1', mediaPort: 30002, transport: 'udp', ssrc: buildSsrc('4401000000', 2) });
    t.equal(await sim.bye(second), 200, 'the device ends the call');
    await until(t, 'the device BYE is an event', () => ended.some(([d, r]) => d.channelId === second && r === 'device-bye'));
    t.equal(gb.dialogs.open, 0);
  });
}

t.test('no answer in time: SourceUnavailableError, nothing kept; a refusal likewise; an offline device at once', async (t) => {
  const tb = await buildGbBroker(t, { env: { BROKER_SOURCE_TIMEOUT_SECONDS: '2' } });
  const silent = await tb.device();
  const sim = await tb.simulator({ deviceId: silent.id, password: silent.password, channels: 1, inviteBehaviour: 'ignore' });
  const gb = tb.broker.gb!;
  const media = { mediaIp: '127.0.0.1', mediaPort: 30000, transport: 'udp' as const, ssrc: buildSsrc('4401000000', 3) };
  const started = Date.now();
  await t.rejects(gb.dialogs.invite(silent.id, sim.items[0]!.deviceId, media), SourceUnavailableError);
  t.ok(Date.now() - started < 10_000, 'given up at the source timeout');
  t.equal(gb.dialogs.open, 0, 'no dialog kept');
  const refusing = await tb.device();
  const no = await tb.simulator({ deviceId: refusing.id, password: refusing.password, channels: 1, inviteBehaviour: 'refuse' });
  await t.rejects(gb.dialogs.invite(refusing.id, no.items[0]!.deviceId, media), SourceUnavailableError);
  const offline = await tb.device();
  await t.rejects(gb.dialogs.invite(offline.id, '44010600001310000001', media), SourceUnavailableError);
});
