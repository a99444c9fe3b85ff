/**
 * Policy lines as data: parsing policies/policy.csv, checking every line before Casbin sees it, and
 * turning an agency's classes/networks into grant lines (`p2, agency, class|network, value`).
 *
 * Casbin's own loader silently skips lines of an unknown type, so a typo in policy.csv would quietly
 * deny (or, worse, a stray grant would quietly allow). Here every line must have a known type, the
 * right number of fields and known values, or loading fails with the line named.
 */
import { CHANNEL_CLASSES, NETWORKS, ROLES } from '../core/model.js';

export type PolicyRow = string[];

/** Every action the function-level policy may name (see policies/policy.csv). */
export const ACTIONS = [
  'agency:read',
  'agency:write',
  'user:read',
  'user:write',
  'service-account:read',
  'service-account:write',
  'channel:read',
  'channel:write',
  'channel:read-source',
  'stream:create',
  'stream:read',
  'stream:end',
  'stream:cut-player',
  'analytics:create',
  'analytics:read',
  'analytics:end',
  'capacity:read',
  'audit:read',
  'audit:verify',
  'audit:head',
  'audit:public-key',
  'report:read',
  'media:read',
  'gb-device:read',
  'gb-device:write',
] as const;
export type Action = (typeof ACTIONS)[number];

/** What the object is to the caller, narrowest first: its own, its agency's, anyone's. */
export const SCOPES = ['self', 'own', 'any'] as const;
export type Scope = (typeof SCOPES)[number];

/** API.md "Agencies": the agency id syntax. */
export const AGENCY_ID = /^[a-z][a-z0-9-]{1,31}$/;
export const GRANT_TYPE = 'p2';
export const WILDCARD = '*';

const CLASS_VALUES: readonly string[] = CHANNEL_CLASSES.map(String);
const NETWORK_VALUES: readonly string[] = NETWORKS;

const isOneOf = (values: readonly string[], value: string) => values.includes(value);

/** Why a row is not acceptable, or null when it is. */
function rowProblem(row: PolicyRow): string | null {
  const [type, ...fields] = row;
  if (type === 'p') {
    if (fields.length !== 3) return 'p needs role, action, scope';
    const [role, action, scope] = fields;
    if (!isOneOf(ROLES, role)) return `unknown role ${role}`;
    if (!isOneOf(ACTIONS, action)) return `unknown action ${action}`;
    if (!isOneOf(SCOPES, scope)) return `unknown scope ${scope}`;
    return null;
  }
  if (type === 'g') {
    if (fields.length !== 2) return 'g needs narrower scope, wider scope';
    return fields.every((f) => isOneOf(SCOPES, f)) ? null : 'g links scopes only';
  }
  if (type === GRANT_TYPE) return grantProblem(fields);
  return `unknown line type ${type}`;
}

function grantProblem(fields: string[]): string | null {
  if (fields.length !== 3) return 'p2 needs agency, kind, value';
  const [agency, kind, value] = fields;
  if (!AGENCY_ID.test(agency)) return `bad agency id ${agency}`;
  if (kind === 'class') return value === WILDCARD || isOneOf(CLASS_VALUES, value) ? null : `unknown class ${value}`;
  if (kind === 'network') return value === WILDCARD || isOneOf(NETWORK_VALUES, value) ? null : `unknown network ${value}`;
  return `unknown grant kind ${kind}`;
}

/** Parses a policy.csv text (comments with #, blank lines, comma-separated fields). */
export function parsePolicyCsv(text: string, source: string): PolicyRow[] {
  const rows: PolicyRow[] = [];
  text.split(/\r?\n/).forEach((line, index) => {
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) return;
    const row = trimmed.split(',').map((field) => field.trim());
    const problem = rowProblem(row);
    if (problem) throw new Error(`${source}:${index + 1}: ${problem}`);
    rows.push(row);
  });
  return rows;
}

/** Checks grant rows read back from the policy store; anything else in there is refused. */
export function checkGrantRows(rows: unknown, source: string): PolicyRow[] {
  if (!Array.isArray(rows)) throw new Error(`${source}: grant rows must be an array`);
  return rows.map((row, index) => {
    if (!Array.isArray(row) || !row.every((f) => typeof f === 'string') || row[0] !== GRANT_TYPE) {
      throw new Error(`${source}[${index}]: not a p2 grant row`);
    }
    const problem = grantProblem(row.slice(1));
    if (problem) throw new Error(`${source}[${index}]: ${problem}`);
    return [...row];
  });
}

/** The grant rows for one agency: one line per class, one per network (deduplicated, sorted). */
export function grantRowsFor(agencyId: string, classes: readonly number[], networks: readonly string[]): PolicyRow[] {
  const rows = [
    ...[...new Set(classes)].sort((a, b) => a - b).map((c) => [GRANT_TYPE, agencyId, 'class', String(c)]),
    ...[...new Set(networks)].sort().map((n) => [GRANT_TYPE, agencyId, 'network', n]),
  ];
  const problem = rows.map((row) => grantProblem(row.slice(1))).find((p) => p !== null);
  if (problem) throw new Error(problem);
  return rows;
}

/** Rows back to CSV for Casbin's StringAdapter; safe because every field was checked above (no commas, quotes). */
export function toCsv(rows: readonly PolicyRow[]): string {
  return rows.map((row) => row.join(', ')).join('\n');
}
