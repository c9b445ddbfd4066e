/**
 * The seam below the fleet's store: a SQL connection. The embedded database (PGlite, in process) and a PostgreSQL
 * server implement it alike, and the store speaks only portable PostgreSQL through it, so the same schema and
 * queries serve one machine and many.
 */
export type Row = Record<string, unknown>;

export interface SqlClient {
  /** For messages: where the data lives. */
  readonly description: string;
  query<T extends Row = Row>(sql: string, params?: unknown[]): Promise<T[]>;
  /** Runs `fn` in one transaction: all of its writes or none. */
  transaction<T>(fn: (tx: SqlClient) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}
