/**
 * Issue 8, point 16: authorization is decided in one place, the authorizer (src/authz over
 * policies/), and asked with policy actions. A role compared by hand in a service or a route is a
 * second, untested policy; a policy action nobody asks is a line that protects nothing. This guard
 * reads the sources: the truth tables that prove the decisions themselves are
 * test/authz/authorizer.test.ts and test/http/permissions.test.ts.
 * @see ../../../shared/STYLE.md 7
 */
import t from 'tap';
import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { ACTIONS } from '../../src/authz/policy-rows.js';

const root = join(import.meta.dirname, '../..');
/** Where decisions must not be made by hand. (src/http/schemas defines the role field; it decides nothing.) */
const GUARDED = ['src/core', 'src/http/routes', 'src/gb28181'];
/** Where the authorizer is asked (anything but the authorizer itself). */
const CALLERS = ['src/core', 'src/http', 'src/accounts', 'src/media', 'src/gb28181', 'src/app.ts', 'src/broker.ts'];

/**
 * Lines that may compare a role, `file: reason`, matched by file and exact trimmed line. Empty: every
 * decision goes through the authorizer. An entry that no longer matches fails the test, so the list
 * never outlives its reason.
 */
const ALLOW_LIST: Array<{ file: string; line: string; why: string }> = [];

const ROLE_NAME = `'(?:platform-admin|admin|operator|service)'`;
const CMP = '(?:===|!==|==|!=)';
/** A role (or a principal's kind) decided on by hand: compared, switched on, looked up in a list of roles. */
const HAND_MADE_DECISION = [
  new RegExp(`\\brole\\s*${CMP}`),
  new RegExp(`${CMP}\\s*[\\w$.?!]*\\brole\\b`),
  new RegExp(`${CMP}\\s*${ROLE_NAME}`),
  new RegExp(`${ROLE_NAME}\\s*${CMP}`),
  /switch\s*\([^)]*\brole\s*\)/,
  /\.includes\(\s*[\w$.?!]*\brole\s*\)/,
];

export function handMadeDecision(line: string): boolean {
  const code = line.replace(/\/\/.*$/, '').replace(/^\s*\*.*$/, '');
  return HAND_MADE_DECISION.some((pattern) => pattern.test(code));
}

async function sourceFiles(path: string): Promise<string[]> {
  const full = join(root, path);
  if (full.endsWith('.ts')) return [full];
  const entries = await readdir(full, { withFileTypes: true, recursive: true });
  return entries.filter((e) => e.isFile() && e.name.endsWith('.ts')).map((e) => join(e.parentPath, e.name));
}

async function linesOf(paths: string[]): Promise<Array<{ file: string; number: number; text: string }>> {
  const files = (await Promise.all(paths.map(sourceFiles))).flat();
  const lines = await Promise.all(
    files.map(async (file) => (await readFile(file, 'utf8')).split('\n').map((text, i) => ({ file: relative(root, file), number: i + 1, text }))),
  );
  return lines.flat();
}

t.test('point 16: the detector sees hand-made role decisions and nothing else', async (t) => {
  for (const line of [
    "if (principal.role === 'platform-admin') return true;",
    "if (principal.role !== 'platform-admin') report.agencies = [];",
    "const filter = p.role === 'admin' ? {} : { id };",
    "if ('operator' === user.role) throw forbidden();",
    "if (principal.kind === 'service') throw forbidden();",
    'switch (principal.role) {',
    "if (['admin', 'platform-admin'].includes(principal.role)) return;",
    'if (current.role == other.role) return;',
  ]) {
    t.ok(handMadeDecision(line), `flags: ${line}`);
  }
  for (const line of [
    'actor: { id: principal.id, role: principal.role, agencyId: principal.agencyId },',
    'role: Type.String(),',
    "this.o.access.assert(principal, 'stream:create', { agencyId: principal.agencyId });",
    "if (event.type === 'capacity') return true;",
    " * platform-admins see all; admins their agency's (principal.role === 'admin' in a comment)",
    "const reach = this.o.access.reach(principal, 'analytics:read');",
  ]) {
    t.notOk(handMadeDecision(line), `leaves alone: ${line}`);
  }
});

t.test('point 16: no role is compared by hand in src/core or src/http/routes', async (t) => {
  const allowed = new Set(ALLOW_LIST.map((a) => `${a.file}\u0000${a.line}`));
  const used = new Set<string>();
  const found: string[] = [];
  for (const { file, number, text } of await linesOf(GUARDED)) {
    if (!handMadeDecision(text)) continue;
    const key = `${file}\u0000${text.trim()}`;
    if (allowed.has(key)) used.add(key);
    else found.push(`${file}:${number}: ${text.trim()}`);
  }
  t.same(found, [], 'ask the authorizer (access.can / assert / reach / assertList) with a policy action instead');
  t.same(ALLOW_LIST.filter((a) => !used.has(`${a.file}\u0000${a.line}`)), [], 'every allow-list entry still matches a line');
});

t.test('point 16: every policy action is granted and asked, and every action asked is in the policy', async (t) => {
  const policy = await readFile(join(root, 'policies/policy.csv'), 'utf8');
  const granted = new Set([...policy.matchAll(/^p,\s*[\w-]+,\s*([\w:-]+),/gm)].map((m) => m[1]));
  const code = (await linesOf(CALLERS)).map((l) => l.text).join('\n');
  const kinds = new Set(ACTIONS.map((a) => a.slice(0, a.indexOf(':'))));
  const asked = new Set([...code.matchAll(/'([a-z-]+:[a-z-]+)'/g)].map((m) => m[1]!).filter((s) => kinds.has(s.slice(0, s.indexOf(':')))));
  for (const action of ACTIONS) {
    t.ok(granted.has(action), `${action} is granted to some role in policy.csv`);
    t.ok(asked.has(action), `${action} is asked somewhere outside src/authz`);
  }
  const known: ReadonlySet<string> = new Set(ACTIONS);
  t.same([...asked].filter((a) => !known.has(a)), [], 'no action is asked that the policy does not know (it would deny everyone)');
});
