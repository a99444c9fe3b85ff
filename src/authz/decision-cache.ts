/**
 * Memo of authorization decisions. Casbin scans policy lines on every enforce; the questions asked
 * are few (roles × actions × scopes, agencies × classes × networks) and asked on every request, so
 * each answer is kept until the policy changes. Bounded: when full, the oldest answer is dropped.
 */
export class DecisionCache {
  private readonly decisions = new Map<string, boolean>();

  constructor(private readonly maxEntries = 10_000) {
    if (!Number.isInteger(maxEntries) || maxEntries < 1) throw new Error('maxEntries must be a positive integer');
  }

  get size(): number {
    return this.decisions.size;
  }

  /** The cached answer for `key`, computing and keeping it on a miss. */
  decide(key: string, compute: () => boolean): boolean {
    const cached = this.decisions.get(key);
    if (cached !== undefined) return cached;
    const decision = compute();
    if (this.decisions.size >= this.maxEntries) {
      this.decisions.delete(this.decisions.keys().next().value as string);
    }
    this.decisions.set(key, decision);
    return decision;
  }

  clear(): void {
    this.decisions.clear();
  }
}
