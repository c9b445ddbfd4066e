import { test } from 'node:test';
import assert from 'node:assert/strict';
import { escapeHtml, html, jsonData, query } from './html.js';
import { cookie, Sessions } from './session.js';

test('every interpolated value is escaped unless it is Html made by a template', () => {
  const hostile = '"><img src=x onerror=alert(1)><script>alert(2)</script>\'`&';
  const out = html`<td title="${hostile}">${hostile}${[hostile, html`<b>${hostile}</b>`]}</td>`.text;
  assert.doesNotMatch(out, /<img|<script|"><|onerror="/);
  assert.equal(out.split('<b>').length, 2, 'nested templates keep their own markup');
  assert.equal(escapeHtml(hostile), '&quot;&gt;&lt;img src=x onerror=alert(1)&gt;&lt;script&gt;alert(2)&lt;/script&gt;&#39;&#96;&amp;');
  assert.equal(html`${undefined}${null}${false}${0}`.text, '0');
});

test('JSON data cannot close its script element or start a comment', () => {
  const out = jsonData('d', { s: '</script><script>alert(1)</script><!-- & \u2028' }).text;
  assert.equal(out.match(/<\/script>/g)?.length, 1);
  assert.doesNotMatch(out.slice(0, -'</script>'.length), /<\/|<!--/);
  const inner = out.slice(out.indexOf('>') + 1, out.lastIndexOf('</script>'));
  assert.deepEqual(JSON.parse(inner), { s: '</script><script>alert(1)</script><!-- & \u2028' });
});

test('query strings leave out empty parameters and encode the rest', () => {
  assert.equal(query({ q: 'a b&c', sort: undefined, page: 2 }), '?q=a+b%26c&page=2');
  assert.equal(query({ q: '' }), '');
});

test('a session cookie is valid until it expires and only with this server\'s key', () => {
  const a = new Sessions();
  const b = new Sessions();
  const now = Date.now();
  const { value, maxAge } = a.issue(now);
  assert.ok(a.valid(value, now + 1000));
  assert.ok(!a.valid(value, now + maxAge * 1000 + 1), 'expired');
  assert.ok(!b.valid(value, now), 'another server\'s key');
  assert.ok(!a.valid(value.replace(/^\d/, (d) => String((Number(d) + 1) % 10)), now), 'a changed expiry');
  assert.ok(!a.valid(undefined) && !a.valid('') && !a.valid('x.y'));
  assert.equal(cookie(`a=1; strata_session=${value}; b=2`, 'strata_session'), value);
  assert.equal(cookie('strata_sessionx=1', 'strata_session'), undefined);
});
