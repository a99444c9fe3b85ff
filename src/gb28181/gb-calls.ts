/**
 * Where a GB/T 28181 call is placed from. Only the broker a device registered with may send it requests (its SIP
 * peer, digest and transport are that broker's): a forward started here INVITEs through our own dialogs when the
 * device is ours, and otherwise asks the broker that holds the registration over the broker link (Redis pub/sub),
 * which INVITEs the device to the RTP port we opened and holds the dialog for us. The end of the forward, wherever
 * it is noticed (the stop can run on any broker: idle close is a sweep), becomes a BYE request to the holder;
 * the device's BYE or its going offline comes back as `ended`. A broker that dies is noticed through its liveness
 * key: calls it held for us end (source-failed), calls we held for it are hung up.
 * Requests from the link are checked like input from outside: signed and well-formed (gb-bus-messages.ts), the
 * device registered here, the channel that device's, the RTP address one of the media plane's.
 * @see ../../../shared/DESIGN.md "GB/T 28181 and the in-process media plane"
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { SourceUnavailableError } from '../core/ports.js';
import { decodeBusMessage, encodeBusMessage, MAX_BUS_MESSAGE_AGE_MS, type ByeRequest, type GbBusDraft, type GbBusMessage, type InviteRefusal, type InviteRequest } from './gb-bus-messages.js';
import type { GbDialog, GbDialogs, InviteMedia } from './gb-dialogs.js';
import type { GbDeviceRegistry } from './gb-devices.js';

/** Messages to and from the other brokers of the city (store/redis/broker-link.ts). */
export interface BrokerLink {
  /** This broker's address on the link (its GbServer instance id, what device records name as `brokerId`). */
  readonly selfId: string;
  send(to: string, message: string): Promise<void>;
  onMessage(listener: (message: string) => void): void;
  /** Whether each broker's liveness key is present; rejects when the store cannot tell. */
  alive(ids: string[]): Promise<boolean[]>;
  close(): Promise<void>;
}

/** A call another broker holds for a forward of ours. */
export class RemoteGbCall {
  constructor(
    readonly channelId: string,
    readonly fence: number,
    readonly brokerId: string,
    readonly callRef: string,
  ) {}
}

export type GbCall = GbDialog | RemoteGbCall;

export interface GbCallsDeps {
  selfId: string;
  dialogs: GbDialogs;
  registry: GbDeviceRegistry;
  /** The catalog's view of a channel (replicated to every broker). */
  channelOf(channelId: string): { source?: string; deviceId?: string } | undefined;
  /** Absent without Redis: one broker, every device is ours. */
  link?: BrokerLink;
  /** busKey() of the city's control secret. */
  busKey: Buffer;
  /** Where the media plane's RTP ports listen: the only addresses another broker may have us INVITE to. */
  rtpHosts(): string[];
  /** How long an INVITE asked of another broker may take (BROKER_SOURCE_TIMEOUT_SECONDS). */
  requestTimeoutMs: number;
  log: Logger;
}

const LIVENESS_CHECK_MS = 1000;
/** Consecutive checks a peer's liveness key must be missing at before its calls are ended. */
const PEER_MISSING_CHECKS = 2;
/** Dropped link messages are logged at most this often (a flood of garbage must not flood the log). */
const DROP_LOG_MS = 10_000;

interface HeldCall {
  dialog: GbDialog;
  fence: number;
  /** The broker whose forward it serves; null: our own. */
  requester: string | null;
}

interface PendingInvite {
  to: string;
  resolve(callRef: string): void;
  reject(error: Error): void;
}

export class GbCalls {
  /** Dialogs this broker holds, by dialog id (the `callRef` other brokers know them by). */
  private readonly held = new Map<string, HeldCall>();
  /** Calls other brokers hold for our forwards, by callRef. */
  private readonly remote = new Map<string, RemoteGbCall>();
  private readonly pending = new Map<string, PendingInvite>();
  /** Message ids seen lately (a replayed message is dropped), with when they may be forgotten. */
  private readonly seen = new Map<string, number>();
  /** Peers whose liveness key was missing at the last checks, and how many checks in a row. */
  private readonly missing = new Map<string, number>();
  private readonly endedListeners: Array<(call: GbCall) => void> = [];
  private readonly timer: NodeJS.Timeout | undefined;
  private checking = false;
  private dropped = { count: 0, loggedAt: 0 };

  constructor(private readonly deps: GbCallsDeps) {
    deps.dialogs.onEnded((dialog) => this.dialogEnded(dialog));
    if (deps.link) {
      deps.link.onMessage((raw) => this.receive(raw));
      this.timer = setInterval(() => void this.checkPeers(), LIVENESS_CHECK_MS);
      this.timer.unref();
    }
  }

  onEnded(listener: (call: GbCall) => void): void {
    this.endedListeners.push(listener);
  }

  /** INVITEs the device's channel to the RTP port in `media`, through whichever broker holds its registration. */
  async invite(deviceId: string, channelId: string, fence: number, media: InviteMedia): Promise<GbCall> {
    const device = this.deps.registry.get(deviceId);
    if (!device?.online || device.disabled || !device.brokerId) throw new SourceUnavailableError(`GB/T 28181 device ${deviceId} is offline`);
    if (device.brokerId === this.deps.selfId) {
      const dialog = await this.deps.dialogs.invite(deviceId, channelId, media);
      this.held.set(dialog.id, { dialog, fence, requester: null });
      return dialog;
    }
    const { link } = this.deps;
    if (!link) throw new SourceUnavailableError(`GB/T 28181 device ${deviceId} is registered with another broker`);
    const holder = device.brokerId;
    const id = randomUUID();
    const callRef = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new SourceUnavailableError(`the broker holding GB/T 28181 device ${deviceId} did not answer in time`));
      }, this.deps.requestTimeoutMs);
      const settle = <T>(fn: (value: T) => void) => (value: T) => {
        clearTimeout(timer);
        this.pending.delete(id);
        fn(value);
      };
      this.pending.set(id, { to: holder, resolve: settle(resolve), reject: settle(reject) });
      this.send(holder, { kind: 'invite', deviceId, channelId, fence, ...media }, id).catch((error: unknown) =>
        this.pending.get(id)?.reject(new SourceUnavailableError(`cannot reach the broker holding GB/T 28181 device ${deviceId}: ${(error as Error).message}`)),
      );
    });
    const call = new RemoteGbCall(channelId, fence, holder, callRef);
    this.remote.set(callRef, call);
    return call;
  }

  /** Hangs up a call this broker placed. Never throws. */
  async bye(call: GbCall): Promise<void> {
    if (call instanceof RemoteGbCall) {
      this.remote.delete(call.callRef);
      await this.send(call.brokerId, { kind: 'bye', channelId: call.channelId, fence: call.fence, callRef: call.callRef }).catch((error: unknown) =>
        this.deps.log.warn({ err: error, channelId: call.channelId }, 'gb28181: BYE request to the holding broker failed'),
      );
      return;
    }
    this.held.delete(call.id);
    await this.deps.dialogs.bye(call);
  }

  /**
   * The forward `channelId#fence` ended on a broker that did not place its call (a sweep's idle close, a media
   * failure another broker noticed): the call of that forward, wherever it is held, is hung up. Never throws.
   */
  async byeForward(channelId: string, fence: number): Promise<void> {
    const channel = this.deps.channelOf(channelId);
    if (channel?.source !== 'gb28181' || !channel.deviceId) return;
    const holder = this.deps.registry.get(channel.deviceId)?.brokerId;
    if (!holder) return;
    if (holder === this.deps.selfId) return this.hangUpHeld({ channelId, fence }, null);
    if (!this.deps.link) return;
    await this.send(holder, { kind: 'bye', channelId, fence }).catch((error: unknown) =>
      this.deps.log.warn({ err: error, channelId }, 'gb28181: BYE request to the holding broker failed'),
    );
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    for (const pending of this.pending.values()) pending.reject(new SourceUnavailableError('the broker is stopping'));
    await Promise.all([...this.remote.values()].map((call) => this.bye(call)));
  }

  // -------------------------------------------------------------------------------------------

  private async send(to: string, draft: GbBusDraft, id: string = randomUUID()): Promise<void> {
    const message = { v: 1, id, from: this.deps.selfId, at: Date.now(), ...draft } as GbBusMessage;
    await this.deps.link!.send(to, encodeBusMessage(this.deps.busKey, message));
  }

  private receive(raw: string): void {
    const now = Date.now();
    const message = decodeBusMessage(this.deps.busKey, raw, now);
    if ('dropped' in message) return this.drop(message.dropped, now);
    if (this.seen.has(message.id) || message.from === this.deps.selfId) return this.drop('replayed', now);
    for (const [id, until] of this.seen) if (until < now) this.seen.delete(id);
    this.seen.set(message.id, now + 2 * MAX_BUS_MESSAGE_AGE_MS);
    this.handle(message).catch((error: unknown) => this.deps.log.error({ err: error, kind: message.kind }, 'gb28181: broker-link message failed'));
  }

  private drop(reason: string, now: number): void {
    this.dropped.count++;
    if (now - this.dropped.loggedAt < DROP_LOG_MS) return;
    this.deps.log.warn({ reason, dropped: this.dropped.count }, 'gb28181: dropped broker-link messages (the last one: reason)');
    this.dropped = { count: 0, loggedAt: now };
  }

  private async handle(message: GbBusMessage): Promise<void> {
    switch (message.kind) {
      case 'invite':
        return this.inviteFor(message);
      case 'invited': {
        const pending = this.pending.get(message.re);
        if (pending && pending.to === message.from) return pending.resolve(message.callRef);
        // We gave up on it (timeout): the device must not keep streaming for nobody.
        await this.send(message.from, { kind: 'bye', channelId: message.channelId, fence: message.fence, callRef: message.callRef });
        return;
      }
      case 'invite-failed': {
        const pending = this.pending.get(message.re);
        if (pending && pending.to === message.from) pending.reject(new SourceUnavailableError(`the broker holding the device refused the INVITE: ${message.reason}`));
        return;
      }
      case 'bye':
        return this.hangUpHeld(message, message.from);
      case 'ended': {
        const call = this.remote.get(message.callRef);
        if (!call || call.brokerId !== message.from) return;
        this.remote.delete(message.callRef);
        if (message.by === 'device') this.tellEnded(call);
        return;
      }
    }
  }

  /** Another broker asks us to INVITE one of our devices to its RTP port: checked, then placed as our own. */
  private async inviteFor(request: InviteRequest): Promise<void> {
    const refuse = (reason: InviteRefusal) => {
      this.deps.log.warn({ from: request.from, deviceId: request.deviceId, channelId: request.channelId, reason }, 'gb28181: refused an INVITE asked by another broker');
      return this.send(request.from, { kind: 'invite-failed', re: request.id, reason });
    };
    const device = this.deps.registry.get(request.deviceId);
    if (!device || device.disabled || !device.online || device.brokerId !== this.deps.selfId) return refuse('unknown-device');
    if (this.deps.channelOf(request.channelId)?.deviceId !== request.deviceId) return refuse('unknown-channel');
    if (!this.deps.rtpHosts().includes(request.mediaIp)) return refuse('bad-media-address');
    let dialog: GbDialog;
    try {
      dialog = await this.deps.dialogs.invite(request.deviceId, request.channelId, {
        mediaIp: request.mediaIp,
        mediaPort: request.mediaPort,
        transport: request.transport,
        ssrc: request.ssrc,
      });
    } catch (error) {
      this.deps.log.info({ err: error, deviceId: request.deviceId }, 'gb28181: INVITE for another broker failed');
      return refuse('source-unavailable');
    }
    this.held.set(dialog.id, { dialog, fence: request.fence, requester: request.from });
    await this.send(request.from, { kind: 'invited', re: request.id, callRef: dialog.id, channelId: request.channelId, fence: request.fence });
  }

  /** BYEs the held call named (by callRef, or the channel's of this fence or older); tells the broker it served. */
  private async hangUpHeld(request: Pick<ByeRequest, 'channelId' | 'fence' | 'callRef'>, from: string | null): Promise<void> {
    for (const [callRef, held] of [...this.held]) {
      const named = request.callRef !== undefined ? callRef === request.callRef && held.requester === from : held.dialog.channelId === request.channelId && held.fence <= request.fence;
      if (!named) continue;
      this.held.delete(callRef);
      await this.deps.dialogs.bye(held.dialog);
      if (held.requester && held.requester !== from) {
        await this.send(held.requester, { kind: 'ended', callRef, by: 'broker' }).catch(() => undefined);
      }
    }
  }

  /** The device hung up or went offline. */
  private dialogEnded(dialog: GbDialog): void {
    const held = this.held.get(dialog.id);
    this.held.delete(dialog.id);
    if (held?.requester) {
      this.send(held.requester, { kind: 'ended', callRef: dialog.id, by: 'device' }).catch((error: unknown) =>
        this.deps.log.warn({ err: error, channelId: dialog.channelId }, 'gb28181: could not tell the broker its call ended'),
      );
      return;
    }
    this.tellEnded(dialog);
  }

  private tellEnded(call: GbCall): void {
    for (const listener of this.endedListeners) {
      try {
        listener(call);
      } catch (error) {
        this.deps.log.error({ err: error }, 'gb28181: call end listener failed');
      }
    }
  }

  /** Brokers that hold calls for us, or that we hold calls for: gone → those calls end. */
  private async checkPeers(): Promise<void> {
    if (this.checking) return;
    const peers = [...new Set([...[...this.remote.values()].map((c) => c.brokerId), ...[...this.held.values()].flatMap((h) => (h.requester ? [h.requester] : []))])];
    if (peers.length === 0) return;
    this.checking = true;
    try {
      const alive = await this.deps.link!.alive(peers);
      // Dead only when missing at two checks in a row (each broker re-sets its key every second): a Redis that
      // restarted empty, or one missed refresh, must not hang up every call across brokers.
      const dead = new Set<string>();
      peers.forEach((peer, i) => {
        if (alive[i]) this.missing.delete(peer);
        else if ((this.missing.get(peer) ?? 0) + 1 >= PEER_MISSING_CHECKS) dead.add(peer);
        else this.missing.set(peer, (this.missing.get(peer) ?? 0) + 1);
      });
      for (const peer of this.missing.keys()) if (!peers.includes(peer) || dead.has(peer)) this.missing.delete(peer);
      if (dead.size === 0) return;
      this.deps.log.warn({ brokers: [...dead] }, 'gb28181: brokers with calls of ours are gone');
      for (const call of [...this.remote.values()]) {
        if (!dead.has(call.brokerId)) continue;
        this.remote.delete(call.callRef);
        this.tellEnded(call);
      }
      for (const [callRef, held] of [...this.held]) {
        if (!held.requester || !dead.has(held.requester)) continue;
        this.held.delete(callRef);
        await this.deps.dialogs.bye(held.dialog);
      }
    } catch (error) {
      // The store cannot tell (Redis down): calls go on; the media plane's silence check still ends a dead stream.
      this.deps.log.warn({ err: error }, 'gb28181: broker liveness check failed');
    } finally {
      this.checking = false;
    }
  }
}
