/**
 * Agencies, users and service accounts: who may act, on whose behalf, and who created them.
 * Every account records its creator (谁使用,谁负责) and every change lands in the audit log.
 * @see ../shared/API.md "Authentication", "Agencies", "Users and service accounts"
 */
import type { Agency, ChannelClass, Network, Principal, ServiceAccount, User } from '../core/model.js';
import { ConflictError, type AccessControl, type DocumentStore } from '../core/ports.js';
import type { AuditService } from '../core/audit-service.js';
import { DomainError, conflict, forbidden, notFound, rateLimited, unauthenticated } from '../core/errors.js';
import { newId } from '../core/ids.js';
import { dummyVerify, hashPassword, verifyPassword } from './password.js';
import { signToken, TokenVerifier } from './tokens.js';
import { generateApiKey, hashApiKey } from './api-keys.js';
import { parseAuthorization } from './authorization-header.js';
import type { LoginThrottle } from './login-throttle.js';

export const PLATFORM_AGENCY = 'platform';
export const BOOTSTRAP_ADMIN = 'admin';

export type PublicUser = Omit<User, 'passwordHash' | 'tokenVersion' | 'keptToken'>;
export type PublicServiceAccount = Omit<ServiceAccount, 'keyHash'>;

export const publicUser = ({ passwordHash: _h, tokenVersion: _v, keptToken: _k, ...user }: User): PublicUser => user;
export const publicServiceAccount = ({ keyHash: _k, ...sa }: ServiceAccount): PublicServiceAccount => sa;

export interface AgencyInput {
  id: string;
  name: string;
  networks: Network[];
  classes: ChannelClass[];
  quotas: { forwarding: number; analytics: number };
  canPreempt?: boolean;
}

export interface AccountsOptions {
  store: DocumentStore;
  access: AccessControl;
  audit: AuditService;
  throttle: LoginThrottle;
  tokenSecret: string;
  tokenTtlSeconds: number;
  /** Verified tokens remembered (config `tokenCacheEntries`); 0 checks every token in full every time. */
  tokenCacheEntries: number;
}

/** Someone's access was withdrawn: their live sessions and reservations must end at once. */
export type RevocationListener = (principalId: string, actor: Principal) => Promise<void>;

export class AccountsService {
  private readonly agencies = new Map<string, Agency>();
  private readonly users = new Map<string, User>();
  private readonly usersByName = new Map<string, User>();
  private readonly serviceAccounts = new Map<string, ServiceAccount>();
  private readonly serviceAccountsByKey = new Map<string, ServiceAccount>();
  private readonly revocationListeners: RevocationListener[] = [];

  private readonly tokens: TokenVerifier;

  private constructor(private readonly opts: AccountsOptions) {
    this.tokens = new TokenVerifier(opts.tokenSecret, opts.tokenCacheEntries);
  }

  static async open(opts: AccountsOptions): Promise<AccountsService> {
    const service = new AccountsService(opts);
    for (const agency of await opts.store.all<Agency>('agencies')) service.cacheAgency(agency);
    for (const user of await opts.store.all<User>('users')) service.cacheUser(user);
    for (const sa of await opts.store.all<ServiceAccount>('serviceAccounts')) service.cacheServiceAccount(sa);
    // Another broker changed an account (Redis mode): keep this process's view current.
    opts.store.onRemoteChange(({ collection, doc }) => {
      if (!doc) return;
      if (collection === 'agencies') service.cacheAgency(doc as Agency);
      else if (collection === 'users') service.cacheUser(doc as User);
      else if (collection === 'serviceAccounts') service.cacheServiceAccount(doc as ServiceAccount);
    });
    return service;
  }

  onRevocation(listener: RevocationListener): void {
    this.revocationListeners.push(listener);
  }

  // ------------------------------------------------------------------ bootstrap

  /** The platform agency and its `admin` exist from the first start. Returns the password when it was generated. */
  async bootstrap(adminPassword: string | undefined, generate: () => string): Promise<{ generatedPassword?: string }> {
    const system: Principal = { kind: 'user', id: 'system', name: 'system', role: 'platform-admin', agencyId: PLATFORM_AGENCY };
    if (!this.agencies.has(PLATFORM_AGENCY)) {
      await this.saveAgency({
        id: PLATFORM_AGENCY,
        name: '平台管理',
        networks: ['video', 'police', 'gov', 'interconnect'],
        classes: [1, 2, 3],
        quotas: { forwarding: 3000, analytics: 1000 },
        canPreempt: true,
        createdAt: new Date().toISOString(),
        createdBy: 'system',
      }, { ifAbsent: true }).catch(ignoreConflict);
    }
    if (this.usersByName.has(BOOTSTRAP_ADMIN)) return {};
    const password = adminPassword ?? generate();
    try {
      await this.insertUser(system, PLATFORM_AGENCY, { username: BOOTSTRAP_ADMIN, password, role: 'platform-admin', displayName: '平台管理员' });
    } catch (err) {
      if (err instanceof DomainError && err.code === 'CONFLICT') return {}; // another broker bootstrapped first
      throw err;
    }
    return adminPassword ? {} : { generatedPassword: password };
  }

  // ------------------------------------------------------------------ authentication

  async login(username: string, password: string, address: string): Promise<{ token: string; expiresAt: string; user: PublicUser }> {
    const user = await this.checkPassword(username, password, address, 'auth.login');
    if (user.disabled) {
      await this.auditLogin(username, 'denied', 'account-disabled', user);
      throw unauthenticated('this account is disabled', 'ACCOUNT_DISABLED');
    }
    const { token, expiresAt } = signToken(
      { sub: user.id, role: user.role, agencyId: user.agencyId, ver: user.tokenVersion },
      this.opts.tokenSecret,
      this.opts.tokenTtlSeconds,
    );
    await this.auditLogin(username, 'ok', undefined, user);
    return { token, expiresAt, user: publicUser(user) };
  }

  /**
   * The throttled password check of a login or a password change. The attempt is counted when it
   * arrives (LoginThrottle): one refused there is answered 429 without the password being tried.
   * A wrong password and an unknown user get the same answer, after the same work.
   */
  private async checkPassword(username: string, password: string, address: string, action: 'auth.login' | 'auth.password'): Promise<User> {
    const attempt = await this.opts.throttle.arrive(username, address);
    const user = this.usersByName.get(username);
    if (!attempt.allowed) {
      await this.auditLogin(username, 'denied', 'throttled', user, action);
      throw rateLimited('too many failed attempts, try again later', attempt.retryAfterSeconds);
    }
    const ok = user ? await verifyPassword(password, user.passwordHash) : (await dummyVerify(), false);
    if (!user || !ok) {
      await this.auditLogin(username, 'denied', 'invalid-credentials', user, action);
      await this.opts.throttle.failed(attempt);
      throw unauthenticated('wrong username or password', 'INVALID_CREDENTIALS');
    }
    await this.opts.throttle.succeeded(attempt);
    return user;
  }

  /** `Bearer <token>` for people, `ApiKey <key>` for services; null when no credentials were sent. */
  authenticate(authorization: string | undefined): Principal | null {
    if (!authorization) return null;
    const credentials = parseAuthorization(authorization);
    if (!credentials) throw unauthenticated('use "Authorization: Bearer <token>" or "Authorization: ApiKey <key>"');
    if (credentials.kind === 'bearer') return this.authenticateToken(credentials.token);
    const sa = this.serviceAccountsByKey.get(hashApiKey(credentials.key));
    if (!sa || sa.revoked) throw unauthenticated('invalid API key');
    return { kind: 'service', id: sa.id, name: sa.name, role: 'service', agencyId: sa.agencyId };
  }

  authenticateToken(token: string): Principal {
    const claims = this.tokens.verify(token);
    const user = this.users.get(claims.sub);
    const kept = user?.keptToken?.jti === claims.jti && user.keptToken.version === user.tokenVersion;
    if (!user || (user.tokenVersion !== claims.ver && !kept)) throw unauthenticated('token no longer valid');
    if (user.disabled) throw unauthenticated('this account is disabled', 'ACCOUNT_DISABLED');
    return { kind: 'user', id: user.id, name: user.username, role: user.role, agencyId: user.agencyId };
  }

  /**
   * POST /auth/password: a person changes their own password, proving the current one (throttled
   * and counted like a login, so a stolen token cannot be used to guess it). Every other token of
   * theirs ends (their events sockets close 4401 at the next re-check); the token that asked keeps
   * working, so the console that did it stays signed in. Live sessions are not ended: the person is
   * the same, only other devices are signed out.
   * @see ../shared/API.md "Authentication"
   */
  async changeOwnPassword(principal: Principal, token: string, currentPassword: string, newPassword: string, address: string): Promise<void> {
    if (principal.kind !== 'user') throw forbidden('a service account has no password');
    const user = this.users.get(principal.id);
    if (!user) throw notFound('user');
    await this.checkPassword(user.username, currentPassword, address, 'auth.password');
    const passwordHash = await hashPassword(newPassword);
    // Re-read after the awaits: the token may have ended meanwhile (disabled, reset by an admin).
    this.authenticateToken(token);
    const { jti } = this.tokens.verify(token);
    const latest = this.users.get(user.id)!;
    const tokenVersion = latest.tokenVersion + 1;
    const next: User = { ...latest, passwordHash, tokenVersion, keptToken: { jti, version: tokenVersion } };
    await this.opts.store.put('users', next.id, next);
    this.cacheUser(next);
    await this.auditChange(principal, 'auth.password', `user:${user.id}`, user.agencyId, { otherTokensEnded: true });
  }

  // ------------------------------------------------------------------ agencies

  agency(id: string): Agency | undefined {
    return this.agencies.get(id);
  }

  /** Acts as an existing user from inside the process (demo seeding acts as the bootstrap admin). */
  principalOf(username: string): Principal {
    const user = this.usersByName.get(username);
    if (!user) throw notFound('user');
    return { kind: 'user', id: user.id, name: user.username, role: user.role, agencyId: user.agencyId };
  }

  agencyIds(): string[] {
    return [...this.agencies.keys()].sort();
  }

  listAgencies(principal: Principal): Agency[] {
    this.opts.access.assert(principal, 'agency:read', { agencyId: principal.agencyId });
    const all = [...this.agencies.values()].sort((a, b) => a.id.localeCompare(b.id));
    return all.filter((a) => this.opts.access.can(principal, 'agency:read', { agencyId: a.id }));
  }

  getAgency(principal: Principal, id: string): Agency {
    this.opts.access.assertRole(principal, 'agency:read');
    const agency = this.agencies.get(id);
    if (!agency) throw notFound('agency');
    this.opts.access.assert(principal, 'agency:read', { agencyId: id });
    return agency;
  }

  async createAgency(principal: Principal, input: AgencyInput): Promise<Agency> {
    this.opts.access.assert(principal, 'agency:write', { agencyId: input.id });
    const agency: Agency = {
      id: input.id,
      name: input.name,
      networks: [...new Set(input.networks)],
      classes: [...new Set(input.classes)].sort(),
      quotas: input.quotas,
      canPreempt: input.canPreempt ?? false,
      createdAt: new Date().toISOString(),
      createdBy: principal.id,
    };
    try {
      await this.saveAgency(agency, { ifAbsent: true });
    } catch (err) {
      if (err instanceof ConflictError) throw conflict(`agency ${input.id} exists`);
      throw err;
    }
    await this.opts.access.setAgencyGrants(agency.id, agency.classes, agency.networks);
    await this.auditChange(principal, 'agency.create', `agency:${agency.id}`, agency.id, { classes: agency.classes.join(','), networks: agency.networks.join(',') });
    return agency;
  }

  async patchAgency(principal: Principal, id: string, patch: Partial<Omit<AgencyInput, 'id'>>): Promise<Agency> {
    this.opts.access.assertRole(principal, 'agency:write');
    const current = this.agencies.get(id);
    if (!current) throw notFound('agency');
    this.opts.access.assert(principal, 'agency:write', { agencyId: id });
    const next: Agency = {
      ...current,
      ...(patch.name !== undefined && { name: patch.name }),
      ...(patch.networks && { networks: [...new Set(patch.networks)] }),
      ...(patch.classes && { classes: [...new Set(patch.classes)].sort() }),
      ...(patch.quotas && { quotas: patch.quotas }),
      ...(patch.canPreempt !== undefined && { canPreempt: patch.canPreempt }),
    };
    await this.saveAgency(next);
    if (patch.networks || patch.classes) await this.opts.access.setAgencyGrants(id, next.classes, next.networks);
    await this.auditChange(principal, patch.networks || patch.classes ? 'policy.change' : 'agency.update', `agency:${id}`, id, {
      classes: next.classes.join(','),
      networks: next.networks.join(','),
      quotaForwarding: next.quotas.forwarding,
      quotaAnalytics: next.quotas.analytics,
      canPreempt: next.canPreempt,
    });
    return next;
  }

  // ------------------------------------------------------------------ users

  user(id: string): User | undefined {
    return this.users.get(id);
  }

  listUsers(principal: Principal, agencyId: string): PublicUser[] {
    this.assertAgencyLevel(principal, 'user:read', agencyId);
    return [...this.users.values()].filter((u) => u.agencyId === agencyId).sort(byCreated).map(publicUser);
  }

  async createUser(
    principal: Principal,
    agencyId: string,
    input: { username: string; password: string; role: 'admin' | 'operator'; displayName?: string },
  ): Promise<PublicUser> {
    this.assertAgencyLevel(principal, 'user:write', agencyId);
    const user = await this.insertUser(principal, agencyId, input);
    await this.auditChange(principal, 'user.create', `user:${user.id}`, agencyId, { username: user.username, role: user.role });
    return publicUser(user);
  }

  async patchUser(
    principal: Principal,
    userId: string,
    patch: { displayName?: string; password?: string; role?: 'admin' | 'operator'; disabled?: boolean },
  ): Promise<PublicUser> {
    this.opts.access.assertRole(principal, 'user:write');
    const current = this.users.get(userId);
    if (!current) throw notFound('user');
    this.opts.access.assert(principal, 'user:write', { agencyId: current.agencyId });
    if (current.role === 'platform-admin' && principal.role !== 'platform-admin') throw notFound('user');
    // An agency admin manages its operators; a peer admin (or itself) only a platform-admin may
    // change, else one admin could take over or lock out another (issue 8, point 14). People change
    // their own password through POST /auth/password.
    if (principal.role !== 'platform-admin' && current.role !== 'operator') {
      throw forbidden(userId === principal.id ? 'change your own password with POST /auth/password' : 'only a platform administrator may change an administrator');
    }
    if (patch.role && current.role === 'platform-admin') throw forbidden('the platform administrator keeps its role');
    if (patch.disabled && userId === principal.id) throw forbidden('you cannot disable yourself');
    const credentialsChanged = patch.password !== undefined || (patch.disabled === true && !current.disabled) || (patch.role !== undefined && patch.role !== current.role);
    const next: User = {
      ...current,
      ...(patch.displayName !== undefined && { displayName: patch.displayName }),
      ...(patch.role !== undefined && { role: patch.role }),
      ...(patch.disabled !== undefined && { disabled: patch.disabled }),
      ...(patch.password !== undefined && { passwordHash: await hashPassword(patch.password) }),
      tokenVersion: current.tokenVersion + (credentialsChanged ? 1 : 0),
    };
    await this.opts.store.put('users', next.id, next);
    this.cacheUser(next);
    const changed = Object.keys(patch).filter((k) => k !== 'password' || patch.password !== undefined);
    await this.auditChange(principal, patch.disabled ? 'user.disable' : 'user.update', `user:${userId}`, current.agencyId, { fields: changed.join(',') });
    if (patch.disabled && !current.disabled) for (const listener of this.revocationListeners) await listener(userId, principal);
    return publicUser(next);
  }

  // ------------------------------------------------------------------ service accounts

  listServiceAccounts(principal: Principal, agencyId: string): PublicServiceAccount[] {
    this.assertAgencyLevel(principal, 'service-account:read', agencyId);
    return [...this.serviceAccounts.values()].filter((sa) => sa.agencyId === agencyId).sort(byCreated).map(publicServiceAccount);
  }

  async createServiceAccount(principal: Principal, agencyId: string, name: string): Promise<PublicServiceAccount & { apiKey: string }> {
    this.assertAgencyLevel(principal, 'service-account:write', agencyId);
    const { key, keyHash } = generateApiKey();
    const sa: ServiceAccount = { id: newId('sa'), name, agencyId, createdBy: principal.id, createdAt: new Date().toISOString(), revoked: false, keyHash };
    await this.opts.store.put('serviceAccounts', sa.id, sa, { ifAbsent: true });
    this.cacheServiceAccount(sa);
    await this.auditChange(principal, 'service-account.create', `service-account:${sa.id}`, agencyId, { name });
    return { ...publicServiceAccount(sa), apiKey: key };
  }

  async revokeServiceAccount(principal: Principal, id: string): Promise<void> {
    this.opts.access.assertRole(principal, 'service-account:write');
    const sa = this.serviceAccounts.get(id);
    if (!sa || sa.revoked) throw notFound('service account');
    this.opts.access.assert(principal, 'service-account:write', { agencyId: sa.agencyId });
    const next = { ...sa, revoked: true };
    await this.opts.store.put('serviceAccounts', id, next);
    this.cacheServiceAccount(next);
    await this.auditChange(principal, 'service-account.revoke', `service-account:${id}`, sa.agencyId, { name: sa.name });
    for (const listener of this.revocationListeners) await listener(id, principal);
  }

  // ------------------------------------------------------------------ internals

  /**
   * Agency-wide actions (list or create an agency's users): a role that may not take them even in
   * its own agency gets 403; one that may, asking about another agency, gets 404.
   */
  private assertAgencyLevel(principal: Principal, action: string, agencyId: string) {
    if (!this.opts.access.can(principal, action, { agencyId: principal.agencyId })) throw forbidden();
    if (!this.agencies.has(agencyId)) throw notFound('agency');
    this.opts.access.assert(principal, action, { agencyId });
  }

  private async insertUser(
    principal: Principal,
    agencyId: string,
    input: { username: string; password: string; role: User['role']; displayName?: string },
  ): Promise<User> {
    if (this.usersByName.has(input.username)) throw conflict(`username ${input.username} is taken`);
    const user: User = {
      id: newId('u'),
      username: input.username,
      role: input.role,
      agencyId,
      displayName: input.displayName ?? input.username,
      disabled: false,
      createdBy: principal.id,
      createdAt: new Date().toISOString(),
      passwordHash: await hashPassword(input.password),
      tokenVersion: 1,
    };
    try {
      await this.opts.store.put('users', user.id, user, { ifAbsent: true, unique: { index: 'username', key: user.username } });
    } catch (err) {
      if (err instanceof ConflictError) throw conflict(`username ${input.username} is taken`);
      throw err;
    }
    this.cacheUser(user);
    return user;
  }

  private async saveAgency(agency: Agency, options?: { ifAbsent?: boolean }) {
    await this.opts.store.put('agencies', agency.id, agency, options);
    this.cacheAgency(agency);
  }

  private cacheAgency(agency: Agency) {
    this.agencies.set(agency.id, agency);
  }

  private cacheUser(user: User) {
    const previous = this.users.get(user.id);
    if (previous && previous.username !== user.username) this.usersByName.delete(previous.username);
    this.users.set(user.id, user);
    this.usersByName.set(user.username, user);
  }

  private cacheServiceAccount(sa: ServiceAccount) {
    this.serviceAccounts.set(sa.id, sa);
    if (sa.revoked) this.serviceAccountsByKey.delete(sa.keyHash);
    else this.serviceAccountsByKey.set(sa.keyHash, sa);
  }

  private async auditLogin(username: string, outcome: 'ok' | 'denied', reason?: string, user?: User, action: 'auth.login' | 'auth.password' = 'auth.login') {
    await this.opts.audit.record({
      actor: user ? { id: user.id, role: user.role, agencyId: user.agencyId } : { id: `unknown:${username.slice(0, 64)}`, role: 'system', agencyId: 'unknown' },
      action,
      target: `user:${user?.id ?? 'unknown'}`,
      outcome,
      ...(reason && { reason }),
    });
  }

  private async auditChange(principal: Principal, action: string, target: string, agencyId: string, details: Record<string, string | number | boolean>) {
    await this.opts.audit.record({
      actor: { id: principal.id, role: principal.role, agencyId: principal.agencyId },
      action,
      target,
      outcome: 'ok',
      details: { agencyId, ...details },
    });
  }
}

const byCreated = (a: { createdAt: string }, b: { createdAt: string }) => a.createdAt.localeCompare(b.createdAt);

function ignoreConflict(err: unknown) {
  if (!(err instanceof ConflictError)) throw err;
}
