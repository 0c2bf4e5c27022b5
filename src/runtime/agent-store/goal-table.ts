/**
 * Goals: one JSON body per goal id, versioned.
 * Synchronous SQL, no events and no policy: callers compose these inside `storage.tx()`.
 */
import type { Db } from '../storage/db.js';
import type { GoalRow } from './row-types.js';

export class GoalTable {
  private readonly q;

  constructor(private readonly db: Db) {
    const p = (sql: string) => db.prepare(sql);
    this.q = {
      goalList: p('SELECT goal_id, body, version, created_at, updated_at FROM goals WHERE agent_id = ? ORDER BY goal_id'),
      goalOne: p('SELECT goal_id, body, version, created_at, updated_at FROM goals WHERE agent_id = ? AND goal_id = ?'),
      goalPut: p(`INSERT INTO goals (agent_id, goal_id, body, version, created_at, updated_at) VALUES (?, ?, ?, 1, ?, ?)
        ON CONFLICT (agent_id, goal_id) DO UPDATE SET body = excluded.body, version = version + 1, updated_at = excluded.updated_at
        RETURNING goal_id, body, version, created_at, updated_at`),
      goalDelete: p('DELETE FROM goals WHERE agent_id = ? AND goal_id = ?'),
    };
  }

  goalList(agentId: string): GoalRow[] {
    return this.q.goalList.all(agentId) as GoalRow[];
  }

  goalOne(agentId: string, goalId: string): GoalRow | undefined {
    return this.q.goalOne.get(agentId, goalId) as GoalRow | undefined;
  }

  goalPut(agentId: string, goalId: string, body: string, now: number): GoalRow {
    return this.q.goalPut.get(agentId, goalId, body, now, now) as GoalRow;
  }

  goalImport(agentId: string, row: GoalRow): void {
    this.db
      .prepare('INSERT OR REPLACE INTO goals (agent_id, goal_id, body, version, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)')
      .run(agentId, row.goal_id, row.body, row.version, row.created_at, row.updated_at);
  }

  goalDelete(agentId: string, goalId: string): boolean {
    return this.q.goalDelete.run(agentId, goalId).changes === 1;
  }
}
