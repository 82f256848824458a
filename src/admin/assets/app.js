// herald dashboard: one page over the JSON admin API (/api/...). Plain JavaScript, no build
// step, no dependencies; embedded in the herald binary. Views: overview, dead letters (list and
// one entry), processes, connections, configuration. Hash routes: #/, #/dead-letters?…,
// #/dead-letters/<id>?queue=…, #/processes, #/connections, #/config.
'use strict';
(() => {
  const REFRESH_MS = 5000;
  const PAGE = 50;
  const state = { meta: null, live: true, timer: null, selected: new Set(), older: [], busy: false };

  // ---- DOM helpers: text always goes in as text nodes, never as HTML. ----
  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    setAttrs(el, attrs);
    append(el, kids);
    return el;
  }
  function s(tag, attrs, ...kids) {
    const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
    setAttrs(el, attrs);
    append(el, kids);
    return el;
  }
  function setAttrs(el, attrs) {
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'class') el.setAttribute('class', v);
      else if (k === 'checked' || k === 'value' || k === 'selected') el[k] = v;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  function append(el, kids) {
    for (const k of kids.flat(Infinity)) {
      if (k === undefined || k === null || k === false) continue;
      el.append(k instanceof Node ? k : document.createTextNode(String(k)));
    }
  }
  const main = () => document.getElementById('main');

  // ---- Formatting ----
  const num = (n) => (n === null || n === undefined ? '–' : Number(n).toLocaleString('en-US'));
  function dur(sec) {
    if (sec === null || sec === undefined) return '–';
    if (sec < 1) return `${Math.round(sec * 1000)} ms`;
    if (sec < 60) return `${sec < 10 ? sec.toFixed(1) : Math.round(sec)} s`;
    const m = Math.floor(sec / 60);
    if (m < 60) return `${m} min`;
    const hrs = Math.floor(m / 60);
    if (hrs < 48) return m % 60 ? `${hrs} h ${m % 60} min` : `${hrs} h`;
    return `${Math.floor(hrs / 24)} d`;
  }
  const ago = (ms) => `${dur(Math.max(0, (Date.now() - ms) / 1000))} ago`;
  function stamp(ms) {
    const d = new Date(ms);
    const p = (x) => String(x).padStart(2, '0');
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  }
  const when = (ms) => h('time', { datetime: new Date(ms).toISOString(), title: stamp(ms) }, ago(ms));

  // ---- API ----
  async function api(path, body) {
    const init = { headers: { Accept: 'application/json' }, credentials: 'same-origin' };
    if (body !== undefined) {
      init.method = 'POST';
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const r = await fetch(`/api${path}`, init);
    if (r.status === 401) {
      location.href = '/login';
      throw new Error('not logged in');
    }
    const text = await r.text();
    let data = text;
    try { data = JSON.parse(text); } catch (_) { /* text, e.g. the config */ }
    if (!r.ok) throw new Error((data && data.error) || `${r.status} ${r.statusText}`);
    return data;
  }
  const qs = (o) => {
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries(o)) if (v !== undefined && v !== null && v !== '') p.set(k, v);
    const t = p.toString();
    return t ? `?${t}` : '';
  };

  function toast(msg, bad) {
    const t = document.getElementById('toast');
    t.textContent = msg;
    t.className = bad ? 'toast bad' : 'toast';
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { t.textContent = ''; }, bad ? 12000 : 6000);
  }

  // ---- Charts (inline SVG; labelled for screen readers) ----
  const W = 520, H = 170, L = 50, B = 20, T = 10;
  function niceMax(v) {
    if (v <= 0) return 1;
    const e = 10 ** Math.floor(Math.log10(v));
    return [1, 2, 5, 10].map((m) => m * e).find((x) => x >= v);
  }
  function timeAxis(g, n) {
    const x = (i) => L + ((W - L) * (i + 0.5)) / n;
    const ticks = [[0, `-${n} min`, 'start'], [Math.floor(n / 2), `-${Math.ceil(n / 2)} min`, 'middle'], [n - 1, 'now', 'end']];
    for (const [i, label, anchor] of ticks) {
      g.append(s('text', { x: anchor === 'start' ? L : anchor === 'end' ? W : x(i), y: H - 4, class: 'axis', 'text-anchor': anchor }, label));
    }
  }
  function bars(title, series, starts) {
    const n = starts.length;
    const max = niceMax(Math.max(1, ...series.flatMap((x) => x.values)));
    const g = s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img' });
    const y = (v) => H - B - ((H - B - T) * v) / max;
    for (const v of [0, max / 2, max]) {
      g.append(s('line', { x1: L, x2: W, y1: y(v), y2: y(v), class: 'grid' }));
      g.append(s('text', { x: L - 6, y: y(v) + 3, class: 'axis', 'text-anchor': 'end' }, num(v)));
    }
    const bw = (W - L) / n;
    series.forEach((sr, k) => {
      const w = Math.max(1, bw / series.length - 1);
      sr.values.forEach((v, i) => {
        if (!v) return;
        const r = s('rect', { x: L + i * bw + k * (w + 1), y: y(v), width: w, height: y(0) - y(v), class: sr.cls });
        r.append(s('title', {}, `${stamp(starts[i])}: ${num(v)} ${sr.name}`));
        g.append(r);
      });
    });
    timeAxis(g, n);
    const last = series.map((sr) => `${sr.name} ${num(sr.values[n - 1])} this minute, at most ${num(Math.max(...sr.values))}`);
    g.setAttribute('aria-label', `${title}, last ${n} minutes: ${last.join('; ')}`);
    return g;
  }
  const LOG_TICKS = [[0.001, '1 ms'], [0.01, '10 ms'], [0.1, '100 ms'], [1, '1 s'], [10, '10 s'], [60, '1 min'], [600, '10 min'], [3600, '1 h']];
  function ageLines(title, perMinute, starts) {
    const n = starts.length;
    const vals = perMinute.flat().filter((v) => v !== null);
    const lo = Math.log10(0.0005), hi = Math.log10(Math.max(0.01, ...vals) * 2);
    const g = s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img' });
    const y = (v) => H - B - ((H - B - T) * (Math.log10(Math.max(v, 0.0005)) - lo)) / (hi - lo);
    for (const [v, label] of LOG_TICKS) {
      if (Math.log10(v) > hi) break;
      g.append(s('line', { x1: L, x2: W, y1: y(v), y2: y(v), class: 'grid' }));
      g.append(s('text', { x: L - 6, y: y(v) + 3, class: 'axis', 'text-anchor': 'end' }, label));
    }
    const x = (i) => L + ((W - L) * (i + 0.5)) / n;
    [0, 1].forEach((k) => {
      let d = '';
      perMinute.forEach((pair, i) => {
        const v = pair[k];
        if (v === null) return;
        d += `${d && perMinute[i - 1] && perMinute[i - 1][k] !== null ? 'L' : 'M'}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
      });
      if (d) g.append(s('path', { d, class: k ? 'line p99' : 'line' }));
    });
    perMinute.forEach((pair, i) => {
      if (pair[0] === null) return;
      g.append(s('circle', { cx: x(i), cy: y(pair[0]), r: 2.5, class: 'dot' }));
      g.append(s('circle', { cx: x(i), cy: y(pair[1]), r: 2.5, class: 'dot p99' }));
      const hit = s('rect', { x: x(i) - 4, y: T, width: 8, height: H - B - T, fill: 'transparent' });
      hit.append(s('title', {}, `${stamp(starts[i])}: p50 ${dur(pair[0])}, p99 ${dur(pair[1])}`));
      g.append(hit);
    });
    timeAxis(g, n);
    g.setAttribute('aria-label', `${title}, last ${n} minutes`);
    return g;
  }
  const chart = (title, svgEl, legend) => h('figure', { class: 'chart' }, h('h3', {}, title), svgEl, legend && h('figcaption', { class: 'legend' }, legend));
  const plural = (n, one, many) => `${num(n)} ${n === 1 ? one : many}`;
  const key = (cls, label) => h('span', {}, h('span', { class: `key ${cls}` }), label);

  // ---- Overview ----
  async function overview() {
    const [q, procs, conns, ...acts] = await Promise.all([api('/queues'), api('/processes'), api('/connections'),
      ...state.meta.queues.map((name) => api(`/activity${qs({ queue: name, minutes: 60 })}`))]);
    const root = h('div', {});
    root.append(h('h1', {}, 'Overview'), attention(q.queues, acts, procs.processes, conns.connections));
    q.queues.forEach((x, i) => root.append(queuePanel(x, acts[i])));
    root.append(processTable(procs.processes, procs.now_ms, true));
    return root;
  }
  function lastHour(act, field) {
    return act.minutes.reduce((t, m) => t + m[field], 0);
  }
  function attention(queues, acts, procs, conns) {
    const out = [];
    const link = (href, text) => h('a', { href }, text);
    if (!procs.length) out.push(['bad', 'No herald process is heartbeating: nothing is being delivered.']);
    queues.forEach((x, i) => {
      const dl = `#/dead-letters${qs({ queue: x.queue })}`;
      const recent = lastHour(acts[i], 'dead');
      if (recent) out.push(['bad', [link(dl, plural(recent, 'dead letter', 'dead letters')), ` in ${x.queue} in the last hour (${num(x.failed)} in the store).`]]);
      else if (x.failed) out.push(['warn', [link(dl, plural(x.failed, 'dead letter', 'dead letters')), ` in ${x.queue}, none in the last hour.`]]);
      if (x.paused) out.push(['warn', `${x.queue} is paused (${x.paused}): nothing is being reserved from it.`]);
      if (x.oldest_waiting_age_s > 60) out.push(['warn', `The oldest envelope waiting in ${x.queue} was created ${dur(x.oldest_waiting_age_s)} ago.`]);
    });
    for (const c of conns) {
      if (c.circuit.state === 'open') out.push(['bad', [link('#/connections', `Pusher connection ${c.name}`), `: circuit open until ${stamp(c.circuit.until_ms)} (${c.circuit.reason}). Deliveries are parked until it closes.`]]);
      if (c.circuit.state === 'half_open') out.push(['warn', [link('#/connections', `Pusher connection ${c.name}`), ': circuit half-open; the next request probes.']]);
    }
    if (!out.length) out.push(['ok', 'All quiet: no dead letters in the last hour, nothing waiting long, every circuit closed.']);
    return h('section', { class: 'attention', 'aria-label': 'Needs attention' }, out.map(([cls, msg]) => h('div', { class: `alert ${cls}` }, msg)));
  }
  function count(label, value, cls, extra) {
    return h('div', { class: `count ${cls || ''}` }, h('dt', {}, label), h('dd', {}, value, extra ? [' ', h('small', {}, extra)] : null));
  }
  function queuePanel(x, act) {
    const starts = act.minutes.map((m) => m.start_ms);
    const pause = x.paused
      ? h('button', { type: 'button', 'data-key': `resume-${x.queue}`, onclick: () => act2('/queues/resume', { queue: x.queue }, `Resumed ${x.queue}.`) }, 'Resume')
      : h('button', { type: 'button', 'data-key': `pause-${x.queue}`, onclick: () => confirmed(`Pause ${x.queue}? Every replica stops reserving from it; in-flight batches finish.`) && act2('/queues/pause', { queue: x.queue }, `Paused ${x.queue}.`) }, 'Pause');
    const dlHref = `#/dead-letters${qs({ queue: x.queue })}`;
    const charts = [
      chart('Settled per minute', bars('Envelopes settled per minute', [{ name: 'settled', values: act.minutes.map((m) => m.settled), cls: 'bar' }], starts),
        [`${num(lastHour(act, 'settled'))} in the last hour`]),
      chart('Failures per minute', bars('Failures per minute', [
        { name: 'failed deliveries', values: act.minutes.map((m) => m.failed), cls: 'bar' },
        { name: 'dead letters', values: act.minutes.map((m) => m.dead), cls: 'bar bad' }], starts),
      [key('', `failed deliveries ${num(lastHour(act, 'failed'))}`), key('bad', `dead letters ${num(lastHour(act, 'dead'))}`)]),
      ...act.ages.map((a) => chart(`Event age: ${a.delivery}`, ageLines(`Event age of ${a.delivery}, p50 and p99`, a.per_minute, starts),
        [key('p50', `p50 ${dur(a.p50_s)}`), key('p99', `p99 ${dur(a.p99_s)}`), h('span', {}, `${num(a.delivered)} delivered`)])),
    ];
    return h('section', { class: 'panel', 'aria-labelledby': `q-${x.queue}` },
      h('div', { class: 'queue-head' }, h('h2', { id: `q-${x.queue}` }, x.queue), x.paused ? h('span', { class: 'badge warn' }, 'paused') : null, h('span', { class: 'spacer' }), pause),
      h('dl', { class: 'counts' },
        count('Waiting', num(x.waiting), x.waiting > 1000 ? 'warn' : ''),
        count('Processing', num(x.processing)),
        count('Delayed', num(x.delayed), '', `${num(x.delayed_due)} due · ${num(x.delayed_later)} later`),
        count('Parked', num(x.parked), x.parked ? 'warn' : '', 'until a circuit closes'),
        count('Dead letters', h('a', { href: dlHref }, num(x.failed)), x.failed ? 'bad' : ''),
        count('Oldest waiting', x.oldest_waiting_age_s === null ? '–' : dur(x.oldest_waiting_age_s), x.oldest_waiting_age_s > 60 ? 'warn' : '')),
      h('div', { class: 'charts' }, charts));
  }

  // ---- Processes ----
  function processTable(procs, now, compact) {
    const rows = procs.map((p) => {
      const i = p.info;
      const beat = now - p.last_heartbeat_ms;
      return h('tr', {},
        h('td', { class: 'mono wrap' }, p.id, h('span', { class: 'sub' }, `pid ${i.pid || '?'}`)),
        h('td', { class: 'narrow-hide' }, i.hostname || '–'),
        h('td', { class: 'narrow-hide' }, i.started_at ? when(Number(i.started_at)) : '–'),
        h('td', {}, h('span', { class: beat > 10000 ? 'num bad' : '' }, `${dur(beat / 1000)} ago`)),
        h('td', { class: 'num' }, num(p.inflight)),
        h('td', { class: 'narrow-hide' }, i.queues || '–', i.paused ? h('span', { class: 'sub' }, `paused: ${i.paused}`) : null),
        h('td', { class: 'narrow-hide num' }, i.concurrency || '–'),
        h('td', {}, i.version || '–'));
    });
    return h('section', { class: 'panel', 'aria-labelledby': 'procs' },
      h('h2', { id: 'procs' }, `Live processes (${procs.length})`),
      procs.length ? h('div', { class: 'table-wrap' }, h('table', {},
        h('thead', {}, h('tr', {}, ['Process', 'Host', 'Started', 'Last heartbeat', 'In flight', 'Queues', 'Tasks', 'Version'].map((t, k) =>
          h('th', { scope: 'col', class: [k === 4 || k === 6 ? 'num' : '', [1, 2, 5, 6].includes(k) ? 'narrow-hide' : ''].join(' ') }, t)))),
        h('tbody', {}, rows))) : h('p', { class: 'muted' }, 'None: no herald process is heartbeating on this Redis.'),
      compact ? null : h('p', { class: 'hint' }, 'A process silent for worker.process_timeout is dead; any replica returns its in-flight envelopes to the queue.'));
  }
  async function processes() {
    const p = await api('/processes');
    return h('div', {}, h('h1', {}, 'Processes'), processTable(p.processes, p.now_ms, false));
  }

  // ---- Dead letters ----
  function queueOf(params) { return params.get('queue') || state.meta.queues[0]; }
  function filterOf(params) {
    const f = {};
    for (const k of ['reason', 'delivery', 'event']) if (params.get(k)) f[k] = params.get(k);
    for (const k of ['since', 'until']) if (params.get(k)) f[`${k}_ms`] = Number(params.get(k));
    return f;
  }
  const toLocalInput = (ms) => {
    const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60000);
    return d.toISOString().slice(0, 16);
  };
  function filterForm(params) {
    const field = (id, label, input) => h('div', {}, h('label', { for: id }, label), input);
    const queue = queueOf(params);
    const reasons = h('select', { id: 'f-reason', name: 'reason' }, h('option', { value: '' }, 'any'),
      state.meta.reasons.map((r) => h('option', { value: r, selected: params.get('reason') === r }, r)));
    const time = (k) => h('input', { id: `f-${k}`, name: k, type: 'datetime-local', value: params.get(k) ? toLocalInput(Number(params.get(k))) : '' });
    const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter dead letters' },
      state.meta.queues.length > 1 ? field('f-queue', 'Queue', h('select', { id: 'f-queue', name: 'queue' },
        state.meta.queues.map((q) => h('option', { value: q, selected: q === queue }, q)))) : null,
      field('f-reason', 'Reason', reasons),
      field('f-delivery', 'Delivery', h('input', { id: 'f-delivery', name: 'delivery', value: params.get('delivery') || '', placeholder: 'broadcast:pusher', list: 'deliveries' })),
      field('f-event', 'Event contains', h('input', { id: 'f-event', name: 'event', value: params.get('event') || '', placeholder: 'OrderShipped' })),
      field('f-since', 'Failed since', time('since')),
      field('f-until', 'Failed until', time('until')),
      h('div', { class: 'row' }, h('button', { type: 'submit', class: 'primary' }, 'Apply'), h('a', { class: 'button', href: `#/dead-letters${qs({ queue })}` }, 'Clear')),
      h('datalist', { id: 'deliveries' }));
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const p = {};
      for (const [k, v] of new FormData(form)) {
        if (!v) continue;
        p[k] = k === 'since' || k === 'until' ? String(new Date(v).getTime()) : v;
      }
      if (!p.queue) p.queue = queue;
      state.older = [];
      location.hash = `#/dead-letters${qs(p)}`;
    });
    return form;
  }
  async function deadLetters(params) {
    const queue = queueOf(params);
    const page = await api(`/dead-letters${qs({ queue, reason: params.get('reason'), delivery: params.get('delivery'), event: params.get('event'), since: params.get('since'), until: params.get('until'), after: params.get('after'), limit: PAGE })}`);
    const filter = filterOf(params);
    const filtered = Object.keys(filter).length > 0;
    state.selected = new Set([...state.selected].filter((id) => page.entries.some((e) => e.id === id)));
    const form = filterForm(params);
    const dl = form.querySelector('#deliveries');
    new Set(page.entries.flatMap((e) => e.deliveries.map((d) => d.delivery))).forEach((d) => dl.append(h('option', { value: d })));
    const selCount = h('span', { class: 'muted' });
    const selButtons = [];
    const sync = () => {
      selCount.textContent = `${state.selected.size} selected`;
      selButtons.forEach((b) => { b.disabled = state.selected.size === 0; });
    };
    const total = page.total === null ? 'all matching' : `all ${num(page.total)}`;
    const retrySel = h('button', { type: 'button', class: 'primary', onclick: () => action('retry', { queue, ids: [...state.selected] }) }, 'Retry selected');
    const forgetSel = h('button', { type: 'button', class: 'danger', onclick: () => confirmed(`Forget ${state.selected.size} dead letter(s)? Their payloads are deleted.`) && action('forget', { queue, ids: [...state.selected] }) }, 'Forget selected');
    selButtons.push(retrySel, forgetSel);
    const sel = filtered ? { queue, filter } : { queue, all: true };
    const bulk = page.entries.length ? [
      h('button', { type: 'button', onclick: () => confirmed(`Retry ${total}${filtered ? ' matching the filter' : ''}? Only their failed deliveries run again.`) && action('retry', sel) }, `Retry ${total}`),
      h('button', { type: 'button', class: 'danger', onclick: () => confirmed(`Forget ${total}${filtered ? ' matching the filter' : ''}? This cannot be undone.`) && action('forget', sel) }, `Forget ${total}`),
    ] : [];
    const all = h('input', { type: 'checkbox', 'aria-label': 'Select every dead letter on this page', checked: page.entries.length > 0 && page.entries.every((e) => state.selected.has(e.id)) });
    all.addEventListener('change', () => {
      page.entries.forEach((e) => (all.checked ? state.selected.add(e.id) : state.selected.delete(e.id)));
      root.querySelectorAll('tbody input[type=checkbox]').forEach((c) => { c.checked = all.checked; });
      sync();
    });
    const rows = page.entries.map((e) => deadRow(e, queue, sync));
    const older = page.next ? h('button', { type: 'button', onclick: () => { state.older.push(params.get('after') || ''); go({ ...Object.fromEntries(params), after: page.next }); } }, 'Older →') : null;
    const newer = params.get('after') ? h('button', { type: 'button', onclick: () => { const prev = state.older.pop(); go({ ...Object.fromEntries(params), after: prev || '' }); } }, '← Newer') : null;
    const shown = page.total === null ? `${page.entries.length} shown${page.next ? ', more older' : ''}` : `${num(page.entries.length)} of ${num(page.total)}`;
    const root = h('div', {},
      h('h1', {}, 'Dead letters', state.meta.queues.length > 1 ? h('span', { class: 'muted' }, ` · ${queue}`) : null),
      h('details', { class: 'panel', open: filtered || window.innerWidth > 720 }, h('summary', {}, filtered ? 'Filter (on)' : 'Filter'), form),
      h('section', { class: 'panel', 'aria-label': 'Dead letters, newest first' },
        h('div', { class: 'actions' }, retrySel, forgetSel, selCount, h('span', { class: 'spacer' }), bulk,
          h('button', { type: 'button', class: 'ghost', onclick: () => render() }, 'Refresh')),
        page.entries.length ? h('div', { class: 'table-wrap' }, h('table', {},
          h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, all), ['Failed', 'Event', 'Reason', 'Failed deliveries', 'Attempts'].map((t, k) =>
            h('th', { scope: 'col', class: k >= 3 || k === 0 ? 'narrow-hide' : '' }, t)))),
          h('tbody', {}, rows))) : h('p', { class: 'muted' }, filtered ? 'No dead letters match this filter.' : `No dead letters in ${queue}.`),
        h('div', { class: 'pager' }, h('span', { class: 'muted' }, shown), newer, older)));
    sync();
    return root;
  }
  function deadRow(e, queue, sync) {
    const box = h('input', { type: 'checkbox', 'aria-label': `Select dead letter ${e.id}`, checked: state.selected.has(e.id) });
    box.addEventListener('change', () => { box.checked ? state.selected.add(e.id) : state.selected.delete(e.id); sync(); });
    const href = `#/dead-letters/${encodeURIComponent(e.id)}${qs({ queue })}`;
    const short = e.event ? e.event.split('\\').pop() : '(not decodable)';
    return h('tr', {},
      h('td', {}, box),
      h('td', { class: 'nowrap narrow-hide' }, when(e.failed_at)),
      h('td', {}, h('a', { href, title: e.event || 'The bytes are not a valid envelope' }, short),
        h('span', { class: 'sub mono clip narrow-hide', title: e.id }, e.id), h('span', { class: 'sub narrow-only' }, when(e.failed_at))),
      h('td', {}, h('span', { class: 'badge bad' }, e.code), h('span', { class: 'sub clip', title: e.reason }, e.reason)),
      h('td', { class: 'narrow-hide mono' }, e.deliveries.length ? e.deliveries.map((d) => h('div', {}, d.delivery)) : '–'),
      h('td', { class: 'narrow-hide num' }, num(e.attempts)));
  }
  async function action(verb, body) {
    try {
      const r = await api(`/dead-letters/${verb}`, body);
      const did = verb === 'retry' ? 'Retried' : 'Forgot';
      toast(`${did} ${num(r.done.length)} dead letter(s)${r.missing.length ? `; ${num(r.missing.length)} were already gone` : ''}.`);
      state.selected.clear();
      // From one entry's page, back to the list it belongs to; a list is shown again.
      if (/^#\/dead-letters\/[^?]/.test(location.hash)) location.hash = `#/dead-letters${qs({ queue: body.queue })}`;
      else render();
    } catch (err) { toast(`Could not ${verb}: ${err.message}`, true); }
  }
  async function act2(path, body, ok) {
    try { await api(path, body); toast(ok); render(); } catch (err) { toast(err.message, true); }
  }
  const confirmed = (msg) => window.confirm(msg);
  function go(params) {
    location.hash = `#/dead-letters${qs(params)}`;
  }

  async function deadLetter(id, params) {
    const queue = queueOf(params);
    const d = await api(`/dead-letters/${encodeURIComponent(id)}${qs({ queue })}`);
    const payload = d.payload_pretty || d.payload || d.payload_base64 || '';
    const kind = d.payload_pretty ? 'JSON, pretty-printed (the original bytes are kept as they were)' : d.payload_base64 ? 'not UTF-8: base64 of the original bytes' : 'not JSON: the original text';
    const copy = h('button', { type: 'button', class: 'ghost', onclick: () => navigator.clipboard.writeText(d.payload || payload).then(() => toast('Payload copied.'), () => toast('Copy failed.', true)) }, 'Copy');
    return h('div', {},
      h('p', {}, h('a', { href: `#/dead-letters${qs({ queue })}` }, '← All dead letters')),
      h('h1', { class: 'wrap' }, d.event || '(not decodable)'),
      h('section', { class: 'panel' },
        h('div', { class: 'actions' },
          h('button', { type: 'button', class: 'primary', onclick: () => action('retry', { queue, ids: [id] }) }, 'Retry'),
          h('button', { type: 'button', class: 'danger', onclick: () => confirmed('Forget this dead letter? Its payload is deleted.') && action('forget', { queue, ids: [id] }) }, 'Forget'),
          h('span', { class: 'hint' }, d.deliveries.length ? `Retry runs only ${d.deliveries.map((x) => x.delivery).join(', ')} again.` : 'Retry puts the envelope back as it was.')),
        h('dl', { class: 'facts' },
          h('dt', {}, 'Reason'), h('dd', {}, h('span', { class: 'badge bad' }, d.code), ' ', d.reason),
          h('dt', {}, 'Failed'), h('dd', {}, stamp(d.failed_at), h('span', { class: 'muted' }, ` (${ago(d.failed_at)})`)),
          h('dt', {}, 'Attempts'), h('dd', {}, num(d.attempts)),
          h('dt', {}, 'Dead-letter id'), h('dd', { class: 'mono' }, d.id),
          h('dt', {}, 'Envelope id'), h('dd', { class: 'mono' }, d.envelope_id || '–'),
          h('dt', {}, 'Queue'), h('dd', { class: 'mono' }, d.queue))),
      d.deliveries.length ? h('section', { class: 'panel' }, h('h2', {}, 'Failed deliveries'), h('div', { class: 'table-wrap' }, h('table', {},
        h('thead', {}, h('tr', {}, ['Delivery', 'Code', 'Error', 'Retryable'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, d.deliveries.map((x) => h('tr', {}, h('td', { class: 'mono' }, x.delivery), h('td', {}, h('span', { class: 'badge bad' }, x.code)),
          h('td', { class: 'wrap' }, x.error), h('td', {}, x.retryable ? 'yes (attempts ran out)' : 'no'))))))) : null,
      h('section', { class: 'panel' }, h('div', { class: 'row' }, h('h2', {}, 'Payload'), copy), h('p', { class: 'hint' }, kind),
        h('pre', { class: 'payload', tabindex: '0', 'aria-label': 'Payload' }, payload)));
  }

  // ---- Connections ----
  async function connections() {
    const r = await api('/connections?minutes=60');
    const root = h('div', {}, h('h1', {}, 'Pusher connections'));
    if (!r.connections.length) root.append(h('p', { class: 'panel muted' }, 'No Pusher connection is configured.'));
    for (const c of r.connections) root.append(connectionPanel(c));
    return root;
  }
  function connectionPanel(c) {
    const starts = c.minutes.map((m) => m.start_ms);
    const ok = c.minutes.map((m) => Object.entries(m.statuses).filter(([k]) => /^2/.test(k)).reduce((t, [, v]) => t + v, 0));
    const bad = c.minutes.map((m, i) => Object.values(m.statuses).reduce((t, v) => t + v, 0) - ok[i]);
    const totals = {};
    c.minutes.forEach((m) => Object.entries(m.statuses).forEach(([k, v]) => { totals[k] = (totals[k] || 0) + v; }));
    const circuit = { closed: ['ok', 'closed'], open: ['bad', 'open'], half_open: ['warn', 'half-open'] }[c.circuit.state];
    const statusCls = (st) => (/^2/.test(st) ? 'ok' : /^4/.test(st) && st !== '429' ? 'warn' : 'bad');
    return h('section', { class: 'panel', 'aria-labelledby': `c-${c.name}` },
      h('div', { class: 'queue-head' }, h('h2', { id: `c-${c.name}` }, c.name), h('span', { class: `badge ${circuit[0]}` }, `circuit ${circuit[1]}`),
        c.in_use ? null : h('span', { class: 'badge plain' }, 'not used by any route'), c.configured ? null : h('span', { class: 'badge warn' }, 'credentials missing')),
      h('dl', { class: 'facts' },
        h('dt', {}, 'Endpoint'), h('dd', { class: 'mono' }, c.endpoint),
        h('dt', {}, 'App id'), h('dd', { class: 'mono' }, c.app_id || '–'),
        c.circuit.state !== 'closed' ? [h('dt', {}, 'Circuit'), h('dd', {}, c.circuit.state === 'open' ? `open until ${stamp(c.circuit.until_ms)}: ` : 'half-open: the next request probes; ', c.circuit.reason)] : null),
      h('div', { class: 'charts' },
        chart('Requests per minute', bars('Pusher requests per minute', [{ name: '2xx', values: ok, cls: 'bar' }, { name: 'errors', values: bad, cls: 'bar bad' }], starts),
          [key('', `2xx ${num(ok.reduce((a, b) => a + b, 0))}`), key('bad', `other ${num(bad.reduce((a, b) => a + b, 0))}`)]),
        h('div', { class: 'chart' }, h('h3', {}, 'Statuses, last hour'), Object.keys(totals).length
          ? h('div', { class: 'row' }, Object.entries(totals).sort().map(([k, v]) => h('span', { class: `badge ${statusCls(k)}` }, `${k}: ${num(v)}`)))
          : h('p', { class: 'muted' }, 'No requests.'),
        h('h3', {}, 'Last requests'), c.recent.length
          ? h('ol', { class: 'mono' }, c.recent.slice(0, 10).map((x) => h('li', {}, h('span', { class: `badge ${statusCls(x.status)}` }, x.status), ' ', when(x.at_ms))))
          : h('p', { class: 'muted' }, 'None yet.'))));
  }

  // ---- Configuration ----
  async function config() {
    const text = await api('/config');
    return h('div', {}, h('h1', {}, 'Configuration'),
      h('section', { class: 'panel' }, h('p', { class: 'hint' }, 'The effective configuration (file, ${VAR} expansion, environment overrides), secrets masked, as herald check-config prints it.'),
        h('pre', { class: 'config', tabindex: '0', 'aria-label': 'Configuration' }, text)));
  }

  // ---- Routing and refresh ----
  function route() {
    const [path, query] = (location.hash.replace(/^#/, '') || '/').split('?');
    const params = new URLSearchParams(query || '');
    const parts = path.split('/').filter(Boolean);
    if (parts[0] === 'dead-letters' && parts[1]) return { view: 'dead-letters', run: () => deadLetter(decodeURIComponent(parts.slice(1).join('/')), params), live: false };
    const views = { 'dead-letters': [() => deadLetters(params), false], processes: [processes, true], connections: [connections, true], config: [config, false] };
    const [run, live] = views[parts[0]] || [overview, true];
    return { view: views[parts[0]] ? parts[0] : 'overview', run, live };
  }
  async function render(quiet) {
    if (state.busy) { state.again = true; return; }
    state.busy = true;
    const r = route();
    document.querySelectorAll('nav a').forEach((a) => (a.dataset.view === r.view ? a.setAttribute('aria-current', 'page') : a.removeAttribute('aria-current')));
    const focusKey = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.key : null;
    try {
      const view = await r.run();
      const m = main();
      m.replaceChildren(view);
      if (focusKey) { const el = m.querySelector(`[data-key="${CSS.escape(focusKey)}"]`); if (el) el.focus(); }
      document.getElementById('updated').textContent = `Updated ${stamp(Date.now()).slice(11)}`;
      if (!document.documentElement.dataset.ready) window.heraldFirstRenderMs = performance.now();
      document.documentElement.dataset.ready = r.view;
    } catch (err) {
      if (!quiet) main().replaceChildren(h('div', { class: 'alert bad', role: 'alert' }, `Could not load: ${err.message}`));
      else toast(`Refresh failed: ${err.message}`, true);
    } finally {
      state.busy = false;
    }
    if (state.again) { state.again = false; return render(); }
    clearTimeout(state.timer);
    if (state.live && r.live) state.timer = setTimeout(() => render(true), REFRESH_MS);
  }

  async function start() {
    state.meta = await api('/meta');
    document.getElementById('version').textContent = `v${state.meta.version}`;
    document.getElementById('logout').hidden = state.meta.auth !== 'token';
    const live = document.getElementById('live');
    live.addEventListener('click', () => {
      state.live = !state.live;
      live.setAttribute('aria-pressed', String(state.live));
      live.textContent = state.live ? 'Live' : 'Paused';
      render(true);
    });
    // A new view starts at its top, with the focus on it (screen readers announce it).
    window.addEventListener('hashchange', () => {
      render().then(() => { window.scrollTo(0, 0); main().focus({ preventScroll: true }); });
    });
    render();
  }
  start().catch((err) => main().replaceChildren(h('div', { class: 'alert bad', role: 'alert' }, `Could not start: ${err.message}`)));
})();
