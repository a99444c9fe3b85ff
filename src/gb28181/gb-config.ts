/** What the GB/T 28181 modules are configured with (from src/config.ts, see broker.ts). */
export interface GbConfig {
  host: string;
  port: number;
  advertisedHost: string;
  serverId: string;
  realm: string;
  keepaliveTimeoutMs: number;
  maxMessageBytes: number;
  maxHeaders: number;
  maxTcpConnections: number;
  udpReceiveBufferBytes: number;
  catalogTimeoutMs: number;
  catalogMaxItems: number;
  subscribeExpiresSeconds: number;
  /** How long an INVITE waits for the device's answer (the source timeout). */
  inviteTimeoutMs: number;
}

/** How long requests to a device (MESSAGE, SUBSCRIBE, BYE) wait for its answer. */
export const DEVICE_REQUEST_TIMEOUT_MS = 8000;
