// The dashboard's only script: charts from the page's JSON data, the live coverage and log over server-sent events,
// and the trigger button. Pages are whole without it; it only adds what a browser can watch. Text from the server is
// set as text (textContent), never as markup.
'use strict';
(function () {
  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));
  const data = (id) => {
    const el = document.getElementById(id);
    if (!el) return undefined;
    try { return JSON.parse(el.textContent); } catch { return undefined; }
  };
  const COLOURS = ['#0b62c4', '#1a7f37', '#c62828', '#9a6700', '#6639ba', '#0e7c86', '#b35900', '#5d6677'];
  const charts = [];

  function chart(id, series, columns, opts) {
    const el = document.getElementById(id);
    if (!el || typeof uPlot === 'undefined') return undefined;
    const width = () => Math.max(240, el.clientWidth || 300);
    const plot = new uPlot(Object.assign({
      title: el.dataset.title || '',
      width: width(),
      height: 220,
      scales: { x: { time: true } },
      series: [{}].concat(series),
      legend: { live: false },
    }, opts || {}), columns, el);
    charts.push({ plot, width });
    return plot;
  }
  window.addEventListener('resize', () => charts.forEach((c) => c.plot.setSize({ width: c.width(), height: 220 })));

  // Builds per hour, one stepped line per reason.
  const perHour = data('data-per-hour');
  if (perHour && perHour.hours) {
    const reasons = Object.keys(perHour.series).sort();
    const series = reasons.map((r, i) => ({ label: r, stroke: COLOURS[i % COLOURS.length], width: 2, paths: uPlot.paths && uPlot.paths.stepped ? uPlot.paths.stepped({ align: 1 }) : undefined }));
    if (reasons.length) chart('chart-per-hour', series, [perHour.hours].concat(reasons.map((r) => perHour.series[r])));
    else { const el = document.getElementById('chart-per-hour'); if (el) el.textContent = 'No builds in the last 24 hours.'; }
  }

  // Build durations: builds and rebases as points over time.
  const durations = data('data-durations');
  if (durations && durations.at) {
    if (durations.at.length) {
      chart('chart-durations', [
        { label: 'build (s)', stroke: COLOURS[0], paths: () => null, points: { show: true, size: 6, fill: COLOURS[0] } },
        { label: 'rebase (s)', stroke: COLOURS[1], paths: () => null, points: { show: true, size: 6, fill: COLOURS[1] } },
      ], [durations.at, durations.build, durations.rebase]);
    } else { const el = document.getElementById('chart-durations'); if (el) el.textContent = 'No finished builds yet.'; }
  }

  // Base coverage, live: the counts, the bars and a chart of the share on the current run image since the page opened.
  const live = $('#coverage[data-live]');
  if (live && typeof EventSource !== 'undefined') {
    const stacks = $$('.stack[data-stack]', live).map((el) => el.dataset.stack);
    const history = [[]].concat(stacks.map(() => []));
    let plot;
    const short = (d) => (d.startsWith('sha256:') ? d.slice(7, 19) : d);
    const es = new EventSource(live.dataset.live);
    es.addEventListener('fleet', (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch { return; }
      for (const row of msg.coverage || []) {
        const el = $$('.stack[data-stack]', live).find((s) => s.dataset.stack === row.stack);
        if (!el) continue;
        $('.cov-on', el).textContent = String(row.onCurrent);
        $('.cov-total', el).textContent = String(row.total);
        const bar = $('progress.cov-bar', el);
        bar.max = Math.max(row.total, 1);
        bar.value = row.onCurrent;
        bar.textContent = row.onCurrent + ' of ' + row.total;
        const current = $('.cov-line code', el);
        if (current && row.current) {
          current.title = row.current;
          current.textContent = short(row.current.slice(row.current.lastIndexOf('@') + 1));
        }
        const list = $('.cov-digests', el);
        list.replaceChildren(...row.digests.map((d) => {
          const li = document.createElement('li');
          li.textContent = d.count + ' on ' + short(d.digest) + (d.current ? ' (current)' : '');
          return li;
        }));
        el.dataset.onCurrent = String(row.onCurrent);
        el.dataset.total = String(row.total);
      }
      const building = $('.summary .building');
      if (building && typeof msg.building === 'number') building.textContent = msg.building + ' building';
      history[0].push(msg.at / 1000);
      stacks.forEach((s, i) => {
        const row = (msg.coverage || []).find((r) => r.stack === s);
        history[i + 1].push(row && row.total ? (100 * row.onCurrent) / row.total : null);
      });
      if (!plot && history[0].length >= 2) {
        plot = chart('chart-coverage', stacks.map((s, i) => ({ label: s + ' (% on current)', stroke: COLOURS[i % COLOURS.length], width: 2 })), history, { scales: { x: { time: true }, y: { range: [0, 100] } } });
      } else if (plot) plot.setData(history);
      live.dataset.updated = String(msg.at);
    });
  }

  // A running build's log, appended as it comes; on a dropped connection it resumes from the last chunk it had.
  const log = $('pre#log[data-stream]');
  if (log && typeof EventSource !== 'undefined') {
    let url = log.dataset.stream;
    const open = () => {
      const es = new EventSource(url);
      es.addEventListener('log', (ev) => {
        const msg = JSON.parse(ev.data);
        const follow = log.scrollTop + log.clientHeight >= log.scrollHeight - 20;
        log.append(document.createTextNode(msg.text));
        if (follow) log.scrollTop = log.scrollHeight;
        if (typeof msg.next === 'number') url = url.replace(/([?&]from=)\d+/, '$1' + msg.next);
      });
      es.addEventListener('end', (ev) => {
        es.close();
        const msg = JSON.parse(ev.data);
        log.dataset.ended = msg.status;
        const badge = $('h2 .badge.building');
        if (badge) { badge.textContent = msg.status; badge.className = 'badge ' + (msg.status === 'succeeded' ? 'ok' : 'bad'); }
      });
      es.onerror = () => {
        if (log.dataset.ended) return;
        es.close();
        setTimeout(open, 2000);
      };
    };
    open();
  }

  // Trigger: the admin token goes as a bearer header on this one request; it is not kept.
  for (const form of $$('form.trigger[data-trigger]')) {
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const out = $('output', form);
      const token = form.elements.token.value.trim();
      out.textContent = '…';
      try {
        const res = await fetch(form.dataset.trigger, { method: 'POST', headers: token ? { authorization: 'Bearer ' + token } : {} });
        const body = await res.json().catch(() => ({}));
        out.textContent = res.ok ? 'Triggered: the fleet will build it.' : res.status + ': ' + (body.error || res.statusText);
      } catch (err) {
        out.textContent = 'Not sent: ' + err.message;
      }
      form.elements.token.value = '';
    });
  }
})();
