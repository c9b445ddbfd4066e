import { PGlite } from '@electric-sql/pglite';
const t = Date.now();
const db = await PGlite.create('/tmp/pgl-kill', { debug: 0 });
console.log('opened', Date.now() - t);
const r = await db.query('SELECT count(*)::int AS n, max(v) AS m FROM t');
console.log(JSON.stringify(r.rows));
await db.close();
