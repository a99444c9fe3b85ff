/**
 * A new relay whose source sent nothing in time: the request is refused with 504 and the refusal is
 * on record with the caller, its agency and its purpose — for streams and reservations alike.
 */
import type { Principal } from './model.js';
import type { AuditService } from './audit-service.js';
import { DomainError } from './errors.js';

export async function sourceUnavailable(
  audit: AuditService,
  principal: Principal,
  request: { action: 'stream.deny' | 'analytics.deny'; channelId: string; purpose: string },
): Promise<DomainError> {
  await audit.record({
    actor: { id: principal.id, role: principal.role, agencyId: principal.agencyId },
    action: request.action,
    target: `channel:${request.channelId}`,
    outcome: 'error',
    reason: 'source-unavailable',
    purpose: request.purpose,
    details: { channelId: request.channelId, agencyId: principal.agencyId },
  });
  return new DomainError('SOURCE_UNAVAILABLE', 504, `channel ${request.channelId} sent no video in time`);
}
