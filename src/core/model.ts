/**
 * Domain model of the broker. Plain data: no Fastify, Redis or node-media-server types here.
 * Field names follow ../shared/API.md (the public contract); internal-only fields are marked.
 */

export const NETWORKS = ['video', 'police', 'gov', 'interconnect'] as const;
export type Network = (typeof NETWORKS)[number];

export const CHANNEL_CLASSES = [1, 2, 3] as const;
export type ChannelClass = (typeof CHANNEL_CLASSES)[number];

export const CHANNEL_STATUSES = ['online', 'offline', 'fault'] as const;
export type ChannelStatus = (typeof CHANNEL_STATUSES)[number];

export interface GeoPoint {
  lat: number;
  lon: number;
}

export interface Channel {
  /** 20-digit GB/T 28181 code. */
  id: string;
  name: string;
  class: ChannelClass;
  /** Digits 1-6 of the id. */
  district: string;
  /** Derived from digit 14 of the id. */
  network: Network;
  location: GeoPoint;
  status: ChannelStatus;
  ownerAgency?: string;
  tags?: string[];
  /** Only platform-admins see it. rtmp://, rtsp:// or http(s)://...flv */
  sourceUrl?: string;
  /** Where the video comes from: a source URL (the default when absent) or a GB/T 28181 device. */
  source?: 'url' | 'gb28181';
  /** The GB/T 28181 device or lower platform whose catalog holds it (source gb28181). */
  deviceId?: string;
  /** What the media plane last saw the camera send (API.md Channels `codec`). */
  codec?: VideoCodecName;
}

export const VIDEO_CODECS = ['h264', 'h265'] as const;
export type VideoCodecName = (typeof VIDEO_CODECS)[number];
/** What a stream request asks to play (API.md Streams `codec`): the camera's own codec, or H.264 for browsers that need it. */
export const STREAM_CODEC_REQUESTS = ['source', 'h264'] as const;
export type StreamCodecRequest = (typeof STREAM_CODEC_REQUESTS)[number];

export const ROLES = ['platform-admin', 'admin', 'operator', 'service'] as const;
export type Role = (typeof ROLES)[number];

export interface Quotas {
  forwarding: number;
  analytics: number;
}

export interface Agency {
  id: string;
  name: string;
  networks: Network[];
  classes: ChannelClass[];
  quotas: Quotas;
  canPreempt: boolean;
  createdAt: string;
  createdBy: string;
}

export interface User {
  id: string;
  username: string;
  role: 'platform-admin' | 'admin' | 'operator';
  agencyId: string;
  displayName: string;
  disabled: boolean;
  createdBy: string;
  createdAt: string;
  /** Internal: scrypt hash string (algorithm, parameters, salt, key). Never serialised to clients. */
  passwordHash: string;
  /** Internal: bumped on password change / disable so older tokens stop working. */
  tokenVersion: number;
  /**
   * Internal: the token (by its `jti`) that changed its owner's password survives that change, and
   * only while `tokenVersion` is still `version`: any later change ends it like the others.
   */
  keptToken?: { jti: string; version: number };
}

export interface ServiceAccount {
  id: string;
  name: string;
  agencyId: string;
  createdBy: string;
  createdAt: string;
  revoked: boolean;
  /** Internal: sha256 of the API key (keys are 256-bit random, so a fast hash is enough). */
  keyHash: string;
}

/** Who is calling: a person (token) or a service (API key). */
export interface Principal {
  kind: 'user' | 'service';
  id: string;
  /** Username or service account name, for logs and audit. */
  name: string;
  role: Role;
  agencyId: string;
}

export const PRIORITIES = ['normal', 'urgent', 'emergency'] as const;
export type Priority = (typeof PRIORITIES)[number];

export const END_REASONS = ['released', 'expired', 'preempted', 'revoked', 'source-failed'] as const;
export type EndReason = (typeof END_REASONS)[number];

export type AuditOutcome = 'ok' | 'denied' | 'error';

/** What callers hand to the audit log; the log adds seq, at, prevHash and hash. */
export interface AuditDraft {
  actor: { id: string; role: Role | 'system'; agencyId: string };
  action: string;
  target: string;
  outcome: AuditOutcome;
  reason?: string;
  purpose?: string;
  /** Extra structured facts (channel, session, preemptor, ...). Part of the hashed content. */
  details?: Record<string, string | number | boolean | null>;
}

export interface AuditEntry extends AuditDraft {
  seq: number;
  at: string;
  prevHash: string;
  hash: string;
}
