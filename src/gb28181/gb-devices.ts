/**
 * GB/T 28181 devices and lower platforms as records (collection `gbDevices` of the store port, so with
 * Redis every broker sees them): who may register (id, HA1 of the password, disabled) and what is known of
 * its registration (online, address, times, which broker holds it). Platform-admins manage them through
 * `/api/v1/gb/devices`; a device is never deleted.
 * @see ../../../shared/API.md "GB/T 28181 access"
 */
import type { ChannelClass, Principal } from '../core/model.js';
import type { AccessControl, DocumentStore } from '../core/ports.js';
import { ConflictError } from '../core/ports.js';
import type { AuditService } from '../core/audit-service.js';
import { badRequest, conflict, notFound } from '../core/errors.js';
import { digestHa1 } from './digest.js';
import type { SipPeer } from './sip-transport.js';

export type MediaTransport = 'udp' | 'tcp-passive';

export interface GbDevice {
  id: string;
  name: string;
  channelClass: ChannelClass;
  mediaTransport: MediaTransport;
  disabled: boolean;
  online: boolean;
  /** `ip:port` the device registered from. */
  address: string | null;
  transport: 'udp' | 'tcp' | null;
  registeredAt: string | null;
  lastKeepaliveAt: string | null;
  /** Channels of its catalog in the broker's catalog. */
  channels: number;
  /** Catalog items skipped because their id is no valid channel code. */
  skippedItems: number;
  createdAt: string;
  createdBy: string;
  /** Internal: MD5(id:realm:password), what digest needs; never the password. */
  ha1: string;
  /** Internal: the realm HA1 was made for. */
  realm: string;
  /** Internal: when the registration lapses unless renewed (ms since the epoch). */
  expiresAt: number | null;
  /** Internal: the broker process that holds the registration (it sends the device our requests). */
  brokerId: string | null;
  /** Internal: where to send requests (the registration's source). */
  peer: SipPeer | null;
}

export type PublicGbDevice = Omit<GbDevice, 'ha1' | 'realm' | 'expiresAt' | 'brokerId' | 'peer'>;

export interface CreateGbDevice {
  id: string;
  name: string;
  password: string;
  channelClass?: ChannelClass;
  mediaTransport?: MediaTransport;
}

export type PatchGbDevice = Partial<Pick<CreateGbDevice, 'name' | 'password' | 'channelClass' | 'mediaTransport'>> & { disabled?: boolean };

/** GB/T 28181 device types (digits 11-13) that may register: devices (111-199) and platforms/servers (200-299). */
export function deviceIdProblem(id: string): string | undefined {
  if (!/^[0-9]{20}$/.test(id)) return 'a device id has 20 digits';
  const type = Number(id.slice(10, 13));
  if (type < 111 || type > 299) return `type ${id.slice(10, 13)} (digits 11-13) is no device or platform`;
  return undefined;
}

export function present(device: GbDevice): PublicGbDevice {
  const { ha1: _h, realm: _r, expiresAt: _e, brokerId: _b, peer: _p, ...rest } = device;
  return rest;
}

export class GbDeviceRegistry {
  private readonly devices = new Map<string, GbDevice>();
  private readonly changeListeners: Array<(device: GbDevice, previous: GbDevice | undefined) => void> = [];

  private constructor(
    private readonly store: DocumentStore,
    private readonly access: AccessControl,
    private readonly audit: AuditService,
    readonly realm: string,
  ) {
    store.onRemoteChange(({ collection, id, doc }) => {
      if (collection !== 'gbDevices' || !doc) return;
      const previous = this.devices.get(id);
      this.devices.set(id, doc as GbDevice);
      for (const listener of this.changeListeners) listener(doc as GbDevice, previous);
    });
  }

  static async open(store: DocumentStore, access: AccessControl, audit: AuditService, realm: string): Promise<GbDeviceRegistry> {
    const registry = new GbDeviceRegistry(store, access, audit, realm);
    for (const device of await store.all<GbDevice>('gbDevices')) registry.devices.set(device.id, device);
    return registry;
  }

  /** Another broker (or this one) changed a device record. */
  onChange(listener: (device: GbDevice, previous: GbDevice | undefined) => void): void {
    this.changeListeners.push(listener);
  }

  get(id: string): GbDevice | undefined {
    return this.devices.get(id);
  }

  all(): IterableIterator<GbDevice> {
    return this.devices.values();
  }

  /**
   * Writes a new version of a record (registration state, counts); durable when resolved. The registry shows
   * it at once, before the write resolves: a writer that reads the record meanwhile (a catalog answer's counts
   * while an unregister is being written) builds on it instead of on the older one, and the store receives
   * the writes in the order they were made. With the registry updated only after the write, such a writer
   * put back `online: true` over the unregister: a device read online after `Expires: 0`.
   */
  async save(device: GbDevice): Promise<GbDevice> {
    const previous = this.devices.get(device.id);
    this.devices.set(device.id, device);
    try {
      await this.store.put('gbDevices', device.id, device);
    } catch (err) {
      if (this.devices.get(device.id) === device) {
        if (previous) this.devices.set(device.id, previous);
        else this.devices.delete(device.id);
      }
      throw err;
    }
    for (const listener of this.changeListeners) listener(device, previous);
    return device;
  }

  // -------------------------------------------------------------------------------------------
  // The API (platform-admin).
  // -------------------------------------------------------------------------------------------

  list(principal: Principal): PublicGbDevice[] {
    this.access.assertList(principal, 'gb-device:read', {});
    return [...this.devices.values()].sort((a, b) => (a.id < b.id ? -1 : 1)).map(present);
  }

  read(principal: Principal, id: string): PublicGbDevice {
    this.access.assertRole(principal, 'gb-device:read');
    const device = this.devices.get(id);
    if (!device) throw notFound('device');
    return present(device);
  }

  async create(principal: Principal, input: CreateGbDevice): Promise<PublicGbDevice> {
    this.access.assertRole(principal, 'gb-device:write');
    const problem = deviceIdProblem(input.id);
    if (problem) throw badRequest(`id ${input.id}: ${problem}`);
    const device: GbDevice = {
      id: input.id,
      name: input.name,
      channelClass: input.channelClass ?? 1,
      mediaTransport: input.mediaTransport ?? 'udp',
      disabled: false,
      online: false,
      address: null,
      transport: null,
      registeredAt: null,
      lastKeepaliveAt: null,
      channels: 0,
      skippedItems: 0,
      createdAt: new Date().toISOString(),
      createdBy: principal.id,
      ha1: digestHa1(input.id, this.realm, input.password),
      realm: this.realm,
      expiresAt: null,
      brokerId: null,
      peer: null,
    };
    try {
      await this.store.put('gbDevices', device.id, device, { ifAbsent: true });
    } catch (err) {
      if (err instanceof ConflictError) throw conflict(`device ${input.id} exists`);
      throw err;
    }
    this.devices.set(device.id, device);
    await this.audit.record({
      actor: { id: principal.id, role: principal.role, agencyId: principal.agencyId },
      action: 'gb.device.create',
      target: `gb-device:${device.id}`,
      outcome: 'ok',
      details: { deviceId: device.id, channelClass: device.channelClass, mediaTransport: device.mediaTransport },
    });
    return present(device);
  }

  /** Applies a PATCH; the caller (GbServer) acts on a newly disabled device (unregister, channels offline). */
  async patch(principal: Principal, id: string, patch: PatchGbDevice): Promise<{ device: GbDevice; previous: GbDevice }> {
    this.access.assertRole(principal, 'gb-device:write');
    const previous = this.devices.get(id);
    if (!previous) throw notFound('device');
    const next: GbDevice = { ...previous };
    if (patch.name !== undefined) next.name = patch.name;
    if (patch.channelClass !== undefined) next.channelClass = patch.channelClass;
    if (patch.mediaTransport !== undefined) next.mediaTransport = patch.mediaTransport;
    if (patch.disabled !== undefined) next.disabled = patch.disabled;
    if (patch.password !== undefined) {
      next.ha1 = digestHa1(id, this.realm, patch.password);
      next.realm = this.realm;
    }
    await this.save(next);
    await this.audit.record({
      actor: { id: principal.id, role: principal.role, agencyId: principal.agencyId },
      action: 'gb.device.update',
      target: `gb-device:${id}`,
      outcome: 'ok',
      details: { deviceId: id, fields: Object.keys(patch).join(',') },
    });
    return { device: next, previous };
  }
}
