import type { Change } from '../reasons.js';
import type { EnvVar } from '../resources.js';
import type { BuildRecord, BuilderStatus, StackStatus, StoreStatus } from '../store.js';
import type { Condition } from '../status.js';
import type { SbomPackage } from '../../spec/sbom.js';
import { html, jsonData, query, type Html } from './html.js';
import { changeView, shortDigest, type CoverageRow, type FleetRow, type LayerChange, type SortKey } from './model.js';

/**
 * The dashboard's pages, server-rendered: each a pure function from what the routes gathered to HTML. Every value
 * goes through `html`'s escaping; charts and live parts read their data from JSON script elements, so the pages need
 * no inline script and no inline style (the Content-Security-Policy allows neither).
 */

export interface PageOptions {
  /** A sign-out button (the viewer signed in with a token). */
  signedIn?: boolean;
  charts?: boolean;
}

export function layout(title: string, body: Html, o: PageOptions = {}): Html {
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · strata fleet</title><link rel="stylesheet" href="/assets/dashboard.css">${o.charts ? html`<link rel="stylesheet" href="/assets/uplot.css">` : ''}</head>
<body><header><a class="brand" href="/">strata fleet</a><nav><a href="/">Images</a><a href="/builders">Builders</a></nav>${o.signedIn ? html`<form method="post" action="/signout"><button>Sign out</button></form>` : ''}</header>
<main>${body}</main>${o.charts ? html`<script src="/assets/uplot.js"></script>` : ''}<script src="/assets/dashboard.js"></script></body></html>`;
}

const when = (iso: string | undefined): Html => (iso ? html`<time datetime="${iso}">${iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z')}</time>` : html`—`);
const code = (text: string | undefined): Html => (text ? html`<code title="${text}">${shortDigest(text)}</code>` : html`—`);
const readyBadge = (status: string, building?: string): Html => html`<span class="badge ${building ? 'building' : status === 'True' ? 'ok' : status === 'False' ? 'bad' : 'unknown'}">${building ? (building === 'running' ? 'building' : 'queued') : status}</span>`;
const imageLink = (ns: string, name: string): string => `/images/${encodeURIComponent(ns)}/${encodeURIComponent(name)}`;

function coverageView(rows: CoverageRow[]): Html {
  if (!rows.length) return html`<p>No stacks declared yet.</p>`;
  return html`<div class="coverage">${rows.map(
    (c) => html`<div class="stack" data-stack="${c.stack}">
<h3>ClusterStack ${c.stack}</h3>
<p class="cov-line"><strong class="cov-on">${c.onCurrent}</strong> of <span class="cov-total">${c.total}</span> images on the current run image ${code(c.current)}</p>
<progress class="cov-bar" max="${Math.max(c.total, 1)}" value="${c.onCurrent}">${c.onCurrent} of ${c.total}</progress>
<ul class="cov-digests">${c.digests.map((d) => html`<li>${d.count} on ${d.digest.startsWith('sha256:') ? html`<code>${shortDigest(`x@${d.digest}`)}</code>` : d.digest}${d.current ? ' (current)' : ''}</li>`)}</ul>
</div>`,
  )}</div>`;
}

export interface FleetPage {
  rows: FleetRow[];
  total: number;
  counts: { ready: number; building: number; failed: number };
  coverage: CoverageRow[];
  perHour: unknown;
  durations: unknown;
  q: string;
  sort: SortKey;
  page: number;
  pages: number;
}

export function fleetPage(p: FleetPage, o: PageOptions): Html {
  const link = (page: number) => `/${query({ q: p.q, sort: p.sort === 'name' ? undefined : p.sort, page: page > 1 ? page : undefined })}`;
  const body = html`<h1>Fleet</h1>
<p class="summary"><strong>${p.total}</strong> images · <span class="ok">${p.counts.ready} ready</span> · <span class="building">${p.counts.building} building</span> · <span class="bad">${p.counts.failed} failed</span></p>
<section id="coverage" data-live="/events/fleet"><h2>Base coverage</h2>${coverageView(p.coverage)}
<div class="chart" id="chart-coverage" data-title="Images on the current run image (live)"></div></section>
<section class="charts"><div class="chart" id="chart-per-hour" data-title="Builds per hour by reason (last 24 h)"></div><div class="chart" id="chart-durations" data-title="Build duration (s)"></div></section>
${jsonData('data-per-hour', p.perHour)}${jsonData('data-durations', p.durations)}
<section><h2>Images</h2>
<form class="filter" method="get" action="/"><input name="q" value="${p.q}" placeholder="filter: name, builder, reason, True/False" aria-label="filter">
<select name="sort" aria-label="sort">${(['name', 'ready', 'time', 'reason', 'base'] as const).map((s) => html`<option value="${s}"${s === p.sort ? html` selected` : ''}>sort by ${s}</option>`)}</select><button>Apply</button></form>
<div class="scroll"><table class="images"><thead><tr><th>Image</th><th>Ready</th><th>Digest</th><th>Builder</th><th>Run image</th><th>Last build</th><th>When</th></tr></thead><tbody>
${p.rows.map((r) => html`<tr><td><a href="${imageLink(r.namespace, r.name)}">${r.namespace}/${r.name}</a></td><td>${readyBadge(r.ready, r.building)}</td><td>${code(r.image)}</td><td>${r.builder}</td><td>${code(r.runImage)}</td><td>${r.lastReason ?? '—'}</td><td>${when(r.lastAt)}</td></tr>`)}
</tbody></table></div>
<p class="pager">${p.page > 1 ? html`<a href="${link(p.page - 1)}">← previous</a>` : ''} page ${p.page} of ${p.pages} ${p.page < p.pages ? html`<a href="${link(p.page + 1)}">next →</a>` : ''}</p></section>`;
  return layout('Fleet', body, { ...o, charts: true });
}

function conditionsView(conditions: Condition[]): Html {
  return html`<table class="conditions"><thead><tr><th>Condition</th><th>Status</th><th>Reason</th><th>Message</th></tr></thead><tbody>${conditions.map((c) => html`<tr><td>${c.type}</td><td>${readyBadge(c.status)}</td><td>${c.reason ?? ''}</td><td>${c.message ?? ''}</td></tr>`)}</tbody></table>`;
}

const secs = (b: BuildRecord): string => (b.startedAt && b.finishedAt ? `${((Date.parse(b.finishedAt) - Date.parse(b.startedAt)) / 1000).toFixed(1)} s` : '—');
function changesView(changes: Change[]): Html {
  return html`<ul class="changes">${changes.map(changeView).map((c) => ('what' in c ? html`<li>${c.reason}: ${c.what.join('; ')}</li>` : html`<li>${c.reason}: <span class="old">${c.old}</span> → <span class="new">${c.new}</span></li>`))}</ul>`;
}

export interface ImagePage {
  namespace: string;
  name: string;
  tag: string;
  builder: string;
  conditions: Condition[];
  builds: BuildRecord[];
  durations: unknown;
  diff?: { a: number; b: number; changes?: LayerChange[]; error?: string };
  sbom?: { packages: (SbomPackage & { buildpack: string; layer: string })[]; error?: string };
  /** The build's environment as declared: names and where values come from, never the values. */
  env: EnvVar[];
  /** The latest image's labels. */
  labels?: { values: Record<string, string> } | { error: string };
}

export function imagePage(p: ImagePage, o: PageOptions): Html {
  const base = imageLink(p.namespace, p.name);
  const succeeded = p.builds.filter((b) => b.status === 'succeeded');
  const body = html`<h1>Image ${p.namespace}/${p.name}</h1>
<p class="meta">Tag <code>${p.tag}</code> · builder ${p.builder}</p>
${conditionsView(p.conditions)}
<form class="trigger" data-trigger="/api/images/${encodeURIComponent(p.namespace)}/${encodeURIComponent(p.name)}/trigger"><input type="password" name="token" placeholder="admin token" aria-label="admin token" autocomplete="off"><button>Trigger a build</button><output></output></form>
<section><h2>Builds</h2><div class="scroll"><table class="builds"><thead><tr><th>#</th><th>Kind</th><th>Reasons</th><th>Changes</th><th>Status</th><th>Started</th><th>Took</th><th>Digest</th></tr></thead><tbody>
${p.builds.map((b) => html`<tr><td><a href="${base}/builds/${b.number}">#${b.number}</a></td><td>${b.kind}</td><td>${b.reasons}</td><td>${changesView(b.changes)}</td><td>${readyBadge(b.status === 'succeeded' ? 'True' : b.status === 'failed' || b.status === 'interrupted' ? 'False' : 'Unknown', b.status === 'running' || b.status === 'pending' ? b.status : undefined)} ${b.status}</td><td>${when(b.startedAt)}</td><td>${secs(b)}</td><td>${code(b.result?.image)}</td></tr>`)}
</tbody></table></div>
<div class="chart" id="chart-durations" data-title="Build duration (s)"></div>${jsonData('data-durations', p.durations)}</section>
<section><h2>Layers</h2>
${succeeded.length < 2 ? html`<p>Layer differences need two succeeded builds.</p>` : html`<form class="diff" method="get" action="${base}">
<label>from <select name="a">${succeeded.map((b) => html`<option value="${b.number}"${b.number === p.diff?.a ? html` selected` : ''}>#${b.number}</option>`)}</select></label>
<label>to <select name="b">${succeeded.map((b) => html`<option value="${b.number}"${b.number === p.diff?.b ? html` selected` : ''}>#${b.number}</option>`)}</select></label><button>Compare</button></form>`}
${p.diff?.error ? html`<p class="bad">${p.diff.error}</p>` : ''}
${p.diff?.changes ? html`<div class="scroll"><table class="layers"><thead><tr><th>Layer</th><th>By</th><th>#${p.diff.a}</th><th>#${p.diff.b}</th><th>Size</th><th></th></tr></thead><tbody>${p.diff.changes.map(
    (c) => html`<tr class="${c.state}"><td>${c.role}: ${c.name}</td><td>${c.owner ?? ''}</td><td>${c.a ? html`<code>${shortDigest(`x@${c.a.diffID}`)}</code>` : '—'}</td><td>${c.b ? html`<code>${shortDigest(`x@${c.b.diffID}`)}</code>` : '—'}</td><td>${sizeChange(c)}</td><td>${c.state === 'reused' ? 'reused (not uploaded)' : c.state}</td></tr>`,
  )}</tbody></table></div>` : ''}</section>
<section><h2>Software bill of materials</h2>${sbomView(p.sbom)}</section>
<section><h2>Build environment</h2>${p.env.length ? html`<ul class="env">${p.env.map((e) => html`<li><code>${e.name}</code> ${'value' in e ? '(a literal value)' : 'secretKeyRef' in e.valueFrom ? `from Secret ${e.valueFrom.secretKeyRef.name}, key ${e.valueFrom.secretKeyRef.key}` : `from ConfigMap ${e.valueFrom.configMapKeyRef.name}, key ${e.valueFrom.configMapKeyRef.key}`}</li>`)}</ul>` : html`<p>No variables declared.</p>`}</section>
<section><h2>Image labels</h2>${labelsView(p.labels)}</section>`;
  return layout(`${p.namespace}/${p.name}`, body, { ...o, charts: true });
}

const mb = (n: number): string => (n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : `${(n / 1024).toFixed(1)} KiB`);

function sizeChange(c: LayerChange): string {
  if (c.a && c.b && c.a.size !== c.b.size) return `${mb(c.a.size)} → ${mb(c.b.size)}`;
  return mb((c.b ?? c.a)!.size);
}

function labelsView(l: ImagePage['labels']): Html {
  if (!l) return html`<p>No succeeded build yet.</p>`;
  if ('error' in l) return html`<p class="bad">${l.error}</p>`;
  const entries = Object.entries(l.values).sort(([a], [b]) => a.localeCompare(b));
  if (!entries.length) return html`<p>None.</p>`;
  return html`<div class="scroll"><table class="labels"><thead><tr><th>Label</th><th>Value</th></tr></thead><tbody>${entries.map(([k, v]) => html`<tr><td><code>${k}</code></td><td>${v.length > 300 ? html`<details><summary>${v.length} characters</summary><code>${v}</code></details>` : v}</td></tr>`)}</tbody></table></div>`;
}

function sbomView(s: ImagePage['sbom']): Html {
  if (!s) return html`<p>No succeeded build yet.</p>`;
  if (s.error) return html`<p class="bad">${s.error}</p>`;
  if (!s.packages.length) return html`<p>The image carries no SBOM documents.</p>`;
  return html`<p>${s.packages.length} packages</p><div class="scroll"><table class="sbom"><thead><tr><th>Package</th><th>Version</th><th>Licences</th><th>Layer</th></tr></thead><tbody>${s.packages.map((p) => html`<tr><td>${p.name}</td><td>${p.version}</td><td>${p.licenses.join(', ')}</td><td>${p.buildpack}/${p.layer}</td></tr>`)}</tbody></table></div>`;
}

export interface BuildPage {
  namespace: string;
  name: string;
  build: BuildRecord;
  log: string;
  nextSeq: number;
}

export function buildPage(p: BuildPage, o: PageOptions): Html {
  const b = p.build;
  const base = imageLink(p.namespace, p.name);
  const live = b.status === 'running' || b.status === 'pending';
  const body = html`<h1><a href="${base}">${p.namespace}/${p.name}</a> build #${b.number}</h1>
<dl class="facts"><dt>Status</dt><dd>${b.status}${b.message ? html` — ${b.message}` : ''}</dd><dt>Kind</dt><dd>${b.kind}</dd><dt>Reasons</dt><dd>${b.reasons}</dd>
<dt>Changes</dt><dd>${changesView(b.changes)}</dd>
<dt>Builder</dt><dd>${code(b.inputs.builder)}</dd><dt>Run image</dt><dd>${code(b.result?.runImage ?? b.inputs.runImage)}</dd>
<dt>Worker</dt><dd>${b.worker ?? '—'}${b.attempts > 1 ? ` (attempt ${b.attempts})` : ''}</dd><dt>Queued</dt><dd>${when(b.createdAt)}</dd><dt>Took</dt><dd>${secs(b)}</dd><dt>Image</dt><dd>${b.result?.image ?? '—'}</dd></dl>
${b.result?.steps?.length ? html`<table class="steps"><thead><tr><th>Step</th><th>Took</th></tr></thead><tbody>${b.result.steps.map((s) => html`<tr><td>${s.name}</td><td>${(s.ms / 1000).toFixed(1)} s</td></tr>`)}</tbody></table>` : ''}
<h2>Log${live ? html` <span class="badge building">live</span>` : ''}</h2>
<pre class="log" id="log"${live ? html` data-stream="${base}/builds/${b.number}/log/stream?from=${p.nextSeq}"` : ''}>${p.log}</pre>`;
  return layout(`${p.namespace}/${p.name} #${b.number}`, body, o);
}

export interface BuildersPage {
  builders: { kind: string; namespace: string; name: string; conditions: Condition[]; status: BuilderStatus; stack: string; images: { namespace: string; name: string }[] }[];
  stacks: { name: string; conditions: Condition[]; status: StackStatus }[];
  stores: { name: string; conditions: Condition[]; status: StoreStatus }[];
}

export function buildersPage(p: BuildersPage, o: PageOptions): Html {
  const body = html`<h1>Builders</h1>
${p.builders.map(
    (b) => html`<section class="builder"><h2>${b.kind} ${b.namespace ? `${b.namespace}/` : ''}${b.name}</h2>${conditionsView(b.conditions)}
<dl class="facts"><dt>Image</dt><dd>${b.status.image ?? '—'}</dd><dt>Stack</dt><dd>${b.stack} (${b.status.stackId ?? '—'})</dd><dt>Run image</dt><dd>${code(b.status.runImage)}</dd><dt>Lifecycle</dt><dd>${b.status.lifecycle ?? '—'}</dd>
<dt>Buildpacks</dt><dd>${(b.status.buildpacks ?? []).map((x) => html`<span class="bp">${x.id}@${x.version}</span> `)}</dd>
<dt>Used by</dt><dd>${b.images.length ? b.images.map((i) => html`<a href="${imageLink(i.namespace, i.name)}">${i.namespace}/${i.name}</a> `) : 'no image'}</dd></dl></section>`,
  )}
<h1>Stacks</h1>${p.stacks.map((s) => html`<section><h2>ClusterStack ${s.name}</h2>${conditionsView(s.conditions)}<dl class="facts"><dt>Id</dt><dd>${s.status.id ?? '—'}</dd><dt>Build image</dt><dd>${s.status.buildImage ?? '—'}</dd><dt>Run image</dt><dd>${s.status.runImage ?? '—'}</dd></dl></section>`)}
<h1>Stores</h1>${p.stores.map((s) => html`<section><h2>ClusterStore ${s.name}</h2>${conditionsView(s.conditions)}<ul>${(s.status.sources ?? []).map((x) => html`<li><code title="${x.digest}">${x.image}</code>: ${x.buildpacks.map((bp) => `${bp.id}@${bp.version}`).join(', ')}</li>`)}</ul></section>`)}`;
  return layout('Builders', body, o);
}

export function signinPage(o: { next: string; failed?: boolean; insecure?: boolean }): Html {
  return layout(
    'Sign in',
    html`<h1>Sign in</h1>
${o.insecure ? html`<p class="bad">This listener is not on loopback and speaks plain HTTP: browsers keep the sign-in cookie (Secure) only over HTTPS. Serve with --tls-cert and --tls-key, or put TLS in front.</p>` : ''}
${o.failed ? html`<p class="bad">That token is not one of this fleet's.</p>` : ''}
<form class="signin" method="post" action="/signin"><input type="hidden" name="next" value="${o.next}"><label>Read or admin token <input type="password" name="token" autocomplete="current-password" required></label><button>Sign in</button></form>`,
  );
}

export function errorPage(status: number, message: string): Html {
  return layout(String(status), html`<h1>${status}</h1><p>${message}</p>`);
}
