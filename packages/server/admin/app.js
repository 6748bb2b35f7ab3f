/* global document, confirm, Element */
/**
 * The Gatehouse admin UI: plain JavaScript, no build step. It signs in by trading an API key for
 * a session cookie (the key is dropped from the page at once), then polls the server API through
 * /admin/call/<name> every two seconds with the session's CSRF token. Every value from the
 * gateway is written with textContent, never as HTML.
 */
const POLL_MS = 2000;
let csrf = '';
let timer;
let selected = '';

const $ = (id) => document.getElementById(id);

/** Builds an element with text or children. */
function el(tag, text, className) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = String(text);
  if (className) e.className = className;
  return e;
}

function row(cells) {
  const tr = document.createElement('tr');
  for (const [value, className] of cells) tr.append(value instanceof Element ? wrap(value, className) : el('td', value, className));
  return tr;
}

/** Names each cell after its column, so a phone can show a row as a labelled card. */
function labelCells(table) {
  const names = [...table.tHead.rows[0].cells].map((th) => th.textContent);
  for (const tr of table.tBodies[0].rows) [...tr.cells].forEach((td, i) => (td.dataset.label = names[i] ?? ''));
}

function wrap(child, className) {
  const td = el('td', undefined, className);
  td.append(child);
  return td;
}

function fmt(n, digits = 0) {
  if (n === null || n === undefined) return '–';
  return Number(n).toLocaleString(undefined, { maximumFractionDigits: digits });
}

function bytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

class SignedOut extends Error {}

/** One server API call through the session. */
async function call(name, body = {}) {
  const res = await fetch(`/admin/call/${name}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-csrf-token': csrf },
    body: JSON.stringify(body),
    credentials: 'same-origin',
  });
  const json = await res.json().catch(() => ({}));
  if (res.status === 401) throw new SignedOut('signed out');
  if (!res.ok) throw new Error(json.error?.message ?? `HTTP ${res.status}`);
  return json;
}

function showSignIn(message = '') {
  clearTimeout(timer);
  csrf = '';
  $('dashboard').hidden = true;
  $('sign-out').hidden = true;
  $('sign-in').hidden = false;
  $('summary').textContent = '';
  $('sign-in-error').textContent = message;
}

function showDashboard(token) {
  csrf = token;
  $('sign-in').hidden = true;
  $('dashboard').hidden = false;
  $('sign-out').hidden = false;
  void refresh();
}

async function refresh() {
  clearTimeout(timer);
  try {
    await Promise.all([loadInfo(), loadChannels(), selected ? loadChannel(selected) : undefined]);
  } catch (err) {
    if (err instanceof SignedOut) return showSignIn('The session ended; sign in again.');
    $('summary').textContent = `refresh failed: ${err.message}`;
  }
  timer = setTimeout(refresh, POLL_MS);
}

async function loadInfo() {
  const info = await call('info', { slowest: 10 });
  const body = $('nodes').tBodies[0];
  body.replaceChildren();
  const slow = [];
  for (const n of info.nodes) {
    const state = n.draining ? 'draining' : n.ready ? 'ready' : 'not ready';
    const drain = el('button', 'Drain', 'small');
    drain.type = 'button';
    drain.disabled = n.draining;
    drain.addEventListener('click', () => drainNode(n.node));
    const tr = row([
      [n.node, 'mono'],
      [state, `state-${n.draining ? 'draining' : n.ready ? 'ready' : 'down'}`],
      [fmt(n.connections), 'num'],
      [fmt(n.connectsPerSecond, 1), 'num'],
      [fmt(n.deliveriesPerSecond, 1), 'num'],
      [n.publishDeliveryP99Ms === null ? '–' : `≤ ${fmt(n.publishDeliveryP99Ms, 1)} ms`, 'num'],
      [bytes(n.outboundQueueMaxBytes), 'num'],
      [`${fmt(n.lagMs, 1)} ms`, 'num'],
      [drain],
    ]);
    tr.dataset.node = n.node;
    body.append(tr);
    for (const s of n.slowest ?? []) slow.push({ node: n.node, ...s });
  }
  labelCells($('nodes'));
  $('missing').textContent = info.missing.length > 0 ? `(no answer from ${info.missing.join(', ')})` : '';
  const plural = (n, word) => `${fmt(n)} ${word}${n === 1 ? '' : 's'}`;
  $('summary').textContent = `${plural(info.nodes.length, 'node')} · ${plural(info.connections, 'connection')}`;
  slow.sort((a, b) => b.pendingBytes - a.pendingBytes);
  $('slowest').tBodies[0].replaceChildren(
    ...slow
      .slice(0, 10)
      .map((s) =>
        row([[s.node, 'mono'], [s.user || '(anonymous)'], [s.client, 'mono'], [bytes(s.pendingBytes), 'num'], [fmt(s.channels), 'num']]),
      ),
  );
  labelCells($('slowest'));
}

async function loadChannels() {
  const pattern = $('channel-filter').value.trim() || '*';
  let r;
  try {
    r = await call('channels', { pattern, limit: 50 });
  } catch (err) {
    if (err instanceof SignedOut) throw err;
    $('channels-note').textContent = err.message;
    return;
  }
  const body = $('channels').tBodies[0];
  body.replaceChildren(
    ...r.channels.map((c) => {
      const tr = row([
        [c.channel, 'mono'],
        [fmt(c.subscribers), 'num'],
      ]);
      tr.className = c.channel === selected ? 'pick selected' : 'pick';
      tr.dataset.channel = c.channel;
      tr.addEventListener('click', () => selectChannel(c.channel));
      return tr;
    }),
  );
  $('channels-note').textContent =
    r.channels.length === 0 ? 'No channel has subscribers.' : r.truncated ? 'More channels match; narrow the filter.' : '';
}

function selectChannel(channel) {
  selected = channel;
  $('channel-name').textContent = channel;
  $('channel-hint').hidden = true;
  $('publish-channel').value = channel;
  for (const tr of $('channels').tBodies[0].rows) tr.classList.toggle('selected', tr.dataset.channel === channel);
  void loadChannel(channel).catch((err) => {
    if (err instanceof SignedOut) showSignIn('The session ended; sign in again.');
  });
}

async function loadChannel(channel) {
  const history = $('history');
  try {
    const h = await call('history', { channel, limit: 20, reverse: true });
    if (selected !== channel) return;
    history.replaceChildren(
      ...h.publications.map((p) => {
        const li = el('li');
        li.value = p.offset;
        li.append(el('code', JSON.stringify(p.data)), el('span', ` · ${new Date(p.ts).toLocaleTimeString()}`, 'muted'));
        return li;
      }),
    );
    if (h.publications.length === 0) history.replaceChildren(el('li', 'no publications kept', 'muted'));
  } catch (err) {
    if (err instanceof SignedOut) throw err;
    history.replaceChildren(el('li', `history unavailable: ${err.message}`, 'muted'));
  }
  const presence = $('presence');
  try {
    const p = await call('presence', { channel });
    if (selected !== channel) return;
    const members = Array.isArray(p.members) ? p.members : Object.values(p.members ?? p.presence ?? {});
    presence.replaceChildren(
      ...members.map((m) => el('li', typeof m === 'string' ? m : (m.user ?? m.client ?? JSON.stringify(m)), 'mono')),
    );
    if (members.length === 0) presence.replaceChildren(el('li', 'nobody present', 'muted'));
  } catch (err) {
    if (err instanceof SignedOut) throw err;
    presence.replaceChildren(el('li', 'presence not enabled', 'muted'));
  }
}

async function act(what, work) {
  const out = $('action-result');
  out.className = 'muted';
  try {
    out.textContent = await work();
    void refresh();
  } catch (err) {
    if (err instanceof SignedOut) return showSignIn('The session ended; sign in again.');
    out.className = 'error';
    out.textContent = `${what} failed: ${err.message}`;
  }
}

function drainNode(node) {
  if (!confirm(`Drain ${node}? It stops taking connections and moves its clients to other nodes.`)) return;
  void act('drain', async () => {
    await call('drain', { node });
    return `${node} is draining`;
  });
}

$('publish-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const channel = $('publish-channel').value.trim();
  const text = $('publish-data').value;
  let data;
  try {
    data = JSON.parse(text);
  } catch {
    data = text;
  }
  void act('publish', async () => {
    const r = await call('publish', { channel, data });
    return `published to ${r.channel} at offset ${r.offset}`;
  });
});

$('disconnect-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const user = $('disconnect-user').value.trim();
  const reconnect = $('disconnect-reconnect').checked;
  void act('disconnect', async () => {
    const r = await call('disconnect', { user, reconnect });
    return `disconnected ${r.disconnected} connection${r.disconnected === 1 ? '' : 's'} of ${user} (code ${r.code})`;
  });
});

$('revoke-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const jti = $('revoke-jti').value.trim();
  void act('revoke', async () => {
    await call('revoke', { jti });
    return `token ${jti} revoked on every node`;
  });
});

$('channel-filter').addEventListener('change', () => void refresh());

$('sign-in-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const input = $('key');
  const key = input.value;
  input.value = '';
  const res = await fetch('/admin/session', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ key }),
    credentials: 'same-origin',
  });
  const json = await res.json().catch(() => ({}));
  if (!res.ok) return showSignIn(json.error?.message ?? `HTTP ${res.status}`);
  showDashboard(json.csrf);
});

$('sign-out').addEventListener('click', async () => {
  await fetch('/admin/session', { method: 'DELETE', credentials: 'same-origin' });
  showSignIn('Signed out.');
});

// A session that is still open (a reload) goes straight to the dashboard.
fetch('/admin/session', { credentials: 'same-origin' })
  .then((res) => (res.ok ? res.json() : undefined))
  .then((s) => (s ? showDashboard(s.csrf) : showSignIn()))
  .catch(() => showSignIn());
