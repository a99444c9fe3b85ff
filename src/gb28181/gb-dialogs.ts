/**
 * Live-video dialogs with GB/T 28181 devices: INVITE with the SDP offer of the standard (s=Play, the
 * media node's RTP address, PS/H.264/H.265 payload types, y= SSRC; TCP passive setup lines), the 2xx
 * answer's SDP read back, ACK, BYE both ways. What the stream path calls:
 * `invite(deviceId, channelId, {mediaIp, mediaPort, transport, ssrc}) → dialog`, `bye(dialog)`, and
 * `onEnded` for a device's BYE (or its going offline). An INVITE unanswered within the source timeout
 * rejects with SourceUnavailableError (504) and keeps nothing: a late 2xx is ACKed and BYEd at once.
 * @see ../../../shared/API.md "GB/T 28181 access" (Play)
 * @see GB/T 28181-2016 9.2 实时视音频点播, 附录 F (SDP 扩展 y= f=)
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { SourceUnavailableError } from '../core/ports.js';
import { parseCSeq, parseNameAddr, type SipRequest, type SipResponse } from './sip-message.js';
import { SipTimeoutError, newBranch, newCallId, newTag, type OutgoingRequest, type SipAnswer } from './sip-stack.js';
import type { SipTransportName } from './sip-transport.js';
import type { GbDevice, GbDeviceRegistry, MediaTransport } from './gb-devices.js';
import { DEVICE_REQUEST_TIMEOUT_MS, type GbConfig } from './gb-config.js';

export interface InviteMedia {
  /** Where the media node receives RTP. */
  mediaIp: string;
  mediaPort: number;
  transport: MediaTransport;
  /** 10 digits (see buildSsrc). */
  ssrc: string;
}

export interface SdpAnswer {
  ip: string;
  port: number;
  /** `RTP/AVP` (UDP) or `TCP/RTP/AVP`. */
  proto: string;
  /** The SSRC the device says it sends with (y=), when it says. */
  ssrc?: string;
  /** a=setup when TCP: the device's role (active: it connects to our passive port). */
  setup?: string;
  payloadTypes: number[];
}

export interface GbDialog {
  id: string;
  deviceId: string;
  channelId: string;
  callId: string;
  fromTag: string;
  toTag: string;
  /** Where in-dialog requests go (the 2xx's Contact). */
  remoteTarget: string;
  cseq: number;
  media: InviteMedia;
  answer: SdpAnswer;
}

export type DialogEndReason = 'device-bye' | 'device-offline';

export interface GbDialogsDeps {
  config: GbConfig;
  registry: GbDeviceRegistry;
  send(device: GbDevice, outgoing: OutgoingRequest, timeoutMs: number, branch?: string): Promise<SipResponse>;
  sendAck(device: GbDevice, inviteBranch: string, outgoing: OutgoingRequest): Promise<void>;
  contact(transport: SipTransportName): string;
  log: Logger;
}

/** GB/T 28181-2016 附录 F: SSRC = `0` (live) + digits 4-8 of the realm (domain) + a 4-digit index. */
export function buildSsrc(realm: string, index: number): string {
  if (!Number.isInteger(index) || index < 0 || index > 9999) throw new RangeError('an SSRC index has 4 digits');
  return `0${realm.slice(3, 8)}${String(index).padStart(4, '0')}`;
}

/** The offer: the broker's media node receives (recvonly). */
export function playOffer(serverId: string, media: InviteMedia): string {
  const tcp = media.transport === 'tcp-passive';
  const lines = [
    'v=0',
    `o=${serverId} 0 0 IN IP4 ${media.mediaIp}`,
    's=Play',
    `c=IN IP4 ${media.mediaIp}`,
    't=0 0',
    `m=video ${media.mediaPort} ${tcp ? 'TCP/RTP/AVP' : 'RTP/AVP'} 96 98 99`,
    'a=recvonly',
    'a=rtpmap:96 PS/90000',
    'a=rtpmap:98 H264/90000',
    'a=rtpmap:99 H265/90000',
  ];
  if (tcp) lines.push('a=setup:passive', 'a=connection:new');
  lines.push(`y=${media.ssrc}`, '');
  return lines.join('\r\n');
}

/** Reads the video media of an SDP answer; undefined when it has none we can use. */
export function parseSdpAnswer(sdp: string): SdpAnswer | undefined {
  let ip: string | undefined;
  let port: number | undefined;
  let proto = '';
  let ssrc: string | undefined;
  let setup: string | undefined;
  let payloadTypes: number[] = [];
  for (const raw of sdp.split(/\r?\n/).slice(0, 200)) {
    const line = raw.trim();
    if (line.startsWith('c=')) ip = /IN IP[46] (\S+)/.exec(line)?.[1] ?? ip;
    else if (line.startsWith('m=video ')) {
      const m = /^m=video ([0-9]{1,5}) (\S+)((?: [0-9]{1,3})*)/.exec(line);
      if (m) {
        port = Number(m[1]);
        proto = m[2]!;
        payloadTypes = m[3]!.trim().split(/\s+/).filter(Boolean).map(Number);
      }
    } else if (line.startsWith('y=')) ssrc = /^y=([0-9]{1,10})$/.exec(line)?.[1];
    else if (line.startsWith('a=setup:')) setup = line.slice(8);
  }
  if (ip === undefined || port === undefined || port > 65535) return undefined;
  return { ip, port, proto, ssrc, setup, payloadTypes };
}

export class GbDialogs {
  private readonly dialogs = new Map<string, GbDialog>();
  /** INVITEs given up on (timeout): a late 2xx for one of these is ACKed and ended at once. */
  private readonly abandoned = new Map<string, { device: GbDevice; uri: string; fromTag: string; cseq: number; branch: string }>();
  private readonly endedListeners: Array<(dialog: GbDialog, reason: DialogEndReason) => void> = [];

  constructor(private readonly deps: GbDialogsDeps) {}

  onEnded(listener: (dialog: GbDialog, reason: DialogEndReason) => void): void {
    this.endedListeners.push(listener);
  }

  get open(): number {
    return this.dialogs.size;
  }

  /**
   * INVITEs the device for one of its channels and resolves with the dialog once the device answered
   * 2xx (ACKed). Rejects with SourceUnavailableError when it does not answer within the source timeout
   * or refuses, and with an Error when the device is not registered here.
   */
  async invite(deviceId: string, channelId: string, media: InviteMedia): Promise<GbDialog> {
    const device = this.deps.registry.get(deviceId);
    if (!device?.online || device.disabled) throw new SourceUnavailableError(`GB/T 28181 device ${deviceId} is offline`);
    const callId = newCallId();
    const fromTag = newTag();
    const branch = newBranch();
    const uri = `sip:${channelId}@${device.address ?? 'invalid'}`;
    const outgoing: OutgoingRequest = {
      method: 'INVITE',
      uri,
      headers: [
        ['From', `<sip:${this.deps.config.serverId}@${this.deps.config.realm}>;tag=${fromTag}`],
        ['To', `<sip:${channelId}@${this.deps.config.realm}>`],
        ['Call-ID', callId],
        ['CSeq', '1 INVITE'],
        ['Contact', this.deps.contact(device.peer?.transport ?? 'udp')],
        // GB/T 28181-2016 附录 I: Subject = media sender id:SSRC, receiver id:0.
        ['Subject', `${channelId}:${media.ssrc},${this.deps.config.serverId}:0`],
      ],
      body: Buffer.from(playOffer(this.deps.config.serverId, media)),
      contentType: 'APPLICATION/SDP',
    };
    let response: SipResponse;
    try {
      response = await this.deps.send(device, outgoing, this.deps.config.inviteTimeoutMs, branch);
    } catch (err) {
      if (err instanceof SipTimeoutError) {
        this.abandoned.set(callId, { device, uri, fromTag, cseq: 1, branch });
        setTimeout(() => this.abandoned.delete(callId), 64_000).unref();
        throw new SourceUnavailableError(`GB/T 28181 device ${deviceId} did not answer the INVITE in time`);
      }
      throw new SourceUnavailableError(`INVITE to GB/T 28181 device ${deviceId} failed: ${(err as Error).message}`);
    }
    if (response.status >= 300) throw new SourceUnavailableError(`GB/T 28181 device ${deviceId} refused the INVITE (${response.status})`);
    const toTag = parseNameAddr(response.headers.get('to'))?.params.get('tag') ?? '';
    const remoteTarget = parseNameAddr(response.headers.get('contact'))?.uri ?? uri;
    const dialog: GbDialog = { id: randomUUID(), deviceId, channelId, callId, fromTag, toTag, remoteTarget, cseq: 1, media, answer: parseSdpAnswer(response.body.toString('utf8')) ?? { ip: '', port: 0, proto: '', payloadTypes: [] } };
    await this.deps.sendAck(device, branch, this.inDialog(dialog, 'ACK', 1));
    if (!dialog.answer.port) {
      await this.bye(dialog);
      throw new SourceUnavailableError(`GB/T 28181 device ${deviceId} answered the INVITE without a usable SDP`);
    }
    this.dialogs.set(callId, dialog);
    return dialog;
  }

  /** Ends a dialog from our side (idle close, end of the forward). Never throws: the device may be gone. */
  async bye(dialog: GbDialog): Promise<void> {
    this.dialogs.delete(dialog.callId);
    const device = this.deps.registry.get(dialog.deviceId);
    if (!device?.online) return;
    dialog.cseq++;
    try {
      await this.deps.send(device, this.inDialog(dialog, 'BYE', dialog.cseq), DEVICE_REQUEST_TIMEOUT_MS);
    } catch (err) {
      this.deps.log.debug({ err, deviceId: dialog.deviceId }, 'gb28181: BYE unanswered');
    }
  }

  /** BYE and ACK from devices. */
  incoming(request: SipRequest): SipAnswer | undefined {
    const callId = request.headers.get('call-id') ?? '';
    if (request.method === 'ACK') return undefined;
    const dialog = this.dialogs.get(callId);
    if (!dialog) return { status: 481 };
    this.dialogs.delete(callId);
    this.tellEnded(dialog, 'device-bye');
    return { status: 200 };
  }

  /** A late 2xx to an INVITE given up on: ACK it and end it, so the device keeps no stream for nobody. */
  async stray2xx(response: SipResponse): Promise<void> {
    const callId = response.headers.get('call-id') ?? '';
    const late = this.abandoned.get(callId);
    if (!late || parseCSeq(response.headers.get('cseq'))?.method !== 'INVITE') return;
    this.abandoned.delete(callId);
    const toTag = parseNameAddr(response.headers.get('to'))?.params.get('tag') ?? '';
    const channelId = parseNameAddr(response.headers.get('to'))?.parsed?.user ?? '';
    const remoteTarget = parseNameAddr(response.headers.get('contact'))?.uri ?? late.uri;
    const dialog: GbDialog = { id: randomUUID(), deviceId: late.device.id, channelId, callId, fromTag: late.fromTag, toTag, remoteTarget, cseq: 1, media: { mediaIp: '', mediaPort: 0, transport: 'udp', ssrc: '' }, answer: { ip: '', port: 0, proto: '', payloadTypes: [] } };
    await this.deps.sendAck(late.device, late.branch, this.inDialog(dialog, 'ACK', 1)).catch(() => undefined);
    await this.bye(dialog);
  }

  /** The device went offline: its dialogs are over. */
  async deviceGone(deviceId: string): Promise<void> {
    for (const dialog of [...this.dialogs.values()]) {
      if (dialog.deviceId !== deviceId) continue;
      this.dialogs.delete(dialog.callId);
      this.tellEnded(dialog, 'device-offline');
    }
  }

  async close(): Promise<void> {
    await Promise.all([...this.dialogs.values()].map((d) => this.bye(d)));
  }

  private tellEnded(dialog: GbDialog, reason: DialogEndReason): void {
    for (const listener of this.endedListeners) {
      try {
        listener(dialog, reason);
      } catch (err) {
        this.deps.log.error({ err }, 'gb28181: dialog end listener failed');
      }
    }
  }

  private inDialog(dialog: GbDialog, method: 'ACK' | 'BYE', cseq: number): OutgoingRequest {
    return {
      method,
      uri: dialog.remoteTarget,
      headers: [
        ['From', `<sip:${this.deps.config.serverId}@${this.deps.config.realm}>;tag=${dialog.fromTag}`],
        ['To', `<sip:${dialog.channelId}@${this.deps.config.realm}>${dialog.toTag ? `;tag=${dialog.toTag}` : ''}`],
        ['Call-ID', dialog.callId],
        ['CSeq', `${cseq} ${method}`],
      ],
    };
  }
}
