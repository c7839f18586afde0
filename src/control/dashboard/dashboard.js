// The Portcullis dashboard: plain DOM, uPlot for charts, live updates from /api/events.
// Everything from the daemon is written with textContent: log lines and reasons carry attacker-chosen text.

const TOKEN_KEY = 'portcullis-token';
const PAGE = 50;
const COLORS = ['#4ea1ff', '#ff6b6b', '#3ecf8e', '#f5b942', '#c77dff', '#ff9f5a', '#5ad1e6', '#e66fa8', '#9ccc65', '#b0bec5'];

const $ = (id) => document.getElementById(id);
const state = { range: '1h', offset: 0, total: 0, query: '', charts: {}, jailsSeen: new Map() };

// ---- token and API ----------------------------------------------------------

function token() {
  return sessionStorage.getItem(TOKEN_KEY) || '';
}

function authHeaders() {
  const t = token();
  return t ? { authorization: `Bearer ${t}` } : {};
}

async function api(path, options = {}) {
  const res = await fetch(path, { cache: 'no-store', ...options, headers: { ...authHeaders(), ...(options.headers || {}) } });
  let body = null;
  const text = await res.text();
  try { body = text ? JSON.parse(text) : null; } catch { body = { error: text }; }
  return { ok: res.ok, status: res.status, body, headers: res.headers };
}

function showTokenState() {
  $('token-state').textContent = token() ? 'token set for this tab' : '';
  $('token').value = '';
}

$('token-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const t = $('token').value.trim();
  if (t) sessionStorage.setItem(TOKEN_KEY, t);
  showTokenState();
  restartStream();
});
$('forget').addEventListener('click', () => {
  sessionStorage.removeItem(TOKEN_KEY);
  showTokenState();
});

// ---- helpers ----------------------------------------------------------------

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function row(cells) {
  const tr = document.createElement('tr');
  for (const c of cells) tr.append(c instanceof Node ? c : el('td', c));
  return tr;
}

function td(text, cls) {
  return el('td', text, cls);
}

function fill(tbody, rows, columns, emptyText) {
  tbody.replaceChildren(...(rows.length ? rows : [row([Object.assign(td(emptyText, 'empty'), { colSpan: columns })])]));
}

const fmt = new Intl.NumberFormat('en');

function ago(iso) {
  if (!iso) return '–';
  const s = Math.round((Date.now() - Date.parse(iso)) / 1000);
  if (s < 5) return 'just now';
  if (s < 90) return `${s}s ago`;
  if (s < 5400) return `${Math.round(s / 60)}m ago`;
  if (s < 129600) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86400)}d ago`;
}

function until(iso) {
  if (iso === null) return 'permanent';
  const s = Math.round((Date.parse(iso) - Date.now()) / 1000);
  if (s <= 0) return 'ending';
  if (s < 90) return `in ${s}s`;
  if (s < 5400) return `in ${Math.round(s / 60)}m`;
  if (s < 129600) return `in ${Math.round(s / 3600)}h`;
  return `in ${Math.round(s / 86400)}d`;
}

function bytes(n) {
  if (n === undefined || n === null) return '–';
  if (n < 1024) return `${n} B`;
  if (n < 1 << 20) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / (1 << 20)).toFixed(1)} MiB`;
}

function debounce(fn, ms) {
  let t = null;
  return () => { if (t === null) t = setTimeout(() => { t = null; fn(); }, ms); };
}

function colorOf(name) {
  if (!state.jailsSeen.has(name)) state.jailsSeen.set(name, COLORS[state.jailsSeen.size % COLORS.length]);
  return state.jailsSeen.get(name);
}

// ---- charts -----------------------------------------------------------------

function chartWidth(id) {
  return Math.max(300, $(id).clientWidth);
}

function axes() {
  const grid = { stroke: '#263140', width: 1 };
  return [
    { stroke: '#8796a8', grid, ticks: grid },
    { stroke: '#8796a8', grid, ticks: grid, size: 50 },
  ];
}

/** Draws (or redraws when its series changed) one chart. */
function draw(id, names, data, kind, colors) {
  const key = `${names.join('\u0000')}|${kind}`;
  let chart = state.charts[id];
  if (chart && chart.key === key) {
    chart.plot.setData(data);
    return;
  }
  if (chart) chart.plot.destroy();
  const series = [{}].concat(names.map((n, i) => ({
    label: n,
    stroke: colors[i],
    width: 2,
    fill: kind === 'bars' ? `${colors[i]}99` : `${colors[i]}22`,
    ...(kind === 'bars' ? { paths: uPlot.paths.bars({ size: [0.7, 40], gap: 1 }) } : {}),
    points: { show: false },
  })));
  const plot = new uPlot({ width: chartWidth(id), height: 200, series, axes: axes(), scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(1, max)] } }, legend: { live: false }, cursor: { drag: { x: false, y: false } } }, data, $(id));
  state.charts[id] = { plot, key };
}

async function refreshSeries() {
  const r = await api(`/api/series?range=${state.range}`);
  if (!r.ok) return;
  const s = r.body;
  const failJails = Object.keys(s.failures);
  const failNames = failJails.length ? failJails : ['no failures yet'];
  const failData = failJails.length ? failJails.map((j) => s.failures[j]) : [s.times.map(() => 0)];
  draw('chart-failures', failNames, [s.times, ...failData], 'lines', failNames.map(colorOf));
  draw('chart-bans', ['bans', 'unbans'], [s.times, s.bans, s.unbans], 'bars', ['#ff6b6b', '#3ecf8e']);
  const dropJails = Object.keys(s.dropped);
  $('dropped-note').hidden = dropJails.length > 0;
  const dropNames = dropJails.length ? dropJails : ['no counters'];
  draw('chart-dropped', dropNames, [s.times, ...(dropJails.length ? dropJails.map((j) => s.dropped[j]) : [s.times.map(() => 0)])], 'lines', dropNames.map(colorOf));
  document.body.dataset.seriesPoints = String(failData.reduce((n, a) => n + a.reduce((x, y) => x + y, 0), 0));
}

for (const b of $('range').querySelectorAll('button')) {
  b.addEventListener('click', () => {
    state.range = b.dataset.range;
    for (const o of $('range').querySelectorAll('button')) o.classList.toggle('on', o === b);
    void refreshSeries();
  });
}

new ResizeObserver(() => {
  for (const [id, c] of Object.entries(state.charts)) c.plot.setSize({ width: chartWidth(id), height: 200 });
}).observe(document.querySelector('main'));

// ---- bans table -------------------------------------------------------------

function banMessage(text, error) {
  const m = $('ban-msg');
  m.hidden = false;
  m.textContent = text;
  m.classList.toggle('error', !!error);
}

async function unban(target, jail) {
  const r = await api(`/api/bans/${encodeURIComponent(target)}?jail=${encodeURIComponent(jail)}`, { method: 'DELETE' });
  if (r.status === 401) banMessage(`Unban of ${target} refused: ${token() ? 'the API token was not accepted' : 'enter the API token above first'}.`, true);
  else if (!r.ok) banMessage(`Unban of ${target} failed: ${r.body && r.body.error}`, true);
  else banMessage(`Unbanned ${target} in ${jail}.`, false);
  await refreshBans();
}

async function refreshBans() {
  const q = state.query;
  const params = new URLSearchParams({ offset: String(state.offset), limit: String(PAGE) });
  if (q) params.set(q.includes('/') ? 'prefix' : 'q', q);
  const r = await api(`/api/bans?${params}`);
  if (!r.ok) return;
  state.total = Number(r.headers.get('x-total-count') || r.body.length);
  const rows = r.body.map((b) => {
    const button = el('button', 'Unban', 'danger');
    button.type = 'button';
    button.dataset.target = b.target;
    button.addEventListener('click', () => void unban(b.target, b.jail));
    const action = td();
    action.append(button);
    return row([td(b.target, 'addr'), td(b.jail), Object.assign(td(ago(b.time)), { title: b.time }), Object.assign(td(until(b.until)), { title: b.until || 'permanent' }), td(b.reason), td(b.origin), action]);
  });
  fill($('bans').tBodies[0], rows, 7, q ? 'no ban matches' : 'no active bans');
  $('bans-count').textContent = `${fmt.format(state.total)} active${q ? ' matching' : ''}`;
  const pages = Math.max(1, Math.ceil(state.total / PAGE));
  $('page').textContent = `${Math.floor(state.offset / PAGE) + 1} / ${pages}`;
  $('prev').disabled = state.offset === 0;
  $('next').disabled = state.offset + PAGE >= state.total;
}

$('search').addEventListener('input', debounce(() => {
  state.query = $('search').value.trim();
  state.offset = 0;
  void refreshBans();
}, 150));
$('prev').addEventListener('click', () => { state.offset = Math.max(0, state.offset - PAGE); void refreshBans(); });
$('next').addEventListener('click', () => { state.offset += PAGE; void refreshBans(); });

// ---- status, sources, top, health, recent -----------------------------------

async function refreshStatus() {
  const [s, jails] = await Promise.all([api('/api/status'), api('/api/jails')]);
  if (!s.ok) return;
  const st = s.body;
  $('node').textContent = `${st.node} · up since ${new Date(st.startedAt).toLocaleString()}`;
  $('t-bans').textContent = fmt.format(st.jails.reduce((n, j) => n + j.bannedNow, 0));
  $('t-failing').textContent = fmt.format(st.jails.reduce((n, j) => n + j.failing, 0));
  $('t-read').textContent = fmt.format(st.linesRead);
  $('t-matched').textContent = fmt.format(st.linesMatched);
  const bad = st.enforcers.filter((e) => !e.ready);
  const enf = $('t-enforcers');
  enf.textContent = bad.length ? `${bad.length} failing` : st.enforcers.map((e) => e.name).join(', ') || 'none';
  enf.className = `value ${bad.length ? 'bad' : 'ok'}`;
  enf.title = bad.map((e) => `${e.name}: ${e.lastError}`).join('\n');

  const sieging = jails.ok ? jails.body.filter((j) => j.siege) : [];
  $('t-siege').textContent = sieging.length ? `${sieging.length} jail(s)` : 'none';
  if (jails.ok) {
    $('siege').replaceChildren(...jails.body.map((j) => {
      const li = el('li');
      li.append(el('strong', j.name), ' ', el('span', j.siege ? 'under siege' : 'normal', j.siege ? 'bad' : 'ok'), el('span', ` · ${j.failing} failing · ${j.bannedNow} banned`, 'muted'));
      return li;
    }));
  }

  const seen = new Map();
  for (const j of st.jails) for (const src of j.sources) {
    const entry = seen.get(src.id) || { src, jails: [] };
    entry.jails.push(j.name);
    seen.set(src.id, entry);
  }
  const rows = [];
  for (const { src, jails: names } of seen.values()) {
    for (const item of src.items.length ? src.items : [{ name: '–', state: src.error ? 'error' : 'idle' }]) {
      const stateCell = td(item.state, item.state === 'following' ? 'ok' : item.state === 'error' ? 'bad' : '');
      rows.push(row([td(src.id), td(item.name, 'mono'), stateCell, td(bytes(item.lagBytes), 'num'), td(item.lastLineAt ? ago(new Date(item.lastLineAt).toISOString()) : '–'), td(names.join(', '))]));
    }
  }
  fill($('sources').tBodies[0], rows, 6, 'no sources followed');
}

async function refreshTop() {
  const r = await api('/api/top?limit=10');
  if (!r.ok) return;
  fill($('top-addresses').tBodies[0], r.body.addresses.map((a) => row([td(a.key, 'addr'), td(fmt.format(a.failures), 'num'), td(fmt.format(a.bans), 'num'), td(a.jails.join(', '))])), 4, 'nobody yet');
  fill($('top-networks').tBodies[0], r.body.networks.map((n) => row([td(n.key, 'addr'), td(fmt.format(n.addresses), 'num'), td(fmt.format(n.failures), 'num'), td(fmt.format(n.bans), 'num')])), 4, 'nobody yet');
}

async function refreshHealth() {
  const r = await api('/api/recent?kind=health&limit=10');
  if (!r.ok) return;
  $('health').replaceChildren(...(r.body.length ? r.body.map((e) => {
    const li = el('li');
    li.append(el('span', `${ago(e.seen)} `, 'muted'), el('strong', `${e.filter}/${e.pattern}`, 'kind-health'), el('div', e.line, 'mono line'));
    return li;
  }) : [el('li', 'no health warnings', 'empty')]));
}

async function refreshRecent() {
  const r = await api('/api/recent?limit=15');
  if (!r.ok) return;
  fill($('recent').tBodies[0], r.body.map((e) => row([td(ago(e.seen)), td(e.kind, e.kind === 'health' ? 'kind-health' : ''), td(e.address || '–', 'addr'), td(e.jails.join(', ')), td(e.line, 'line')])), 5, 'no events yet');
}

// ---- live stream ------------------------------------------------------------

const soon = {
  bans: debounce(() => void refreshBans(), 50),
  series: debounce(() => void refreshSeries(), 1000),
  status: debounce(() => void refreshStatus(), 300),
  top: debounce(() => void refreshTop(), 1000),
  recent: debounce(() => void refreshRecent(), 500),
  health: debounce(() => void refreshHealth(), 500),
};

function onFrame(frame) {
  let event = 'message';
  let data = '';
  for (const line of frame.split('\n')) {
    if (line.startsWith('event:')) event = line.slice(6).trim();
    else if (line.startsWith('data:')) data += line.slice(5).trim();
  }
  if (event === 'decision') {
    soon.bans(); soon.series(); soon.status(); soon.top();
  } else if (event === 'activity') {
    const a = JSON.parse(data);
    soon.series(); soon.status(); soon.top(); soon.recent();
    if (a.sample.some((e) => e.kind === 'health')) soon.health();
  }
}

let streamAbort = null;

function setLive(on) {
  const b = $('live');
  b.textContent = on ? 'live' : 'reconnecting…';
  b.className = `badge ${on ? 'on' : 'off'}`;
}

async function stream() {
  for (;;) {
    const controller = new AbortController();
    streamAbort = controller;
    try {
      const res = await fetch('/api/events', { headers: authHeaders(), cache: 'no-store', signal: controller.signal });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      setLive(true);
      // A fresh connection may have missed changes: catch up once.
      for (const f of Object.values(soon)) f();
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          onFrame(buf.slice(0, i));
          buf = buf.slice(i + 2);
        }
      }
    } catch {
      // Reconnect below.
    }
    if (controller.signal.aborted && streamAbort !== controller) return;
    setLive(false);
    await new Promise((r) => setTimeout(r, 2000));
  }
}

function restartStream() {
  const old = streamAbort;
  streamAbort = null;
  if (old) old.abort();
  void stream();
}

// ---- start ------------------------------------------------------------------

showTokenState();
await Promise.all([refreshStatus(), refreshSeries(), refreshBans(), refreshTop(), refreshHealth(), refreshRecent()]);
document.body.dataset.ready = 'true';
void stream();
// Relative times and the failing/ban counts drift without events: a slow refresh keeps them honest.
setInterval(() => { void refreshStatus(); void refreshSeries(); void refreshBans(); }, 30_000);
