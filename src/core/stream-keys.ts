/**
 * Names of streams on the media plane: a channel's forward is the channel id; an analytics
 * reservation has a relay of its own (no forwarding slot, its own fencing) under `<channel>-<reservation>`.
 */

/** The media plane's stream of one reservation: `<channel>-<reservation id>`. */
export const analyticsStreamKey = (r: { channelId: string; id: string }) => `${r.channelId}-${r.id}`;

/** The reservation id inside an analytics stream key, or null for a channel's own forward. */
export function reservationOfStreamKey(key: string): string | null {
  const match = /^\d{20}-(r_[A-Za-z0-9_-]+)$/.exec(key);
  return match ? match[1]! : null;
}
