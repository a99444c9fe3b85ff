/**
 * The slice of node-media-server 4.4 (plain JS, no bundled types) the media node uses. Field names follow
 * node_modules/node-media-server/src (core/context.js, session/*.js, server/broadcast_server.js).
 */
declare module 'node-media-server' {
  import type { IncomingMessage, ServerResponse } from 'node:http';
  import type { Socket } from 'node:net';
  import type { WebSocket } from 'ws';

  export interface NmsBroadcast {
    /** Replaced by a new Set on every video keyframe: a changed identity means a new keyframe arrived. */
    flvGopCache: Set<Buffer> | null;
  }

  export interface NmsSession {
    id: string;
    /** "address:port"; empty for NMS-internal sessions. */
    ip: string;
    protocol: 'rtmp' | 'flv' | string;
    isPublisher: boolean;
    streamApp: string;
    streamName: string;
    streamPath: string;
    streamQuery: Record<string, string | string[] | undefined>;
    inBytes: number;
    outBytes: number;
    broadcast?: NmsBroadcast;
    /** RTMP sessions. */
    socket?: Socket;
    /** FLV sessions: the HTTP request (HTTP-FLV and the WebSocket upgrade request). */
    req?: IncomingMessage;
    /** FLV sessions: the HTTP response (HTTP-FLV) or the WebSocket (WS-FLV). */
    res?: ServerResponse | WebSocket;
    close(): void;
  }

  export type NmsEvent = 'prePlay' | 'postPlay' | 'donePlay' | 'prePublish' | 'postPublish' | 'donePublish';

  export interface NmsConfig {
    bind?: string;
    rtmp?: { port?: number };
    http?: { port?: number };
    webadmin?: { enable?: boolean };
    store?: { path?: string; maxHistory?: number };
    auth?: { play?: boolean; publish?: boolean; secret?: string };
    notify?: { url?: string };
  }

  export default class NodeMediaServer {
    constructor(config: NmsConfig, configPath?: string);
    /** Its JSON store; `options` is read when `run()` opens it. */
    store: { options: { signals: boolean; lock: boolean } };
    on(event: NmsEvent, listener: (session: NmsSession) => void): void;
    run(): Promise<void>;
    stop(): Promise<void>;
  }
}
