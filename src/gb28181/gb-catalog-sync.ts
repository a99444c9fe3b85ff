/**
 * Catalog sync with a registered device or lower platform: the Catalog query (MESSAGE) after each
 * registration and on request, its answer gathered by SN over as many MESSAGEs as the device splits it
 * into, until SumNum items came or the timeout passed (bounded in items too); then the SUBSCRIBE to
 * catalog changes (`Event: Catalog`, refreshed before it lapses) and the NOTIFYs it brings.
 * Camera items (types 131, 132) with a valid channel code become catalog channels; channels are never
 * deleted (DEL, OFF, VLOST, DEFECT set them offline).
 * @see ../../../shared/API.md "GB/T 28181 access" (Catalog)
 * @see GB/T 28181-2016 9.5 网络设备信息查询, 9.11 目录订阅
 */
import type { Logger } from 'pino';
import type { Channel, ChannelStatus } from '../core/model.js';
import type { CatalogService } from '../core/catalog-service.js';
import { parseChannelId } from '../core/gb-code.js';
import { parseNameAddr, type SipResponse } from './sip-message.js';
import { newCallId, newTag, type OutgoingRequest } from './sip-stack.js';
import type { SipTransportName } from './sip-transport.js';
import { MANSCDP_CONTENT_TYPE, catalogQuery, encodeBody, readCatalogItems, type CatalogItem, type ManscdpDocument } from './manscdp.js';
import type { GbDevice, GbDeviceRegistry } from './gb-devices.js';
import { DEVICE_REQUEST_TIMEOUT_MS, type GbConfig } from './gb-config.js';

const CAMERA_TYPES = new Set(['131', '132']);
const MAX_NAME_CHARS = 100;
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/g;

export interface CatalogSyncDeps {
  config: GbConfig;
  registry: GbDeviceRegistry;
  catalog: CatalogService;
  log: Logger;
  send(device: GbDevice, outgoing: OutgoingRequest, timeoutMs: number): Promise<SipResponse>;
  contact(transport: SipTransportName): string;
}

interface Gathering {
  sn: number;
  sumNum: number | undefined;
  items: Map<string, CatalogItem>;
  /** Items past the bound (dropped, counted as skipped). */
  overflow: number;
  timer: NodeJS.Timeout;
  done(): void;
}

interface Subscription {
  callId: string;
  fromTag: string;
  toTag: string;
  cseq: number;
  refresh?: NodeJS.Timeout;
}

export interface SyncOutcome {
  items: number;
  channels: number;
  skipped: number;
  complete: boolean;
}

export class CatalogSync {
  private sn = Math.floor(Math.random() * 100_000);
  private readonly gatherings = new Map<string, Gathering>();
  private readonly subscriptions = new Map<string, Subscription>();
  private closed = false;

  constructor(private readonly deps: CatalogSyncDeps) {}

  close(): void {
    this.closed = true;
    for (const g of this.gatherings.values()) clearTimeout(g.timer);
    for (const s of this.subscriptions.values()) clearTimeout(s.refresh);
    this.gatherings.clear();
    this.subscriptions.clear();
  }

  /** A device is gone: its gathering and subscription with it. */
  forget(deviceId: string): void {
    const g = this.gatherings.get(deviceId);
    if (g) {
      clearTimeout(g.timer);
      this.gatherings.delete(deviceId);
    }
    clearTimeout(this.subscriptions.get(deviceId)?.refresh);
    this.subscriptions.delete(deviceId);
  }

  /** After a fresh registration: query the catalog, then subscribe to its changes. */
  afterRegister(device: GbDevice): void {
    this.query(device)
      .then(() => this.subscribe(device.id))
      .catch((err: unknown) => this.deps.log.warn({ err, deviceId: device.id }, 'gb28181: catalog sync after registration failed'));
  }

  /**
   * Sends a Catalog query and resolves once its answer is in (every item, or the timeout) and applied.
   * A query while one is gathering replaces it (the new SN wins; the old answer's items are not lost:
   * the device sends the full catalog again).
   */
  async query(device: GbDevice): Promise<SyncOutcome> {
    const sn = this.nextSn();
    const previous = this.gatherings.get(device.id);
    if (previous) clearTimeout(previous.timer);
    const finished = new Promise<void>((resolve) => {
      const gathering: Gathering = {
        sn,
        sumNum: undefined,
        items: new Map(),
        overflow: 0,
        timer: setTimeout(() => gathering.done(), this.deps.config.catalogTimeoutMs),
        done: () => {
          clearTimeout(gathering.timer);
          if (this.gatherings.get(device.id) === gathering) this.gatherings.delete(device.id);
          resolve();
        },
      };
      this.gatherings.set(device.id, gathering);
    });
    const gathering = this.gatherings.get(device.id)!;
    const answer = await this.deps.send(device, this.message(device, catalogQuery(sn, device.id)), DEVICE_REQUEST_TIMEOUT_MS).catch((err: unknown) => {
      gathering.done();
      throw err;
    });
    if (answer.status >= 300) {
      gathering.done();
      throw new Error(`device answered the Catalog query ${answer.status}`);
    }
    await finished;
    const items = [...gathering.items.values()];
    const complete = gathering.sumNum !== undefined && items.length >= gathering.sumNum;
    if (this.closed) return { items: items.length, channels: 0, skipped: 0, complete };
    const result = await this.apply(device.id, items, gathering.overflow, true);
    if (!complete) this.deps.log.warn({ deviceId: device.id, got: items.length, sumNum: gathering.sumNum }, 'gb28181: catalog answer incomplete at the timeout');
    return { ...result, complete };
  }

  /** One MESSAGE of a Catalog answer. Answers to SNs we are not gathering are ignored. */
  response(device: GbDevice, doc: ManscdpDocument): void {
    const gathering = this.gatherings.get(device.id);
    if (!gathering || gathering.sn !== doc.sn) return;
    const { sumNum, items } = readCatalogItems(doc);
    gathering.sumNum = Math.min(sumNum, this.deps.config.catalogMaxItems);
    for (const item of items) {
      if (gathering.items.size >= this.deps.config.catalogMaxItems && !gathering.items.has(item.deviceId)) {
        gathering.overflow++;
        continue;
      }
      gathering.items.set(item.deviceId, item);
    }
    if (gathering.items.size >= gathering.sumNum) gathering.done();
  }

  /** A NOTIFY (or MESSAGE Notify) of catalog changes: applied at once. */
  notify(device: GbDevice, doc: ManscdpDocument): void {
    const { items } = readCatalogItems(doc);
    this.apply(device.id, items.slice(0, this.deps.config.catalogMaxItems), 0, false).catch((err: unknown) =>
      this.deps.log.warn({ err, deviceId: device.id }, 'gb28181: catalog notification could not be applied'),
    );
  }

  /** SUBSCRIBE Event: Catalog; refreshed at two thirds of its life while the device stays registered. */
  async subscribe(deviceId: string): Promise<void> {
    const device = this.deps.registry.get(deviceId);
    if (this.closed || !device?.online) return;
    const existing = this.subscriptions.get(deviceId);
    const expires = this.deps.config.subscribeExpiresSeconds;
    const sub: Subscription = existing ?? { callId: newCallId(), fromTag: newTag(), toTag: '', cseq: 0 };
    sub.cseq++;
    const uri = `sip:${device.id}@${device.address ?? 'invalid'}`;
    const to = `<sip:${device.id}@${this.deps.config.realm}>${sub.toTag ? `;tag=${sub.toTag}` : ''}`;
    const outgoing: OutgoingRequest = {
      method: 'SUBSCRIBE',
      uri,
      headers: [
        ['From', `<sip:${this.deps.config.serverId}@${this.deps.config.realm}>;tag=${sub.fromTag}`],
        ['To', to],
        ['Call-ID', sub.callId],
        ['CSeq', `${sub.cseq} SUBSCRIBE`],
        ['Contact', this.deps.contact(device.peer?.transport ?? 'udp')],
        ['Event', 'Catalog'],
        ['Expires', String(expires)],
      ],
      body: encodeBody(catalogQuery(this.nextSn(), device.id), 'gb2312'),
      contentType: MANSCDP_CONTENT_TYPE,
    };
    const answer = await this.deps.send(device, outgoing, DEVICE_REQUEST_TIMEOUT_MS);
    if (answer.status >= 300) {
      this.subscriptions.delete(deviceId);
      // A refresh the device no longer knows (481, it restarted): start a new subscription once.
      if (existing && answer.status === 481) return this.subscribe(deviceId);
      throw new Error(`device answered SUBSCRIBE ${answer.status}`);
    }
    sub.toTag = parseNameAddr(answer.headers.get('to'))?.params.get('tag') ?? sub.toTag;
    const granted = Number(answer.headers.get('expires') ?? expires);
    const life = Number.isFinite(granted) && granted > 0 ? Math.min(granted, expires) : expires;
    clearTimeout(sub.refresh);
    sub.refresh = setTimeout(() => {
      this.subscribe(deviceId).catch((err: unknown) => this.deps.log.warn({ err, deviceId }, 'gb28181: catalog subscription refresh failed'));
    }, Math.max(1000, (life * 1000 * 2) / 3));
    sub.refresh.unref();
    this.subscriptions.set(deviceId, sub);
  }

  subscribed(deviceId: string): boolean {
    return this.subscriptions.has(deviceId);
  }

  private message(device: GbDevice, xml: string): OutgoingRequest {
    return {
      method: 'MESSAGE',
      uri: `sip:${device.id}@${device.address ?? 'invalid'}`,
      headers: [
        ['From', `<sip:${this.deps.config.serverId}@${this.deps.config.realm}>;tag=${newTag()}`],
        ['To', `<sip:${device.id}@${this.deps.config.realm}>`],
        ['Call-ID', newCallId()],
        ['CSeq', '1 MESSAGE'],
      ],
      body: encodeBody(xml, 'gb2312'),
      contentType: MANSCDP_CONTENT_TYPE,
    };
  }

  private nextSn(): number {
    this.sn = (this.sn + 1) % 1_000_000_000;
    return this.sn;
  }

  /**
   * Writes items as channels: new and changed ones in one batch (so 10,000 items rebuild the catalog's
   * indexes once), then the device's counts. An item whose id is taken by a channel of another source or
   * device is skipped: a device may not take over channels it does not own.
   */
  private async apply(deviceId: string, items: readonly CatalogItem[], overflow: number, full: boolean): Promise<Omit<SyncOutcome, 'complete'>> {
    const device = this.deps.registry.get(deviceId);
    if (!device) return { items: 0, channels: 0, skipped: 0 };
    const { catalog } = this.deps;
    const changed: Channel[] = [];
    let skipped = overflow;
    for (const item of items) {
      const channel = this.toChannel(device, item);
      if (!channel) {
        skipped++;
        continue;
      }
      const current = catalog.channel(channel.id);
      if (!sameChannel(current, channel)) changed.push(channel);
    }
    if (changed.length > 0) await catalog.upsertFromDevice(changed);
    const channels = catalog.channelsOfDevice(deviceId).length;
    const latest = this.deps.registry.get(deviceId) ?? device;
    // A full answer says how many items were skipped; a notification only adds to the channels.
    const skippedItems = full ? skipped : latest.skippedItems;
    if (latest.channels !== channels || latest.skippedItems !== skippedItems) await this.deps.registry.save({ ...latest, channels, skippedItems });
    return { items: items.length, channels, skipped };
  }

  private toChannel(device: GbDevice, item: CatalogItem): Channel | undefined {
    const parsed = parseChannelId(item.deviceId);
    if (!parsed.ok || !CAMERA_TYPES.has(parsed.deviceType)) return undefined;
    const current = this.deps.catalog.channel(item.deviceId);
    if (current && (current.source !== 'gb28181' || current.deviceId !== device.id)) return undefined;
    const status = statusOf(item, current?.status);
    if (item.event && item.event !== 'ADD' && item.event !== 'UPDATE' && !current) return undefined;
    const name = cleanName(item.name) ?? current?.name ?? item.deviceId;
    const lat = item.latitude;
    const lon = item.longitude;
    const location = lat !== undefined && lon !== undefined && lat >= -90 && lat <= 90 && lon >= -180 && lon <= 180 && !(lat === 0 && lon === 0)
      ? { lat, lon }
      : (current?.location ?? { lat: 0, lon: 0 });
    const channel: Channel = {
      ...current,
      id: item.deviceId,
      name: item.event && item.event !== 'ADD' && item.event !== 'UPDATE' ? (current?.name ?? name) : name,
      class: device.channelClass,
      district: parsed.district,
      network: parsed.network,
      location: item.event && item.event !== 'ADD' && item.event !== 'UPDATE' ? (current?.location ?? location) : location,
      status,
      source: 'gb28181',
      deviceId: device.id,
    };
    return channel;
  }
}

function statusOf(item: CatalogItem, current: ChannelStatus | undefined): ChannelStatus {
  switch (item.event) {
    case 'DEL':
    case 'OFF':
    case 'VLOST':
    case 'DEFECT':
      return 'offline';
    case 'ON':
      return 'online';
    default:
      if (item.status === 'OFF' || item.status === 'OFFLINE') return 'offline';
      if (item.status === 'ON' || item.status === 'ONLINE' || item.status === 'OK') return 'online';
      return current ?? 'online';
  }
}

function cleanName(name: string | undefined): string | undefined {
  if (name === undefined) return undefined;
  const cleaned = [...name.replace(CONTROL_CHARS, '').trim()].slice(0, MAX_NAME_CHARS).join('').trim();
  return cleaned.length > 0 ? cleaned : undefined;
}

function sameChannel(a: Channel | undefined, b: Channel): boolean {
  return a !== undefined && a.name === b.name && a.status === b.status && a.class === b.class && a.location.lat === b.location.lat && a.location.lon === b.location.lon && a.deviceId === b.deviceId && a.source === b.source;
}
