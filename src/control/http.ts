import { existsSync, readFileSync, statSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createRequire } from 'node:module';
import type { AddressInfo, Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { timingSafeEqual, createHash } from 'node:crypto';
import type { Config } from '../config/load.js';
import { canonicalAddress, canonicalTarget, networkContains, parseNetwork } from '../core/address.js';
import { parseBantime } from '../core/duration.js';
import { PortcullisError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { Decision, Event } from '../core/types.js';
import { banJson, type Daemon } from '../daemon/daemon.js';
import type { BanFilter, BanRecord } from '../state/store.js';
import { Activity, recentJson } from './activity.js';
import { parseListen } from './listen.js';
import { METRICS_CONTENT_TYPE, renderMetrics } from './metrics.js';

/**
 * The HTTP side of the daemon: dashboard at `/`, Prometheus text at `/metrics`,
 * a JSON API under `/api/`, and live server-sent events at `/api/events`.
 *
 * Reads are open to loopback clients; from anywhere else they need the bearer
 * token too. Every mutation (ban, unban) needs `Authorization: Bearer <token>`
 * (from `http.token` or `http.token_file`, re-read when the file changes) and
 * leaves an audit line in the log, refused or done. Without a configured token
 * the API is read-only. Browsers cannot attach that header cross-site without
 * a CORS preflight we never grant, so another site's page cannot ban through a
 * visitor's browser.
 */

const MAX_BODY = 64 * 1024;
const MAX_SSE_CLIENTS = 64;
/** An SSE client this far behind is dropped rather than buffered without end. */
const MAX_SSE_BACKLOG = 1 << 20;
const ACTIVITY_FLUSH_MS = 500;

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

const SECURITY_HEADERS = {
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'content-security-policy': "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
};

class HttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

export class HttpServer {
  /**
   * What the dashboard and /metrics show (counts per filter, series, top offenders): kept only while
   * the server listens. Nobody else reads it, and it cost a 100,000-ban burst 18 % of the pipeline's thread.
   */
  private activity: Activity | null = null;
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  private readonly sse = new Set<ServerResponse>();
  private readonly assets = new Map<string, Asset>();
  private pendingActivity: { count: number; byJail: Record<string, number>; sample: ReturnType<typeof recentJson>[] } = { count: 0, byJail: {}, sample: [] };
  private timers: NodeJS.Timeout[] = [];
  private tokenCache: { mtimeMs: number; token: string | null } | null = null;
  private readonly detach: Array<() => void> = [];
  private boundUrl: string | null = null;

  constructor(private readonly daemon: Daemon, private readonly config: Pick<Config, 'http' | 'jails'>, private readonly log: Logger) {}

  /** Where the server listens (after `listen`), e.g. `http://127.0.0.1:9470`. */
  get url(): string | null {
    return this.boundUrl;
  }

  /**
   * Starts listening. A port already in use or a bad certificate is logged and
   * the daemon goes on without HTTP: protecting the host matters more than the view.
   */
  async listen(): Promise<boolean> {
    const { http } = this.config;
    if (!http.enabled) return false;
    const where = parseListen(http.listen);
    if (!where) throw new PortcullisError(`http.listen ${JSON.stringify(http.listen)} is not HOST:PORT (e.g. 127.0.0.1:9470)`, 2);
    let server: Server;
    try {
      this.loadAssets();
      if ((http.certFile === null) !== (http.keyFile === null)) throw new Error('TLS needs both http.cert_file and http.key_file');
      server = http.certFile && http.keyFile
        ? createHttpsServer({ cert: readFileSync(http.certFile), key: readFileSync(http.keyFile) }, (req, res) => void this.handle(req, res))
        : createHttpServer((req, res) => void this.handle(req, res));
    } catch (e) {
      this.log.error(`http: not started: ${(e as Error).message}`);
      return false;
    }
    server.on('connection', (s: Socket) => { this.sockets.add(s); s.on('close', () => this.sockets.delete(s)); });
    const ok = await new Promise<boolean>((resolve) => {
      server.once('error', (e: NodeJS.ErrnoException) => {
        this.log.error(`http: cannot listen on ${http.listen}: ${e.code === 'EADDRINUSE' ? 'the port is in use (another Portcullis, or another service); choose another http.listen' : e.message} — running without dashboard, API and /metrics`);
        resolve(false);
      });
      server.listen(where.port, where.host, () => resolve(true));
    });
    if (!ok) return false;
    this.server = server;
    const addr = server.address() as AddressInfo;
    const host = addr.family === 'IPv6' || addr.family as unknown === 6 ? `[${addr.address}]` : addr.address;
    this.boundUrl = `${http.certFile ? 'https' : 'http'}://${host}:${addr.port}`;
    if (this.currentToken() === null) this.log.warn('http: no token configured (http.token_file): the API is read-only; bans and unbans over HTTP are refused');
    const activity = new Activity(this.daemon, this.config.jails);
    this.activity = activity;
    activity.startSampling();
    this.followDaemon(activity);
    this.timers.push(setInterval(() => this.flushActivity(), ACTIVITY_FLUSH_MS));
    this.timers.push(setInterval(() => { for (const res of this.sse) res.write(': ping\n\n'); }, 15_000));
    for (const t of this.timers) t.unref();
    this.log.info(`http: dashboard, API and /metrics on ${this.boundUrl}/`);
    return true;
  }

  /** Streams decisions and events to the dashboards connected; formatted only while one is: a burst of bans costs nothing otherwise. */
  private followDaemon(activity: Activity): void {
    const events = this.daemon.events;
    const onDecision = (d: Decision): void => {
      if (this.sse.size > 0) this.broadcast('decision', decisionJson(d));
    };
    const onEvent = (e: Event): void => {
      const p = this.pendingActivity;
      if (this.sse.size === 0) return;
      p.count++;
      const jails = activity.jailsOf(e);
      for (const j of jails) p.byJail[j] = (p.byJail[j] ?? 0) + 1;
      if (p.sample.length < 20 || (e.kind === 'health' && p.sample.length < 100)) p.sample.push(recentJson({ event: e, at: Date.now(), jails }));
    };
    events.on('decision', onDecision);
    events.on('event', onEvent);
    this.detach.push(() => events.off('decision', onDecision), () => events.off('event', onEvent));
  }

  async close(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    for (const off of this.detach.splice(0)) off();
    this.activity?.stop();
    this.activity = null;
    for (const res of this.sse) res.end();
    this.sse.clear();
    const server = this.server;
    this.server = null;
    if (!server) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const s of this.sockets) s.destroy();
    await closed;
  }

  private loadAssets(): void {
    const dir = dashboardDir();
    for (const name of ['index.html', 'dashboard.js', 'dashboard.css']) this.addAsset(`/${name === 'index.html' ? '' : name}`, join(dir, name));
    const uplot = dirname(createRequire(import.meta.url).resolve('uplot'));
    this.addAsset('/vendor/uPlot.iife.min.js', join(uplot, 'uPlot.iife.min.js'));
    this.addAsset('/vendor/uPlot.min.css', join(uplot, 'uPlot.min.css'));
  }

  private addAsset(path: string, file: string): void {
    const body = readFileSync(file);
    const ext = file.slice(file.lastIndexOf('.'));
    this.assets.set(path, { body, type: CONTENT_TYPES[ext] ?? 'application/octet-stream', etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 16)}"` });
  }

  /** The token now in force: `http.token`, or the token file's content (re-read when it changes). */
  private currentToken(): string | null {
    const { token, tokenFile } = this.config.http;
    if (token) return token;
    if (!tokenFile) return null;
    try {
      const st = statSync(tokenFile);
      if (this.tokenCache?.mtimeMs !== st.mtimeMs) {
        const text = readFileSync(tokenFile, 'utf8').trim();
        if (text.length < 16) this.log.error(`http: the token in ${tokenFile} is shorter than 16 characters; refusing to use it (e.g. \`openssl rand -hex 32 > ${tokenFile}\`)`);
        if (st.mode & 0o004) this.log.warn(`http: ${tokenFile} is readable by every user; make it private (chmod 600)`);
        this.tokenCache = { mtimeMs: st.mtimeMs, token: text.length >= 16 ? text : null };
      }
      return this.tokenCache.token;
    } catch (e) {
      if (this.tokenCache?.token !== null) this.log.error(`http: cannot read http.token_file ${tokenFile}: ${(e as Error).message}; the API is read-only until it is readable`);
      this.tokenCache = { mtimeMs: -1, token: null };
      return null;
    }
  }

  private authorized(req: IncomingMessage): boolean {
    const token = this.currentToken();
    const header = req.headers.authorization ?? '';
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!token || !m) return false;
    const given = createHash('sha256').update(m[1]!).digest();
    return timingSafeEqual(given, createHash('sha256').update(token).digest());
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const remote = canonicalAddress(req.socket.remoteAddress ?? '') ?? 'unknown';
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://portcullis.invalid');
    } catch {
      return this.send(res, 400, { error: 'bad request URL' });
    }
    const path = url.pathname;
    try {
      if (req.method === 'GET' || req.method === 'HEAD') {
        const asset = this.assets.get(path);
        if (asset) return this.sendAsset(req, res, asset);
        if (!isLoopback(remote) && !this.authorized(req)) {
          res.setHeader('www-authenticate', 'Bearer realm="portcullis"');
          throw new HttpError(401, 'reads from other hosts need "Authorization: Bearer <token>" (http.token_file)');
        }
        return await this.read(req, res, path, url.searchParams);
      }
      if (req.method === 'POST' || req.method === 'DELETE') return await this.mutate(req, res, path, url.searchParams, remote);
      res.setHeader('allow', 'GET, HEAD, POST, DELETE');
      throw new HttpError(405, `method ${req.method} not allowed`);
    } catch (e) {
      if (e instanceof HttpError) return this.send(res, e.status, { error: e.message });
      if (e instanceof PortcullisError) return this.send(res, e.exitCode === 2 ? 400 : 500, { error: e.message });
      this.log.error(`http: ${req.method} ${path}: ${(e as Error).stack ?? String(e)}`);
      return this.send(res, 500, { error: 'internal error; see the daemon log' });
    }
  }

  private async read(req: IncomingMessage, res: ServerResponse, path: string, q: URLSearchParams): Promise<void> {
    const d = this.daemon;
    // Requests come only through the server, which listens only with its activity made.
    const activity = this.activity!;
    if (path === '/metrics') {
      const text = await renderMetrics(d, activity);
      res.writeHead(200, { 'content-type': METRICS_CONTENT_TYPE, 'cache-control': 'no-store', ...SECURITY_HEADERS });
      res.end(req.method === 'HEAD' ? undefined : text);
      return;
    }
    if (path === '/api/status') return this.send(res, 200, d.status());
    if (path === '/api/jails') return this.send(res, 200, d.status().jails.map((j) => ({ ...j, siege: false })));
    if (path === '/api/bans') return this.listBans(res, q);
    if (path === '/api/history') {
      const target = q.get('target');
      const canonical = target ? canonicalTarget(target) : null;
      if (target && !canonical) throw new HttpError(400, `"${target}" is not an IPv4/IPv6 address or CIDR`);
      const rows = d.store.history({ ...(canonical ? { target: canonical } : {}), ...(q.get('jail') ? { jail: q.get('jail')! } : {}), limit: intParam(q, 'limit', 100, 1000) });
      return this.send(res, 200, rows.map(banJson));
    }
    if (path === '/api/recent') {
      const kind = q.get('kind') ?? undefined;
      return this.send(res, 200, kind === 'health' ? activity.healthLog(intParam(q, 'limit', 50, 100)) : activity.recentEvents(intParam(q, 'limit', 100, 500), kind));
    }
    if (path === '/api/series') {
      const range = q.get('range') ?? '1h';
      if (range !== '1h' && range !== '1d') throw new HttpError(400, 'range is 1h or 1d');
      return this.send(res, 200, activity.series(range));
    }
    if (path === '/api/top') return this.send(res, 200, activity.top(intParam(q, 'limit', 10, 100)));
    if (path.startsWith('/api/explain/')) return this.send(res, 200, d.explain(decodeURIComponent(path.slice('/api/explain/'.length))));
    if (path === '/api/events') return this.openStream(req, res);
    throw new HttpError(404, `no such page: ${path}`);
  }

  /** Active bans, newest first; filters `jail`, `prefix` (text prefix or CIDR), `reason` and `q` (any field); `offset`/`limit` pages, total in X-Total-Count. */
  private listBans(res: ServerResponse, q: URLSearchParams): void {
    const jail = q.get('jail');
    const prefix = q.get('prefix');
    const reason = q.get('reason')?.toLowerCase();
    const text = q.get('q')?.toLowerCase();
    const net = prefix?.includes('/') ? parseNetwork(prefix) : null;
    if (prefix?.includes('/') && !net) throw new HttpError(400, `prefix "${prefix}" is not a CIDR such as 198.51.100.0/24`);
    const filter: BanFilter = { now: Date.now(), jail: jail ?? '', targetPrefix: net ? '' : (prefix ?? '').toLowerCase(), reason: reason ?? '', text: text ?? '' };
    const offset = intParam(q, 'offset', 0, Number.MAX_SAFE_INTEGER, 0);
    const limit = intParam(q, 'limit', 100, 1000);
    const store = this.daemon.store;
    let page: { total: number; bans: BanRecord[] };
    if (net) {
      // A network is matched here, on ids and targets only: the page alone is read in full.
      const inside = store.activeBanTargets(filter).filter((b) => !b.target.includes('/') && networkContains(net, b.target));
      page = { total: inside.length, bans: store.bansById(inside.slice(offset, offset + limit).map((b) => b.id)) };
    } else {
      // The dashboard asks after every change it hears of: at a million bans the count is reused for a while.
      const total = this.daemon.storeCounts.get(`bans matching ${JSON.stringify({ ...filter, now: 0 })}`, () => store.activeBansCount(filter));
      page = { total, bans: store.activeBansPage(filter, offset, limit) };
    }
    res.setHeader('x-total-count', String(page.total));
    this.send(res, 200, page.bans.map((b) => {
      const { liftedAt: _l, liftReason: _r, ...rest } = banJson(b);
      return rest;
    }));
  }

  private async mutate(req: IncomingMessage, res: ServerResponse, path: string, q: URLSearchParams, remote: string): Promise<void> {
    const what = `${req.method} ${path}`;
    const isBan = req.method === 'POST' && path === '/api/bans';
    const isUnban = req.method === 'DELETE' && path.startsWith('/api/bans/') && path.length > '/api/bans/'.length;
    if (!isBan && !isUnban) throw new HttpError(req.method === 'POST' || path.startsWith('/api/bans') ? 405 : 404, `no ${what} here; mutations are POST /api/bans and DELETE /api/bans/{target}`);
    if (!this.authorized(req)) {
      const why = this.currentToken() === null ? 'no token is configured (http.token_file)' : req.headers.authorization ? 'wrong token' : 'no bearer token';
      this.log.warn(`http audit: refused ${what} from ${remote}: ${why}`);
      res.setHeader('www-authenticate', 'Bearer realm="portcullis"');
      throw new HttpError(401, `${why}: send "Authorization: Bearer <token>" with the token from http.token_file`);
    }
    const origin = `http ${remote}`;
    if (isBan) {
      const body = await readJson(req);
      if (typeof body.target !== 'string') throw new HttpError(400, 'body must be {"target": "ADDR|CIDR", "jail"?: "NAME", "for"?: "1h|permanent"}');
      if (body.jail !== undefined && typeof body.jail !== 'string') throw new HttpError(400, '"jail" must be a jail name');
      let duration: number | null | undefined;
      if (body.for !== undefined && body.for !== null) {
        duration = typeof body.for === 'string' || typeof body.for === 'number' ? parseBantime(body.for) : undefined;
        if (duration === undefined) throw new HttpError(400, `"for": ${JSON.stringify(body.for)} is not a duration such as 90s, 10m, 1h, 1d, 1w, or permanent`);
      }
      try {
        const d = this.daemon.ban(body.target, (body.jail as string | undefined) ?? null, duration, origin);
        await this.daemon.settled();
        this.log.info(`http audit: ${what} from ${remote}: banned ${d.target} in ${d.jail}`);
        return this.send(res, 201, decisionJson(d));
      } catch (e) {
        this.log.warn(`http audit: ${what} from ${remote}: rejected: ${(e as Error).message}`);
        throw e;
      }
    }
    const target = decodeURIComponent(path.slice('/api/bans/'.length));
    try {
      const made = this.daemon.unban(target, q.get('jail'), origin);
      await this.daemon.settled();
      this.log.info(`http audit: ${what} from ${remote}: ${made.length ? `lifted ${made.length} ban(s) of ${target}` : `${target} was not banned`}`);
      if (made.length === 0) throw new HttpError(404, `${target} is not banned${q.get('jail') ? ` in ${q.get('jail')}` : ''}`);
      return this.send(res, 200, made.map(decisionJson));
    } catch (e) {
      if (!(e instanceof HttpError)) this.log.warn(`http audit: ${what} from ${remote}: rejected: ${(e as Error).message}`);
      throw e;
    }
  }

  private openStream(req: IncomingMessage, res: ServerResponse): void {
    if (this.sse.size >= MAX_SSE_CLIENTS) throw new HttpError(503, `too many event streams open (${MAX_SSE_CLIENTS})`);
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', 'x-accel-buffering': 'no', ...SECURITY_HEADERS });
    const s = this.daemon.status();
    res.write(`retry: 2000\nevent: hello\ndata: ${JSON.stringify({ node: s.node, startedAt: s.startedAt })}\n\n`);
    this.sse.add(res);
    req.on('close', () => this.sse.delete(res));
  }

  private broadcast(event: string, data: unknown): void {
    if (this.sse.size === 0) return;
    const frame = `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
    for (const res of this.sse) {
      if (res.writableLength > MAX_SSE_BACKLOG) {
        this.sse.delete(res);
        res.destroy();
        continue;
      }
      res.write(frame);
    }
  }

  private flushActivity(): void {
    const p = this.pendingActivity;
    if (p.count === 0) return;
    this.pendingActivity = { count: 0, byJail: {}, sample: [] };
    this.broadcast('activity', p);
  }

  private sendAsset(req: IncomingMessage, res: ServerResponse, asset: Asset): void {
    const headers = { 'content-type': asset.type, etag: asset.etag, 'cache-control': 'no-cache', ...SECURITY_HEADERS };
    if (req.headers['if-none-match'] === asset.etag) {
      res.writeHead(304, headers);
      res.end();
      return;
    }
    res.writeHead(200, { ...headers, 'content-length': asset.body.length });
    res.end(req.method === 'HEAD' ? undefined : asset.body);
  }

  private send(res: ServerResponse, status: number, body: unknown): void {
    if (res.headersSent) {
      res.end();
      return;
    }
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(text), ...SECURITY_HEADERS });
    res.end(text);
  }
}

/** The dashboard's files: beside this module under tsx, in the source tree when running from dist/. */
function dashboardDir(): string {
  const candidates = ['./dashboard/', '../../src/control/dashboard/'].map((rel) => fileURLToPath(new URL(rel, import.meta.url)));
  const found = candidates.find((dir) => existsSync(join(dir, 'index.html')));
  if (!found) throw new Error(`dashboard files not found (looked in ${candidates.join(', ')})`);
  return found;
}

function isLoopback(address: string): boolean {
  return address.startsWith('127.') || address === '::1';
}

function intParam(q: URLSearchParams, name: string, fallback: number, max: number, min = 1): number {
  const text = q.get(name);
  if (text === null || text === '') return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < min) throw new HttpError(400, `${name} must be an integer ≥ ${min}`);
  return Math.min(n, max);
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) throw new HttpError(413, `request body larger than ${MAX_BODY} bytes`);
    chunks.push(chunk);
  }
  let body: unknown;
  try {
    body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new HttpError(400, 'request body is not JSON');
  }
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw new HttpError(400, 'request body must be a JSON object');
  return body as Record<string, unknown>;
}

function decisionJson(d: Decision): { action: string; target: string; jail: string; time: string; until: string | null; reason: string; origin: string } {
  const iso = (ms: number): string => new Date(ms).toISOString();
  return { action: d.action, target: d.target, jail: d.jail, time: iso(d.time), until: d.until === null ? null : iso(d.until), reason: d.reason, origin: d.origin };
}
