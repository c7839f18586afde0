import { readFileSync } from 'node:fs';
import type { EventEmitter } from 'node:events';
import { Redis, type RedisOptions } from 'ioredis';
import { formatDuration } from '../core/duration.js';
import { PortcullisError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { Decision, Event } from '../core/types.js';
import type { DaemonEvents } from '../daemon/daemon.js';
import type { Pipeline } from '../daemon/pipeline.js';
import type { Checkpoint } from '../sources/source.js';
import type { Store } from '../state/store.js';
import { banField, compareIds, fleetKeys, parseMessage, toMessage, type FleetKeys, type FleetMessage } from './messages.js';
import { FLEET_JAIL, type FleetOptions } from './options.js';

/**
 * Shares decisions with the other nodes of a fleet through Redis, local first:
 * a node never waits for Redis to protect itself.
 *
 * - Publishing: every local ban/unban the share policy allows is written to the
 *   SQLite outbox first, then sent (stream entry + active-ban hash, in one
 *   MULTI) and removed from the outbox. While Redis is unreachable the outbox
 *   fills; on reconnection it is sent in order.
 * - Applying: a second connection reads the stream (XREAD BLOCK) from the
 *   position stored in SQLite, which is committed in the same transaction as
 *   the bans it led to; so a node that was down catches up on what it missed,
 *   and a node without a position (or whose position was trimmed away) starts
 *   from the fleet's active-ban hash. Remote decisions go through the daemon
 *   (store, then enforcers) marked as remote, so they are never published back.
 * - Counting (jails in `count`): each failure is also added to a per-address
 *   sorted set in Redis; when the fleet-wide count within findtime reaches
 *   maxretry, the node that saw the last failure bans and publishes.
 */

export interface FleetHost {
  readonly events: EventEmitter<DaemonEvents>;
  readonly store: Store;
  readonly pipeline: Pipeline;
  /** Commits and enforces decisions that must not be published again; `checkpoint` commits with them. */
  applyRemote(decisions: readonly Decision[], checkpoint?: Checkpoint): Decision[];
  isRemote(decision: Decision): boolean;
}

export interface FleetStatus {
  node: string;
  redis: string;
  state: 'connecting' | 'connected' | 'disconnected' | 'stopped';
  lastError: string | null;
  /** Decisions sent to the fleet / waiting in the outbox. */
  published: number;
  outbox: number;
  /** Remote decisions applied, and those the policy (trust, apply) or their age skipped. */
  applied: number;
  skipped: number;
  invalid: number;
  /** Stream id of the last entry read. */
  position: string | null;
  /** Between a remote decision's publication and its application here, for the last one applied. */
  lastDelayMs: number | null;
  /** Other nodes and when they were last heard of. */
  peers: Array<{ node: string; lastSeen: string }>;
  /** Active bans here by the node that made them. */
  bansByOrigin: Record<string, number>;
  counting: string[];
}

/** Adds a failure to the fleet-wide window; returns the count when it reaches maxretry (and resets it), else 0. */
const COUNT_SCRIPT = `
local now = tonumber(ARGV[1])
local findtime = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - findtime)
redis.call('ZADD', KEYS[1], now, ARGV[3])
local n = redis.call('ZCARD', KEYS[1])
if n >= tonumber(ARGV[4]) then
  redis.call('DEL', KEYS[1])
  return n
end
redis.call('PEXPIRE', KEYS[1], findtime)
return 0`;

const READ_COUNT = 1000;
const BLOCK_MS = 2000;
const OUTBOX_BATCH = 200;
const HEARTBEAT_MS = 5000;
/** A ban lifted within this long of its end is an expiry, which every node does by itself: not published. */
const EXPIRY_SLACK_MS = 1000;

export class Fleet {
  private readonly keys: FleetKeys;
  private readonly positionKey: string;
  private readonly cmd: Redis;
  private readonly reader: Redis;
  private running = false;
  private readLoop: Promise<void> | null = null;
  private publishing: Promise<void> | null = null;
  private heartbeat: NodeJS.Timeout | null = null;
  private state: FleetStatus['state'] = 'stopped';
  private lastError: string | null = null;
  private position: string | null = null;
  private synced = false;
  private published = 0;
  private applied = 0;
  private skipped = 0;
  private invalid = 0;
  private lastDelayMs: number | null = null;
  private peers: Array<{ node: string; lastSeen: string }> = [];
  private failureSeq = 0;
  /** End of every active ban this node knows of (`jail|target`), to tell an expiry from an unban. */
  private readonly untilOf = new Map<string, number | null>();
  private readonly onDecision = (d: Decision): void => this.decided(d);
  private readonly onEvent = (e: Event): void => this.failed(e);

  constructor(private readonly options: FleetOptions, private readonly host: FleetHost, private readonly log: Logger) {
    this.keys = fleetKeys(options.prefix);
    this.positionKey = `fleet:${this.keys.stream}`;
    const redisOptions = connectionOptions(options);
    this.cmd = new Redis(options.redis, redisOptions);
    this.reader = new Redis(options.redis, redisOptions);
    this.cmd.defineCommand('fleetCount', { numberOfKeys: 1, lua: COUNT_SCRIPT });
    for (const [name, client] of [['publisher', this.cmd], ['reader', this.reader]] as const) {
      client.on('error', (e: Error) => this.noteError(`${name}: ${e.message}`));
      client.on('ready', () => this.onReady());
      client.on('end', () => this.onDisconnect());
      client.on('close', () => this.onDisconnect());
    }
  }

  /** Starts connecting and returns at once: the node protects itself whether or not Redis answers. */
  start(): void {
    this.running = true;
    this.state = 'connecting';
    for (const b of this.host.store.activeBanEnds()) this.untilOf.set(banField(b.jail, b.target), b.until);
    this.host.events.on('decision', this.onDecision);
    if (this.options.count.length) this.host.events.on('event', this.onEvent);
    const stored = this.host.store.getPosition(this.positionKey);
    this.position = stored ?? null;
    void this.cmd.connect().catch(() => {});
    void this.reader.connect().catch(() => {});
    this.readLoop = this.readForever();
    this.heartbeat = setInterval(() => void this.beat(), HEARTBEAT_MS);
    this.heartbeat.unref();
    this.log.info(`fleet: node ${this.options.node}, Redis ${redactedUrl(this.options.redis)}, sharing ${Array.isArray(this.options.share) ? this.options.share.join(', ') : this.options.share}${this.options.count.length ? `, counting ${this.options.count.join(', ')} fleet-wide` : ''}`);
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.host.events.off('decision', this.onDecision);
    this.host.events.off('event', this.onEvent);
    if (this.heartbeat) clearInterval(this.heartbeat);
    // A last attempt to hand the outbox over; what stays is sent at the next start.
    await Promise.race([this.flushOutbox(), new Promise((r) => setTimeout(r, 1000))]);
    this.reader.disconnect();
    await this.readLoop;
    this.cmd.disconnect();
    this.state = 'stopped';
  }

  status(): FleetStatus {
    const bansByOrigin = Object.fromEntries(this.host.store.activeBansByOrigin());
    return {
      node: this.options.node, redis: redactedUrl(this.options.redis), state: this.state, lastError: this.lastError,
      published: this.published, outbox: this.host.store.outboxSize(), applied: this.applied, skipped: this.skipped, invalid: this.invalid,
      position: this.position, lastDelayMs: this.lastDelayMs, peers: this.peers, bansByOrigin, counting: this.options.count,
    };
  }

  // ── publishing ────────────────────────────────────────────────────────────

  private decided(d: Decision): void {
    if (d.action !== 'ban' && d.action !== 'unban') return;
    const key = banField(d.jail, d.target);
    const known = this.untilOf.get(key);
    if (d.action === 'ban') this.untilOf.set(key, d.until);
    else this.untilOf.delete(key);
    if (this.host.isRemote(d)) return;
    if (!this.shares(d.jail)) return;
    if (d.action === 'unban' && known !== undefined && known !== null && known <= Date.now() + EXPIRY_SLACK_MS) return;
    this.enqueue(toMessage(d, this.options.node));
  }

  private shares(jail: string): boolean {
    const share = this.options.share;
    return share === 'all' || (Array.isArray(share) && share.includes(jail));
  }

  private enqueue(m: FleetMessage): void {
    try {
      this.host.store.outboxAdd(JSON.stringify(m));
    } catch (e) {
      this.noteError(`cannot queue a decision for the fleet: ${(e as Error).message}`);
      return;
    }
    void this.flushOutbox();
  }

  /** Sends the outbox in order, one MULTI per batch; one flush at a time. */
  private flushOutbox(): Promise<void> {
    if (this.publishing) return this.publishing;
    const flush = async (): Promise<void> => {
      await Promise.resolve(); // so that `publishing` is set before the loop can end
      try {
        while (this.cmd.status === 'ready') {
          const batch = this.host.store.outboxList(OUTBOX_BATCH);
          if (batch.length === 0) return;
          const multi = this.cmd.multi();
          for (const { message } of batch) {
            const m = parseMessage(message);
            if (m === null) continue;
            multi.xadd(this.keys.stream, 'MAXLEN', '~', String(this.options.streamMaxlen), '*', 'node', m.node, 'action', m.action, 'd', message);
            const field = banField(m.jail, m.target);
            if (m.action === 'ban') {
              multi.hset(this.keys.bans, field, message);
              multi.zadd(this.keys.bansUntil, m.until === null ? '+inf' : String(m.until), field);
            } else {
              multi.hdel(this.keys.bans, field);
              multi.zrem(this.keys.bansUntil, field);
            }
          }
          const results = await multi.exec();
          const failed = results?.find(([err]) => err !== null);
          if (results === null || failed) throw new Error(failed ? String(failed[0]) : 'transaction aborted');
          this.host.store.outboxRemoveThrough(batch[batch.length - 1]!.id);
          this.published += batch.length;
        }
      } catch (e) {
        this.noteError(`publishing: ${(e as Error).message}; kept in the outbox, retried on reconnection`);
      } finally {
        this.publishing = null;
      }
    };
    this.publishing = flush();
    return this.publishing;
  }

  // ── applying ──────────────────────────────────────────────────────────────

  private async readForever(): Promise<void> {
    let delay = 100;
    while (this.running) {
      if (this.reader.status !== 'ready') {
        await sleep(50);
        continue;
      }
      try {
        if (!this.synced) await this.sync();
        const res = (await this.reader.xread('COUNT', READ_COUNT, 'BLOCK', BLOCK_MS, 'STREAMS', this.keys.stream, this.position ?? '0-0')) as
          Array<[string, Array<[string, string[]]>]> | null;
        if (res) this.handle(res[0]![1]);
        delay = 100;
      } catch (e) {
        if (!this.running) break;
        this.noteError(`reading: ${(e as Error).message}`);
        await sleep(delay);
        delay = Math.min(delay * 2, 5000);
      }
    }
  }

  /**
   * Where reading starts. With a stored position still inside the stream: there.
   * Otherwise (a new node, or one away so long that the stream was trimmed past
   * its position) from the fleet's active-ban set, then the stream's end.
   */
  private async sync(): Promise<void> {
    const first = (await this.reader.xrange(this.keys.stream, '-', '+', 'COUNT', 1))[0]?.[0] ?? null;
    if (this.position !== null && (first === null || compareIds(this.position, first) >= 0 || this.position === '0-0')) {
      this.synced = true;
      return;
    }
    const last = (await this.reader.xrevrange(this.keys.stream, '+', '-', 'COUNT', 1))[0]?.[0] ?? '0-0';
    const bans = await this.reader.hgetall(this.keys.bans);
    const messages: FleetMessage[] = [];
    for (const json of Object.values(bans)) {
      const m = parseMessage(json);
      if (m === null) this.invalid++;
      else messages.push(m);
    }
    messages.sort((a, b) => a.time - b.time);
    const decisions = messages.map((m) => this.localDecision(m)).filter((d): d is Decision => d !== null);
    this.host.applyRemote(decisions, { key: this.positionKey, value: last });
    this.applied += decisions.length;
    this.position = last;
    this.synced = true;
    this.log.info(`fleet: started from the fleet's ${messages.length} active ban(s) (${decisions.length} applied here), then the stream after ${last}`);
  }

  private handle(entries: Array<[string, string[]]>): void {
    const decisions: Decision[] = [];
    const now = Date.now();
    let newest: number | null = null;
    for (const [id, fields] of entries) {
      const m = parseMessage(field(fields, 'd') ?? '');
      if (m === null) {
        this.invalid++;
        continue;
      }
      if (m.node === this.options.node) continue;
      const d = this.localDecision(m);
      if (d === null) continue;
      decisions.push(d);
      newest = Number(id.split('-')[0]);
    }
    const last = entries[entries.length - 1]![0];
    try {
      this.host.applyRemote(decisions, { key: this.positionKey, value: last });
    } catch (e) {
      this.noteError(`applying remote decisions: ${(e as Error).message}`);
      return;
    }
    this.position = last;
    this.applied += decisions.length;
    if (newest !== null) this.lastDelayMs = Math.max(0, now - newest);
  }

  /** What a remote decision becomes here, or null when the policy or its age says to skip it. */
  private localDecision(m: FleetMessage): Decision | null {
    const skip = (): null => {
      this.skipped++;
      return null;
    };
    if (m.node === this.options.node) return null;
    if (this.options.trust !== null && !this.options.trust.includes(m.node)) return skip();
    if (this.options.apply.jails !== null && !this.options.apply.jails.includes(m.jail)) return skip();
    const jails = this.host.pipeline.jails;
    const jail = this.options.apply.ports === null && jails.has(m.jail) ? m.jail : FLEET_JAIL;
    const active = jails.get(jail)?.active;
    const current = active?.get(m.target);
    const note = `${m.node}${m.by ? ` (${m.by})` : ''}${jail !== m.jail ? `, jail ${m.jail}` : ''}`;
    if (m.action === 'unban') {
      if (current === undefined) return skip();
      return { action: 'unban', target: m.target, jail, time: Date.now(), until: null, reason: `${m.reason} [fleet: ${note}]`, origin: m.node };
    }
    if (m.until !== null && m.until <= Date.now()) return skip();
    // Already banned here at least as long: a shorter remote ban must not cut a longer local one.
    if (current !== undefined && (current === null || (m.until !== null && current >= m.until))) return skip();
    return {
      action: 'ban', target: m.target, jail, time: m.time, until: m.until, reason: `${m.reason} [fleet: ${note}]`, origin: m.node,
      ...(m.evidence ? { evidence: m.evidence } : {}),
    };
  }

  // ── fleet-wide counting ─────────────────────────────────────────────────

  private failed(e: Event): void {
    if (e.kind === 'health' || e.address === null || this.cmd.status !== 'ready') return;
    const address = e.address;
    for (const name of this.options.count) {
      const jail = this.host.pipeline.jails.get(name);
      if (!jail || !jail.config.filters.includes(e.filter)) continue;
      if (jail.allowlist.match(address) !== null || jail.active.has(address)) continue;
      const { findtime, maxretry } = jail.config;
      const member = `${this.options.node}:${++this.failureSeq}`;
      (this.cmd as Redis & { fleetCount(key: string, now: number, findtime: number, member: string, maxretry: number): Promise<number> })
        .fleetCount(this.keys.failures(name, address), Date.now(), findtime, member, maxretry)
        .then((n) => {
          if (n > 0 && this.running) this.banFleetWide(name, address, n, e);
        })
        .catch((err: Error) => this.noteError(`counting: ${err.message}`));
    }
  }

  private banFleetWide(name: string, address: string, failures: number, e: Event): void {
    const jail = this.host.pipeline.jails.get(name);
    if (!jail || jail.active.has(address)) return;
    const now = Date.now();
    const bantime = jail.config.bantime;
    const d: Decision = {
      action: 'ban', target: address, jail: name, time: now, until: bantime === null ? null : now + bantime, origin: this.options.node,
      reason: `${failures} failures within ${formatDuration(jail.config.findtime)} across the fleet (last: ${e.kind} by ${e.filter} on ${this.options.node})`,
      evidence: [e.line.raw],
    };
    // Applied as remote so the decision listener does not queue it a second time; published here.
    const made = this.host.applyRemote([d]);
    if (made.length) {
      this.log.info(`fleet: [${name}] ${address} reached maxretry across the fleet`);
      if (this.shares(name)) this.enqueue(toMessage(d, this.options.node));
    }
  }

  // ── connection ──────────────────────────────────────────────────────────

  private onReady(): void {
    if (this.cmd.status !== 'ready' || this.reader.status !== 'ready') return;
    if (this.state !== 'connected') this.log.info(`fleet: connected to Redis ${redactedUrl(this.options.redis)}`);
    this.state = 'connected';
    this.lastError = null;
    void this.flushOutbox();
    void this.beat();
  }

  private onDisconnect(): void {
    if (!this.running || this.state === 'disconnected') return;
    if (this.state === 'connected') this.log.warn(`fleet: lost Redis ${redactedUrl(this.options.redis)}; detection and local bans go on, decisions queue in the outbox`);
    this.state = 'disconnected';
  }

  private noteError(message: string): void {
    if (message !== this.lastError && this.running) this.log.debug(`fleet: ${message}`);
    this.lastError = message;
  }

  private async beat(): Promise<void> {
    if (this.cmd.status !== 'ready') return;
    try {
      await this.cmd.hset(this.keys.nodes, this.options.node, JSON.stringify({ at: Date.now(), pid: process.pid }));
      const nodes = await this.cmd.hgetall(this.keys.nodes);
      this.peers = Object.entries(nodes)
        .filter(([n]) => n !== this.options.node)
        .map(([node, v]) => ({ node, lastSeen: new Date(Number((JSON.parse(v) as { at?: number }).at ?? 0)).toISOString() }))
        .sort((a, b) => a.node.localeCompare(b.node));
      // Any node may prune the fleet's ended bans; removing twice is harmless.
      const ended = await this.cmd.zrangebyscore(this.keys.bansUntil, '-inf', String(Date.now()), 'LIMIT', 0, 1000);
      if (ended.length) await this.cmd.multi().hdel(this.keys.bans, ...ended).zrem(this.keys.bansUntil, ...ended).exec();
      if (this.host.store.outboxSize() > 0) void this.flushOutbox();
    } catch (e) {
      this.noteError(`heartbeat: ${(e as Error).message}`);
    }
  }
}

function connectionOptions(o: FleetOptions): RedisOptions {
  const read = (what: string, file: string | null): Buffer | undefined => {
    if (file === null) return undefined;
    try {
      return readFileSync(file);
    } catch (e) {
      throw new PortcullisError(`fleet: cannot read the Redis TLS ${what} ${file}: ${(e as Error).message}`);
    }
  };
  const useTls = o.tls !== null || o.redis.startsWith('rediss:');
  return {
    lazyConnect: true,
    // Commands fail at once while disconnected: the outbox, not ioredis, keeps what must be sent.
    enableOfflineQueue: false,
    autoResendUnfulfilledCommands: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 5000,
    // Reconnect with backoff: 100 ms doubling to 5 s, with jitter so a fleet does not reconnect in lockstep.
    retryStrategy: (times) => Math.min(100 * 2 ** Math.min(times - 1, 6), 5000) * (0.75 + Math.random() / 2),
    ...(o.username !== null ? { username: o.username } : {}),
    ...(o.password !== null ? { password: o.password } : {}),
    ...(useTls ? {
      tls: {
        ...(o.tls?.ca ? { ca: read('CA certificate', o.tls.ca) } : {}),
        ...(o.tls?.cert ? { cert: read('certificate', o.tls.cert) } : {}),
        ...(o.tls?.key ? { key: read('key', o.tls.key) } : {}),
        ...(o.tls?.servername ? { servername: o.tls.servername } : {}),
      },
    } : {}),
  };
}

function redactedUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return url;
  }
}

function field(fields: string[], name: string): string | undefined {
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
  return undefined;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
