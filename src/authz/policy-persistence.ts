/**
 * Agency grants kept in the DocumentStore, one document per agency: a broker writes only the
 * agencies whose grants it changed, so two brokers editing different agencies at once do not
 * overwrite each other's change with a stale copy.
 */
import type { DocumentStore } from '../core/ports.js';
import type { PolicyPersistence } from './authorizer.js';

interface AgencyGrants {
  rows: string[][];
}

export function documentPolicyPersistence(store: DocumentStore): PolicyPersistence {
  /** What this process last read or wrote, per agency (JSON), to find what changed. */
  const known = new Map<string, string>();
  const byAgency = (rows: string[][]) => {
    const groups = new Map<string, string[][]>();
    for (const row of rows) {
      const agency = row[1] ?? '';
      groups.set(agency, [...(groups.get(agency) ?? []), row]);
    }
    return groups;
  };
  return {
    async load() {
      const docs = await store.all<AgencyGrants & { agencyId: string }>('policy');
      if (docs.length === 0) return null;
      known.clear();
      for (const doc of docs) known.set(doc.agencyId, JSON.stringify(doc.rows));
      return docs.flatMap((doc) => doc.rows);
    },
    async save(rows) {
      const groups = byAgency(rows);
      const changed = [...groups].filter(([agency, agencyRows]) => known.get(agency) !== JSON.stringify(agencyRows));
      const removed = [...known.keys()].filter((agency) => !groups.has(agency));
      await store.putMany(
        'policy',
        [...changed.map(([agencyId, agencyRows]) => ({ id: agencyId, doc: { agencyId, rows: agencyRows } })), ...removed.map((agencyId) => ({ id: agencyId, doc: { agencyId, rows: [] } }))],
      );
      for (const [agency, agencyRows] of changed) known.set(agency, JSON.stringify(agencyRows));
      for (const agency of removed) known.set(agency, '[]');
    },
  };
}
