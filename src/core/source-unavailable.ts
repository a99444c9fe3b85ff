/**
 * A new relay that could not start: the request is refused with the answer its cause calls for, and
 * the refusal is on record with the cause, the caller, its agency and its purpose — for streams and
 * reservations alike. The media adapters name the cause (ports.ts ForwardStartError); this is the
 * one place that turns it into an answer.
 *  - the camera sent nothing in time → 504 SOURCE_UNAVAILABLE, audited `source-unavailable`;
 *  - no media node could take it → 503 UNAVAILABLE with Retry-After, audited `media-unavailable`;
 *  - the source URL is empty or not relayable → 409 CHANNEL_OFFLINE, audited `source-invalid`: the
 *    channel cannot be watched until a platform-admin fixes its source; retrying will not help, which
 *    is what 409 says (a 503 would invite retries), and CHANNEL_OFFLINE is the code clients already
 *    handle for a channel that cannot be watched now.
 * @see ../shared/API.md "Streams"
 */
import type { Principal } from './model.js';
import type { AuditService } from './audit-service.js';
import { DomainError } from './errors.js';
import { MediaUnavailableError, SourceInvalidError, type ForwardStartError } from './ports.js';

/** A client may try again this soon after a media node was unavailable (a node restarts in seconds). */
const MEDIA_RETRY_AFTER_SECONDS = 5;

export function startFailureReason(err: ForwardStartError): 'source-unavailable' | 'media-unavailable' | 'source-invalid' {
  if (err instanceof MediaUnavailableError) return 'media-unavailable';
  if (err instanceof SourceInvalidError) return 'source-invalid';
  return 'source-unavailable';
}

export function startFailureError(err: ForwardStartError, channelId: string): DomainError {
  switch (startFailureReason(err)) {
    case 'media-unavailable':
      return new DomainError('UNAVAILABLE', 503, 'no media node can relay this channel now, try again', { 'retry-after': String(MEDIA_RETRY_AFTER_SECONDS) });
    case 'source-invalid':
      return new DomainError('CHANNEL_OFFLINE', 409, `channel ${channelId} has no source the platform can relay`);
    case 'source-unavailable':
      return new DomainError('SOURCE_UNAVAILABLE', 504, `channel ${channelId} sent no video in time`);
  }
}

export async function forwardStartFailed(
  audit: AuditService,
  principal: Principal,
  err: ForwardStartError,
  request: { action: 'stream.deny' | 'analytics.deny'; channelId: string; purpose: string },
): Promise<DomainError> {
  await audit.record({
    actor: { id: principal.id, role: principal.role, agencyId: principal.agencyId },
    action: request.action,
    target: `channel:${request.channelId}`,
    outcome: 'error',
    reason: startFailureReason(err),
    purpose: request.purpose,
    details: { channelId: request.channelId, agencyId: principal.agencyId },
  });
  return startFailureError(err, request.channelId);
}
