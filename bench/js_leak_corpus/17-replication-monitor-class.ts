// source: shared/seeds/004 (§3: setInterval in ReplicationMonitor not cleaned up, Knex listeners never removed)
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
