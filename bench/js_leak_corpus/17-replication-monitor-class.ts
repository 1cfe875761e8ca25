// source: a user-written "Memory Optimization Implementation Guide" for a Node/TypeScript backend (its §3: a setInterval in ReplicationMonitor never cleared, Knex listeners never removed); the shape, not its code
// expect: interval-never-cleared
import knex, { Knex } from 'knex';
export class ReplicationMonitor {
  private db: Knex;
  constructor(url: string) {
    this.db = knex({ client: 'pg', connection: url });
    setInterval(() => this.check(), 5000);
  }
  async check() { await this.db.raw('select pg_last_wal_replay_lsn()'); }
}
