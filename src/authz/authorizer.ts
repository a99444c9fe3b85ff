/**
 * The one place authorization is decided (STYLE.md 7): Casbin over policies/model.conf and
 * policies/policy.csv, deny by default, with a decision cache that every policy change clears.
 *
 * Two questions, two sections of one model (see the comment at the top of model.conf):
 *  - function level, `can` / `assert`: may this role take this action on an object that is the
 *    caller's own (self), its agency's (own) or another agency's (any)?
 *  - agency grants, `canSee` / `visibility`: which channel classes and networks an agency may see.
 *
 * The function-level lines are code (policy.csv ships with the release). Agency grants are data:
 * they live in the policy store (`PolicyPersistence`); policy.csv only gives the defaults used while
 * the store holds none.
 */
import { readFile } from 'node:fs/promises';
import { newEnforceContext, newEnforcer, newModelFromString, StringAdapter, type Enforcer } from 'casbin';
import { badRequest, forbidden, notFound } from '../core/errors.js';
import { CHANNEL_CLASSES, NETWORKS, type Principal } from '../core/model.js';
import type { AccessControl, AccessTarget, Visibility } from '../core/ports.js';
import { DecisionCache } from './decision-cache.js';
import {
  ACTIONS,
  GRANT_TYPE,
  SCOPES,
  WILDCARD,
  checkGrantRows,
  grantRowsFor,
  parsePolicyCsv,
  toCsv,
  type PolicyRow,
  type Scope,
} from './policy-rows.js';

/** Where agency grants are kept (the lead backs it with the DocumentStore 'policy' collection). */
export interface PolicyPersistence {
  /** All grant rows (`['p2', agency, 'class'|'network', value]`), or null when none were ever saved. */
  load(): Promise<string[][] | null>;
  /** Replaces all grant rows. */
  save(agencyGrants: string[][]): Promise<void>;
}

export interface AuthorizerOptions {
  modelPath: string;
  policyPath: string;
  persistence: PolicyPersistence;
  /** Bound of the decision cache (default 10,000 answers). */
  cacheSize?: number;
}

/**
 * `local`: this process changed the grants (a watcher publishes it to the other brokers).
 * `reload`: the grants were re-read from the store (do not publish again, or brokers would echo).
 */
export type PolicyChange = { source: 'local'; agencyId: string } | { source: 'reload' };
export type PolicyChangeListener = (change: PolicyChange) => void;

const GRANTS = newEnforceContext('2');
const KNOWN_ACTIONS: ReadonlySet<string> = new Set(ACTIONS);
const SCOPES_WIDEST_FIRST: readonly Scope[] = [...SCOPES].reverse();

/**
 * What the target is to the caller. Another agency's object, or one whose agency is not given, is
 * `any`; so a target left empty asks for platform-wide rights (deny by default for everyone else).
 */
export function scopeOf(principal: Principal, target: AccessTarget): Scope {
  if (target.agencyId !== undefined && target.agencyId !== principal.agencyId) return 'any';
  if (target.ownerId !== undefined && target.ownerId === principal.id) return 'self';
  return target.agencyId === principal.agencyId ? 'own' : 'any';
}

/** The word used in a 404 for an action's object, the same word a route uses for a missing one. */
function objectName(action: string): string {
  const kind = action.slice(0, action.indexOf(':'));
  if (kind === 'analytics') return 'reservation';
  if (kind === 'service-account') return 'service account';
  return kind;
}

async function buildEnforcer(modelText: string, functionRows: PolicyRow[], grantRows: PolicyRow[]): Promise<Enforcer> {
  return newEnforcer(newModelFromString(modelText), new StringAdapter(toCsv([...functionRows, ...grantRows])));
}

export class Authorizer implements AccessControl {
  private readonly cache: DecisionCache;
  private readonly listeners: PolicyChangeListener[] = [];
  /** Policy changes run one at a time, so two updates never save over each other in this process. */
  private updates: Promise<unknown> = Promise.resolve();
  /** visibility() by agency, for the current grant rows (one per agency that asked; agencies are few). */
  private readonly visibilities = new Map<string, Visibility>();
  /** Grant changes waiting for the next policy update (see setAgencyGrants). */
  private queuedGrants?: Array<{ agencyId: string; rows: PolicyRow[]; resolve: () => void; reject: (err: Error) => void }>;

  private constructor(
    private readonly modelText: string,
    private readonly functionRows: PolicyRow[],
    private readonly defaultGrants: PolicyRow[],
    private readonly persistence: PolicyPersistence,
    private enforcer: Enforcer,
    private grantRows: PolicyRow[],
    cacheSize: number,
  ) {
    this.cache = new DecisionCache(cacheSize);
  }

  static async create(options: AuthorizerOptions): Promise<Authorizer> {
    const [modelText, policyText] = await Promise.all([readFile(options.modelPath, 'utf8'), readFile(options.policyPath, 'utf8')]);
    const fileRows = parsePolicyCsv(policyText, options.policyPath);
    const functionRows = fileRows.filter((row) => row[0] !== GRANT_TYPE);
    const defaultGrants = fileRows.filter((row) => row[0] === GRANT_TYPE);
    const stored = await options.persistence.load();
    const grantRows = stored === null ? defaultGrants : checkGrantRows(stored, 'policy store');
    const enforcer = await buildEnforcer(modelText, functionRows, grantRows);
    return new Authorizer(modelText, functionRows, defaultGrants, options.persistence, enforcer, grantRows, options.cacheSize ?? 10_000);
  }

  // ------------------------------------------------------------------ function level

  /** May `principal` take `action` on `target`? Unknown actions are denied. */
  can(principal: Principal, action: string, target: AccessTarget): boolean {
    return this.allows(principal.role, action, scopeOf(principal, target));
  }

  /** May this role take this action on anything at all (its own objects at least)? */
  mayEver(role: string, action: string): boolean {
    // `self` is covered by every grant (self -> own -> any), so it asks "is there any grant".
    return this.allows(role, action, 'self');
  }

  /**
   * Throws unless `can`. The status tells the caller only what its role already implies:
   *  - 403 FORBIDDEN when the role may never take the action, whatever the object;
   *  - 404 NOT_FOUND when the role may take it but not on this object (another agency's, or another
   *    person's where the role is limited to its own). API.md: objects the caller may not see
   *    answer exactly like objects that do not exist.
   * @see ../../shared/API.md "Conventions"
   */
  assert(principal: Principal, action: string, target: AccessTarget): void {
    if (this.can(principal, action, target)) return;
    this.assertRole(principal, action);
    throw notFound(objectName(action));
  }

  /**
   * The widest scope at which the role may take `action`: what a list of its objects covers
   * (`any`: every agency's, `own`: the caller's agency's, `self`: the caller's own). Throws 403 when
   * the role may never take it.
   */
  reach(principal: Principal, action: string): Scope {
    this.assertRole(principal, action);
    return SCOPES_WIDEST_FIRST.find((scope) => this.allows(principal.role, action, scope)) ?? 'self';
  }

  /**
   * For a list the caller asked to be this wide ({} every agency's, {agencyId} its agency's, with
   * ownerId its own): 403 unless the role reaches that far. A list's width is no secret (the role
   * tells it), so this never answers 404.
   */
  assertList(principal: Principal, action: string, target: AccessTarget): void {
    if (!this.can(principal, action, target)) throw forbidden(`role ${principal.role} may not ${action} that widely`);
  }

  /**
   * The 403 half of `assert`. Call it before looking an object up, so that a role that may never act
   * gets 403 whether or not the object exists (otherwise 404 vs 403 would reveal existence).
   */
  assertRole(principal: Principal, action: string): void {
    if (!this.mayEver(principal.role, action)) throw forbidden(`role ${principal.role} may not ${action}`);
  }

  private allows(role: string, action: string, scope: Scope): boolean {
    if (!KNOWN_ACTIONS.has(action)) return false;
    return this.cache.decide(`f\u0000${role}\u0000${action}\u0000${scope}`, () => this.enforcer.enforceSync(role, action, scope));
  }

  // ------------------------------------------------------------------ agency grants

  /** May `agencyId` see a channel of this class on this network (both must be granted)? */
  canSee(agencyId: string, channel: { class: number; network: string }): boolean {
    const key = `s\u0000${agencyId}\u0000${channel.class}\u0000${channel.network}`;
    return this.cache.decide(
      key,
      () =>
        this.enforcer.enforceSync(GRANTS, agencyId, 'class', String(channel.class)) &&
        this.enforcer.enforceSync(GRANTS, agencyId, 'network', channel.network),
    );
  }

  /** What `agencyId` may see, for catalog index queries: 'all', or the classes and networks granted. */
  visibility(agencyId: string): Visibility {
    // Asked by every catalog query; the rows change only in swap(), which forgets these.
    let known = this.visibilities.get(agencyId);
    if (known === undefined) {
      known = this.visibilityOfRows(agencyId);
      this.visibilities.set(agencyId, known);
    }
    return known;
  }

  private visibilityOfRows(agencyId: string): Visibility {
    const classes = new Set<string>();
    const networks = new Set<string>();
    for (const [, agency, kind, value] of this.grantRows) {
      if (agency !== agencyId) continue;
      (kind === 'class' ? classes : networks).add(value);
    }
    if (classes.has(WILDCARD) && networks.has(WILDCARD)) return 'all';
    return Object.freeze({
      classes: Object.freeze(CHANNEL_CLASSES.filter((c) => classes.has(WILDCARD) || classes.has(String(c)))),
      networks: Object.freeze(NETWORKS.filter((n) => networks.has(WILDCARD) || networks.has(n))),
    }) as Visibility;
  }

  /**
   * Replaces what an agency may see. Resolves once the store has it and this process decides with it;
   * if the store refuses, nothing changes here and the error propagates (Redis down → 503).
   */
  setAgencyGrants(agencyId: string, classes: number[], networks: string[]): Promise<void> {
    let rows: PolicyRow[];
    try {
      rows = grantRowsFor(agencyId, classes, networks);
    } catch (err) {
      return this.serialized(async () => {
        throw badRequest(`invalid agency grants: ${(err as Error).message}`);
      });
    }
    return new Promise<void>((resolve, reject) => {
      // Changes that queue up behind a running one are applied together: one enforcer build and one save for
      // all of them (ten agencies created at once cost one, not ten), each still resolved once it is in force.
      const starting = this.queuedGrants === undefined;
      (this.queuedGrants ??= []).push({ agencyId, rows, resolve, reject });
      if (!starting) return;
      void this.serialized(async () => {
        const batch = this.queuedGrants!;
        this.queuedGrants = undefined;
        try {
          let next = this.grantRows;
          for (const change of batch) next = [...next.filter((row) => row[1] !== change.agencyId), ...change.rows];
          const enforcer = await buildEnforcer(this.modelText, this.functionRows, next);
          await this.persistence.save(next.map((row) => [...row]));
          this.enforcer = enforcer;
          this.grantRows = next;
          this.cache.clear();
          this.visibilities.clear();
        } catch (err) {
          for (const change of batch) change.reject(err as Error);
          return;
        }
        for (const change of batch) {
          try {
            this.tell({ source: 'local', agencyId: change.agencyId });
            change.resolve();
          } catch (err) {
            change.reject(err as Error);
          }
        }
      });
    });
  }

  /** Re-reads the grants from the store (another broker changed them). */
  reload(): Promise<void> {
    return this.serialized(async () => {
      const stored = await this.persistence.load();
      const next = stored === null ? this.defaultGrants : checkGrantRows(stored, 'policy store');
      const enforcer = await buildEnforcer(this.modelText, this.functionRows, next);
      this.swap(enforcer, next, { source: 'reload' });
    });
  }

  /**
   * Called after every applied change. Listeners run synchronously after the new policy is in
   * force; an error thrown by one reaches the caller of setAgencyGrants / reload. Returns an
   * unsubscribe function.
   */
  onChange(listener: PolicyChangeListener): () => void {
    this.listeners.push(listener);
    return () => {
      const index = this.listeners.indexOf(listener);
      if (index >= 0) this.listeners.splice(index, 1);
    };
  }

  private swap(enforcer: Enforcer, grantRows: PolicyRow[], change: PolicyChange): void {
    this.enforcer = enforcer;
    this.grantRows = grantRows;
    this.cache.clear();
    this.visibilities.clear();
    this.tell(change);
  }

  private tell(change: PolicyChange): void {
    for (const listener of [...this.listeners]) listener(change);
  }

  private serialized(task: () => Promise<void>): Promise<void> {
    const run = this.updates.then(task, task);
    this.updates = run.catch(() => undefined);
    return run;
  }
}
