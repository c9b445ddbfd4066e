import { PGlite } from '@electric-sql/pglite';
const t = Date.now();
let db;
try { db = await PGlite.create('/tmp/pgl-kill2'); } catch (e) { console.log('OPEN FAILED', String(e).slice(0, 200)); process.exit(3); }
process.stderr.write(`opened in ${Date.now() - t} ms\n`);
await db.exec(`CREATE TABLE IF NOT EXISTS t (id serial primary key, v int)`);
if (process.argv[2] === 'write') {
  const base = (await db.query('SELECT coalesce(max(v), -1) AS m FROM t')).rows[0].m + 1;
  for (let i = base; ; i++) { await db.query('INSERT INTO t (v) VALUES ($1)', [i]); process.stdout.write(`${i}\n`); }
} else {
  const r = await db.query('SELECT count(*)::int AS n, max(v) AS m FROM t');
  console.log(JSON.stringify(r.rows));
  await db.close();
}
