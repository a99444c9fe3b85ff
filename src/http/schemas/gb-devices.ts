/** `/gb/devices` (API.md "GB/T 28181 access"): devices and lower platforms that register over SIP. */
import { Type, type Static } from '@sinclair/typebox';
import { ChannelClass, IsoTime, Strict } from './common.js';

const DeviceId = Type.String({ pattern: '^[0-9]{20}$', description: 'GB/T 28181 20-digit code of the device or lower platform' });
const MediaTransport = Type.Union([Type.Literal('udp'), Type.Literal('tcp-passive')]);
const Name = Type.String({ minLength: 1, maxLength: 100 });
/** SIP digest passwords are typed into device web pages: printable ASCII, bounded. */
const Password = Type.String({ minLength: 8, maxLength: 64, pattern: '^[\\x21-\\x7e]+$' });

export const GbDevice = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    channelClass: Type.Integer(),
    mediaTransport: Type.String(),
    disabled: Type.Boolean(),
    online: Type.Boolean(),
    address: Type.Union([Type.String(), Type.Null()]),
    transport: Type.Union([Type.Literal('udp'), Type.Literal('tcp'), Type.Null()]),
    registeredAt: Type.Union([IsoTime, Type.Null()]),
    lastKeepaliveAt: Type.Union([IsoTime, Type.Null()]),
    channels: Type.Integer(),
    channelsOnline: Type.Integer({ description: 'how many of its channels are online now' }),
    skippedItems: Type.Integer({ description: 'catalog items skipped: not a camera with a valid channel code' }),
    createdAt: IsoTime,
    createdBy: Type.String(),
  },
  { $id: 'GbDevice' },
);

export const GbDeviceParams = Type.Object({ id: DeviceId });

export const CreateGbDeviceBody = Type.Object(
  { id: DeviceId, name: Name, password: Password, channelClass: Type.Optional(ChannelClass), mediaTransport: Type.Optional(MediaTransport) },
  Strict,
);
export type CreateGbDeviceBody = Static<typeof CreateGbDeviceBody>;

export const PatchGbDeviceBody = Type.Object(
  {
    name: Type.Optional(Name),
    password: Type.Optional(Password),
    channelClass: Type.Optional(ChannelClass),
    mediaTransport: Type.Optional(MediaTransport),
    disabled: Type.Optional(Type.Boolean()),
  },
  Strict,
);
