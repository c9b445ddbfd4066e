/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
// The fleet dashboard in a real browser (Debian's chromium through puppeteer-core, nothing downloaded), over HTTPS on
// a non-loopback listener, for a fleet of three real images: signing in, every page's content, a live build log, the
// base coverage going from 0 to 100 % while a run-image push is rebased, the one action and its token, and hostile
// text from images and logs shown as text. Screenshots go to test-artifacts/dashboard/ (STRATA_TEST_ARTIFACTS).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import https from 'node:https';
import { join } from 'node:path';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { PROJECT_ROOT } from '../../src/version.js';
import { freePort, runOk, tempDir, until } from '../harness/proc.js';
import { startRegistry, type TestRegistry } from '../harness/registry.js';
import { startFaultProxy } from '../harness/faultproxy.js';
import { fleetWorld, type FleetWorld } from '../harness/fleet.js';
import { STRATA } from '../harness/probe.js';

const ADMIN = 'admin-dash-0123456789abcdef';
const READ = 'read-dash-0123456789abcdef';
const ARTIFACTS = process.env.STRATA_TEST_ARTIFACTS ? join(process.env.STRATA_TEST_ARTIFACTS, 'dashboard') : join(PROJECT_ROOT, 'test-artifacts', 'dashboard');
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

// Planted in the log, an SBOM, an image label and (refused) an env name; any of them run as markup sets window.__pwned.
const HOSTILE_LOG = '<script>window.__pwned=1</script> "><img src=x onerror="window.__pwned=2">';
const HOSTILE_LABEL = '<script>window.__pwned=3</script>';
const HOSTILE_PACKAGE = '"><img src=x onerror=window.__pwned=4>';
const ENV_VALUE = 'env-value-never-rendered-5f2c';

const BUILD = `echo '${HOSTILE_LOG}'
if busybox grep -q SLOW /workspace/app.txt; then for i in 1 2 3 4 5 6; do echo "slow step $i"; busybox sleep 1; done; fi
L="$1"
mkdir -p "$L/content"
cat /workspace/app.txt > "$L/content/app.txt"
printf '[types]\\nlaunch = true\\n' > "$L/content.toml"
cat > "$L/content.sbom.cdx.json" <<'JSON'
{"bomFormat":"CycloneDX","specVersion":"1.4","components":[{"name":"left-pad","version":"1.3.0","licenses":[{"license":{"id":"MIT"}}]},{"name":"${HOSTILE_PACKAGE.replace(/"/g, '\\"')}","version":"6.6.6"}]}
JSON
cat > "$L/launch.toml" <<'TOML'
[[labels]]
key = "org.example.note"
value = "${HOSTILE_LABEL}"
[[processes]]
type = "web"
command = ["cat", "/layers/content/app.txt"]
default = true
TOML`;

const s = {} as { w: FleetWorld; reg: TestRegistry; slow: boolean; port: number; serve: ChildProcess; log: string; ca: Buffer; browser: Browser; base: string; cleanup: () => Promise<void> };

function serveLog(): string {
  return s.log.slice(-3000);
}

/** A call to the fleet's TCP listener, trusting its test certificate. */
function call(method: string, path: string, token?: string): Promise<{ status: number; body: string; headers: Record<string, string | string[] | undefined> }> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port: s.port, method, path, ca: s.ca, headers: token ? { authorization: `Bearer ${token}` } : {} }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

interface ImageRow {
  name: string;
  latestBuild?: { number: number; status: string };
  runImage?: string;
}

const images = async (): Promise<ImageRow[]> => JSON.parse((await call('GET', '/v1/images', READ)).body) as ImageRow[];

async function shot(page: Page, name: string): Promise<void> {
  await mkdir(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

/** A page that fails the test on any script error or CSP violation it reports. */
async function newPage(): Promise<Page & { problems: string[] }> {
  const page = (await s.browser.newPage()) as Page & { problems: string[] };
  page.problems = [];
  page.on('pageerror', (err) => page.problems.push(`pageerror: ${String(err)}`));
  page.on('console', (m) => {
    if (m.type() === 'error') page.problems.push(`console: ${m.text()}`);
  });
  await page.setViewport({ width: 1280, height: 900 });
  return page;
}

async function signIn(page: Page): Promise<void> {
  await page.goto(`${s.base}/`);
  if (!page.url().includes('/signin')) return;
  await page.type('input[name=token]', READ);
  await Promise.all([page.waitForNavigation(), page.click('form.signin button')]);
}

/** Nothing planted ran, and no element came from planted markup. */
async function assertInert(page: Page): Promise<void> {
  assert.equal(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned), undefined, 'planted markup ran');
  assert.equal(await page.evaluate(() => document.querySelectorAll('img, main script:not([type="application/json"])').length), 0, 'planted markup became elements');
}

before(async () => {
  const t = await tempDir('strata-dash-');
  s.port = await freePort();
  s.reg = await startRegistry();
  // The fleet reaches the registry through a proxy that can make it distant, so a rebase wave lasts long enough to watch.
  s.slow = false;
  const proxy = await startFaultProxy(s.reg.host, () => (s.slow ? 'slow' : undefined));
  s.cleanup = async () => {
    await proxy.stop();
    await s.reg.stop();
    await t.cleanup();
  };
  const w = await fleetWorld(t.path, proxy.host);
  s.w = w;
  await w.pushBuildpack('hello', 'test/hello', '1.0.0', '[ -f app.txt ]', BUILD, 'sbom-formats = ["application/vnd.cyclonedx+json"]');
  await w.pushBuildpack('other', 'test/other', '1.0.0', '[ -f other.txt ]', 'true');
  await writeFile(join(t.path, 'tokens'), `admin ${ADMIN}\nread ${READ}\n`);
  // A certificate for 127.0.0.1, made by openssl as an operator would.
  await runOk('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(t.path, 'key.pem'), '-out', join(t.path, 'cert.pem')]);
  s.ca = await readFile(join(t.path, 'cert.pem'));
  const repos = await Promise.all(['app-1', 'app-2', 'app-3'].map((n) => w.repo(n, { 'app.txt': `${n} v1` })));
  const yaml = w.yaml(repos.map((repo, i) => ({ name: `app-${i + 1}`, repo })));
  await writeFile(join(t.path, 'fleet.yaml'), yaml.replace(/(name: app-1}\nspec:\n)/, `$1  build:\n    env:\n    - {name: NOTE, value: ${ENV_VALUE}}\n`));
  s.log = '';
  // Not loopback: every page needs a sign-in, over TLS. --rebases 1 lets the coverage be watched as it climbs.
  s.serve = spawn(STRATA, ['fleet', 'serve', '--listen', `0.0.0.0:${s.port}`, '--host-name', '127.0.0.1', '--tls-cert', join(t.path, 'cert.pem'), '--tls-key', join(t.path, 'key.pem'), '--token-file', join(t.path, 'tokens'), '--poll-interval', '1h', '--rebases', '1'], { env: w.env, stdio: ['ignore', 'pipe', 'pipe'] });
  s.serve.stdout!.on('data', (c: Buffer) => (s.log += c.toString()));
  s.serve.stderr!.on('data', (c: Buffer) => (s.log += c.toString()));
  await until('fleet serve', async () => (s.log.includes('API on') ? true : undefined), 30_000, serveLog);
  assert.match(s.log, new RegExp(`https://0\\.0\\.0\\.0:${s.port}`));
  s.base = `https://127.0.0.1:${s.port}`;
  const applied = await w.strata(['fleet', 'apply', '-f', join(t.path, 'fleet.yaml')]);
  assert.equal(applied.code, 0, applied.stderr);
  await until('three first builds', async () => ((await images()).filter((i) => i.latestBuild?.status === 'succeeded').length === 3 ? true : undefined), 240_000, serveLog);
  s.browser = await puppeteer.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--ignore-certificate-errors', '--disable-gpu', '--disable-dev-shm-usage'] });
});

after(async () => {
  await s.browser?.close().catch(() => undefined);
  s.serve?.kill('SIGKILL');
  await s.cleanup?.();
});

test('signing in: pages send a browser to a sign-in page; a wrong token is refused; a read token sets a Secure, HTTP-only cookie', { timeout: 60_000 }, async () => {
  const page = await newPage();
  await page.goto(`${s.base}/images/default/app-2`);
  assert.match(page.url(), /\/signin\?next=%2Fimages%2Fdefault%2Fapp-2$/);
  await page.type('input[name=token]', 'not-a-token');
  await Promise.all([page.waitForNavigation(), page.click('form.signin button')]);
  assert.match(await page.$eval('main', (m) => m.textContent ?? ''), /not one of this fleet's/);
  assert.equal((await page.cookies()).length, 0);
  await page.type('input[name=token]', READ);
  await Promise.all([page.waitForNavigation(), page.click('form.signin button')]);
  assert.equal(new URL(page.url()).pathname, '/images/default/app-2');
  const [c] = await page.cookies();
  assert.ok(c && c.name === 'strata_session' && c.httpOnly && c.secure && c.sameSite === 'Strict', JSON.stringify(c));
  assert.ok(!c.value.includes(READ), 'the cookie is no token');
  // The cookie opens pages, never the JSON routes: those want a bearer token.
  assert.equal(await page.evaluate(async () => (await fetch('/api/images')).status), 401);
  // The browser reports the two refusals above, and nothing else.
  assert.deepEqual(page.problems.map((p) => p.replace(/^.*status of (\d+).*$/, '$1')), ['401', '401']);
  // A forged Host (DNS rebinding) gets nothing, signed in or not.
  const forged = await new Promise<number>((resolve, reject) => {
    https.request({ host: '127.0.0.1', port: s.port, path: '/', ca: s.ca, servername: '127.0.0.1', headers: { host: 'evil.example', cookie: `strata_session=${c.value}` } }, (res) => resolve(res.statusCode ?? 0)).on('error', reject).end();
  });
  assert.equal(forged, 421);
  await page.close();
});

test('the fleet page: every image with readiness, digests, builder, run image and last build; base coverage; charts; no inline script', { timeout: 60_000 }, async () => {
  const res = await call('GET', '/');
  assert.equal(res.status, 303, 'not signed in');
  const page = await newPage();
  await signIn(page);
  const text = await page.$eval('main', (m) => m.textContent ?? '');
  assert.match(text, /3 images · 3 ready · 0 building · 0 failed/);
  const rows = await page.$$eval('table.images tbody tr', (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent?.trim() ?? '')));
  assert.deepEqual(rows.map((r) => r[0]), ['default/app-1', 'default/app-2', 'default/app-3']);
  for (const r of rows) {
    assert.equal(r[1], 'True');
    assert.match(r[2]!, /^[0-9a-f]{12}$/, 'digest');
    assert.equal(r[3], 'ClusterBuilder builder');
    assert.match(r[4]!, /^[0-9a-f]{12}$/, 'run image digest');
    assert.equal(r[5], 'CONFIG');
  }
  assert.match(text, /3 of 3 images on the current run image/);
  assert.equal(await page.$eval('progress.cov-bar', (p) => (p as HTMLProgressElement).value), 3);
  // uPlot drew the two history charts from the page's JSON data.
  await page.waitForSelector('#chart-per-hour .uplot canvas');
  await page.waitForSelector('#chart-durations .uplot canvas');
  // Filter and sort are plain links and forms.
  await page.goto(`${s.base}/?q=app-2`);
  assert.deepEqual(await page.$$eval('table.images tbody tr td:first-child', (tds) => tds.map((td) => td.textContent)), ['default/app-2']);
  await page.goto(`${s.base}/`);
  await shot(page, 'fleet');
  // A phone: nothing wider than the screen but the tables, which scroll inside their box.
  await page.setViewport({ width: 390, height: 844, isMobile: true, deviceScaleFactor: 2 });
  await page.reload();
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1), 'the page fits a phone');
  await shot(page, 'fleet-phone');
  assert.deepEqual(page.problems, []);
  const headers = (await call('GET', '/assets/dashboard.js')).headers;
  assert.match(String(headers['content-security-policy']), /script-src 'self'/);
  // The server's HTML (not the DOM uPlot styles through the CSSOM): no inline script, handler or style.
  assert.doesNotMatch(await page.evaluate(async () => (await fetch('/')).text()), /<script>|onerror=|style=/);
  await page.close();
});

test('a running build: its log streams into the page live, hostile lines shown as text, until it ends', { timeout: 180_000 }, async () => {
  await s.w.commit('app-1', { 'app.txt': 'SLOW app-1 v2' });
  assert.equal((await s.w.strata(['fleet', 'reconcile'])).code, 0);
  await until('app-1 #2 to run its slow steps', async () => {
    const r = await call('GET', '/v1/builds/default/app-1/2/log', READ);
    return r.status === 200 && r.body.includes('slow step 1') ? true : undefined;
  }, 120_000, serveLog);
  const page = await newPage();
  await signIn(page);
  await page.goto(`${s.base}/images/default/app-1/builds/2`);
  const first = await page.$eval('#log', (l) => l.textContent ?? '');
  assert.ok(!first.includes('slow step 6'), 'the page opened before the build ended');
  assert.ok(await page.$('pre#log[data-stream]'), 'a running build is streamed');
  await page.waitForFunction(() => (document.getElementById('log')?.textContent ?? '').includes('slow step 4'), { timeout: 60_000 });
  await shot(page, 'build-live');
  await page.waitForFunction(() => document.getElementById('log')?.dataset.ended === 'succeeded', { timeout: 60_000 });
  const log = await page.$eval('#log', (l) => l.textContent ?? '');
  for (let i = 1; i <= 6; i++) assert.equal(log.split(`slow step ${i}\n`).length, 2, `step ${i} once in:\n${log}`);
  assert.ok(log.includes(HOSTILE_LOG), 'the hostile line as text');
  assert.equal(await page.$eval('h2 .badge', (b) => b.textContent), 'succeeded');
  await assertInert(page);
  await page.reload();
  assert.match(await page.$eval('dl.facts', (d) => d.textContent ?? ''), /StatussucceededKindbuildReasonsCOMMIT/);
  assert.ok(!(await page.$('pre#log[data-stream]')), 'a finished build is not streamed');
  await shot(page, 'build');
  assert.deepEqual(page.problems, []);
  await page.close();
});

test('the image page: why each build ran and what changed, the layer diff, the SBOM, labels and env names, all as text', { timeout: 60_000 }, async () => {
  const page = await newPage();
  await signIn(page);
  await page.goto(`${s.base}/images/default/app-1`);
  const rows = await page.$$eval('table.builds tbody tr', (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent?.trim() ?? '')));
  assert.equal(rows[0]![0], '#2');
  assert.equal(rows[0]![2], 'COMMIT');
  assert.match(rows[0]![3]!, /^COMMIT: [0-9a-f]{40} → [0-9a-f]{40}$/);
  assert.equal(rows[1]![0], '#1');
  assert.equal(rows[1]![2], 'CONFIG');
  // #1 → #2: the app and the buildpack's layer changed; the run image and the launcher were reused, not uploaded.
  const layers = await page.$$eval('table.layers tbody tr', (trs) => trs.map((tr) => `${tr.className}: ${tr.querySelector('td')?.textContent}`));
  assert.ok(layers.includes('changed: app: app'), layers.join('\n'));
  assert.ok(layers.includes('changed: buildpack: content'), layers.join('\n'));
  assert.ok(layers.includes('reused: launcher: launcher'), layers.join('\n'));
  assert.ok(layers.some((l) => /^reused: run image: layer \d+$/.test(l)), layers.join('\n'));
  const sbom = await page.$$eval('table.sbom tbody tr', (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent)));
  assert.deepEqual(sbom[0], ['left-pad', '1.3.0', 'MIT', 'test/hello/content']);
  assert.equal(sbom[1]![0], HOSTILE_PACKAGE);
  const labels = await page.$$eval('table.labels tbody tr', (trs) => Object.fromEntries(trs.map((tr) => [tr.querySelector('td')?.textContent, tr.querySelectorAll('td')[1]?.textContent])));
  assert.equal(labels['org.example.note'], HOSTILE_LABEL);
  assert.match(await page.$eval('ul.env', (u) => u.textContent ?? ''), /NOTE \(a literal value\)/);
  assert.ok(!(await page.content()).includes(ENV_VALUE), 'env values are never rendered');
  await page.waitForSelector('#chart-durations .uplot canvas');
  await assertInert(page);
  await shot(page, 'image');
  // Any two builds compare: #2 against itself reuses everything.
  await page.select('select[name=a]', '2');
  await Promise.all([page.waitForNavigation(), page.click('form.diff button')]);
  assert.deepEqual([...new Set(await page.$$eval('table.layers tbody tr', (trs) => trs.map((tr) => tr.className)))], ['reused']);
  assert.deepEqual(page.problems, []);
  await page.close();
});

test('a hostile env name is refused at apply, in one line naming the field', async () => {
  const file = join(s.w.root, 'hostile.yaml');
  await writeFile(file, s.w.yaml([{ name: 'app-x', repo: 'file:///nowhere' }]).replace(/(name: app-x}\nspec:\n)/, `$1  build:\n    env:\n    - {name: '"><img src=x onerror=alert(1)>', value: x}\n`));
  const r = await s.w.strata(['fleet', 'apply', '-f', file]);
  assert.equal(r.code, 1);
  assert.match(r.stderr.trim(), /^strata: .*hostile\.yaml.*spec\.build\.env\[0\]\.name: .* is not a variable name$/);
});

test('the builders page: what each builder holds, its readiness, its stack and store, and which images use it', { timeout: 60_000 }, async () => {
  const page = await newPage();
  await signIn(page);
  await page.goto(`${s.base}/builders`);
  const text = await page.$eval('main', (m) => m.textContent ?? '');
  assert.match(text, /ClusterBuilder builder/);
  assert.match(text, /ReadyTrue/);
  assert.match(text, /test\/hello@1\.0\.0/);
  assert.match(text, /test\/other@1\.0\.0/);
  assert.match(text, /Stacktest\.stack|base \(test\.stack\)/);
  assert.match(text, /Used bydefault\/app-1 default\/app-2 default\/app-3/);
  assert.match(text, /ClusterStack base/);
  assert.match(text, /ClusterStore store/);
  await shot(page, 'builders');
  assert.deepEqual(page.problems, []);
  await page.close();
});

test('a run-image push: the base coverage goes from 0 to 100 % live, while the fleet rebases', { timeout: 180_000 }, async () => {
  const page = await newPage();
  await signIn(page);
  await page.goto(`${s.base}/`);
  await page.waitForFunction(() => document.getElementById('coverage')?.dataset.updated !== undefined, { timeout: 20_000 });
  // Every value the page shows, as it shows it.
  await page.evaluate(() => {
    const w = window as unknown as { __seen: string[] };
    w.__seen = [];
    const on = document.querySelector('.stack[data-stack="base"] .cov-on')!;
    new MutationObserver(() => w.__seen.push(on.textContent ?? '')).observe(on, { childList: true, characterData: true, subtree: true });
  });
  const before = (await images()).map((i) => i.runImage);
  await s.w.pushRun({ 'etc/patched': 'CVE-2026-0001 fixed\n' });
  s.slow = true;
  assert.equal((await s.w.strata(['fleet', 'reconcile'])).code, 0);
  await page
    .waitForFunction(() => {
      const seen = (window as unknown as { __seen: string[] }).__seen;
      return seen.includes('0') && seen[seen.length - 1] === '3';
    }, { timeout: 120_000 })
    .catch(async (err: unknown) => {
      const seen = await page.evaluate(() => (window as unknown as { __seen: string[] }).__seen);
      throw new Error(`${String(err)}; the page showed ${JSON.stringify(seen)}; coverage now ${await page.$eval('#coverage', (c) => c.textContent)}; images ${JSON.stringify(await images())}\n${serveLog()}`);
    });
  const seen = await page.evaluate(() => (window as unknown as { __seen: string[] }).__seen);
  const from0 = seen.slice(seen.indexOf('0')).map(Number);
  assert.deepEqual([...from0].sort(), from0, `never back down: ${seen.join(' ')}`);
  assert.equal(await page.$eval('progress.cov-bar', (p) => `${(p as HTMLProgressElement).value}/${(p as HTMLProgressElement).max}`), '3/3');
  await page.waitForSelector('#chart-coverage .uplot canvas');
  const after = (await images()).map((i) => i.runImage);
  assert.ok(after.every((r, i) => r && r !== before[i]), 'every image moved to the new run image');
  assert.match(await page.$eval('.cov-digests', (u) => u.textContent ?? ''), /^3 on [0-9a-f]{12} \(current\)$/);
  s.slow = false;
  assert.match(await page.$eval('.cov-line code', (c) => c.getAttribute('title') ?? ''), new RegExp(`@${after[0]!.split('@')[1]}$`), 'the current run image shown is the new one');
  await shot(page, 'coverage-after-rebase');
  assert.deepEqual(page.problems, []);
  await page.close();
});

test('trigger: the page sends the admin token as a bearer header; none or a read token is refused', { timeout: 60_000 }, async () => {
  assert.equal((await call('POST', '/api/images/app-3/trigger')).status, 401);
  assert.equal((await call('POST', '/api/images/app-3/trigger', READ)).status, 403);
  assert.equal((await call('GET', '/api/images')).status, 401);
  const listed = JSON.parse((await call('GET', '/api/images', READ)).body) as { name: string }[];
  assert.deepEqual(listed.map((r) => r.name), ['app-1', 'app-2', 'app-3']);
  const page = await newPage();
  await signIn(page);
  await page.goto(`${s.base}/images/default/app-3`);
  await page.type('form.trigger input[name=token]', READ);
  await page.click('form.trigger button');
  await page.waitForFunction(() => /^403/.test(document.querySelector('form.trigger output')?.textContent ?? ''));
  const builds = () => images().then((l) => l.find((i) => i.name === 'app-3')!.latestBuild!.number);
  const n = await builds();
  await page.type('form.trigger input[name=token]', ADMIN);
  await page.click('form.trigger button');
  await page.waitForFunction(() => /^Triggered/.test(document.querySelector('form.trigger output')?.textContent ?? ''));
  assert.equal(await page.$eval('form.trigger input[name=token]', (i) => (i as HTMLInputElement).value), '', 'the token is not kept in the page');
  await until('the triggered build', async () => ((await builds()) > n ? true : undefined), 60_000, serveLog);
  assert.deepEqual(page.problems.filter((p) => !/status of 403/.test(p)), []);
  await page.close();
  // No token reached the serve's log.
  assert.ok(!s.log.includes(ADMIN) && !s.log.includes(READ), 'tokens never logged');
});

test('TLS flags: a missing half, a file that is no certificate, and a key of another certificate are one line each', { timeout: 60_000 }, async () => {
  const dir = s.w.root;
  await runOk('openssl', ['genpkey', '-algorithm', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-out', join(dir, 'other.pem')]);
  const serve = (...args: string[]) => s.w.strata(['fleet', 'serve', '--listen', '127.0.0.1:1', ...args]);
  const cases: [string[], RegExp][] = [
    [['--tls-cert', join(dir, 'cert.pem')], /^strata: .*--tls-cert needs --tls-key/],
    [['--tls-cert', join(dir, 'key.pem'), '--tls-key', join(dir, 'key.pem')], /^strata: .*--tls-cert .*key\.pem: not a PEM certificate/],
    [['--tls-cert', join(dir, 'cert.pem'), '--tls-key', join(dir, 'other.pem')], /^strata: .*--tls-key .*other\.pem: not the private key of --tls-cert/],
    [['--tls-cert', join(dir, 'nope.pem'), '--tls-key', join(dir, 'key.pem')], /^strata: .*--tls-cert .*nope\.pem: no such file/],
  ];
  for (const [args, want] of cases) {
    const r = await serve(...args);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr.trim(), want);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
});
