/**
 * JSON Schema of portcullis.yaml (validated with ajv). Formats `duration`,
 * `bantime`, `target` (address or CIDR) and `port` are checked by our own
 * parsers so the error can say what is allowed.
 */

import { allowlistSchema, dnsSchema, limitsSchema } from './network-defences.js';

const duration = { type: ['string', 'number'], format: 'duration' } as const;
const bantime = { type: ['string', 'number'], format: 'bantime' } as const;
const target = { type: 'string', format: 'target' } as const;
const targetList = { type: 'array', items: target } as const;
const stringOrList = { anyOf: [{ type: 'string', minLength: 1 }, { type: 'array', items: { type: 'string', minLength: 1 }, minItems: 1 }] } as const;

/** An argv list with placeholders like {target}, or { shell: "script using $1" }. */
const commandTemplate = {
  anyOf: [
    { type: 'array', items: { type: 'string' }, minItems: 1 },
    { type: 'object', properties: { shell: { type: 'string', minLength: 1 } }, required: ['shell'], additionalProperties: false },
  ],
} as const;

const source = {
  type: 'object',
  minProperties: 1,
  maxProperties: 2,
  properties: {
    file: stringOrList,
    journal: {
      type: 'object',
      additionalProperties: stringOrList,
      propertyNames: { pattern: '^[A-Z0-9_]+$' },
    },
    stdin: { type: 'boolean' },
    /** A syslog receiver (src/sources/syslog.ts); `allow` is required: an open syslog port is an injection vector. */
    syslog: {
      type: 'object',
      required: ['listen', 'allow'],
      properties: {
        listen: { type: 'string', format: 'syslog-listen' },
        allow: { type: 'array', items: target, minItems: 1 },
        tls: {
          type: 'object',
          required: ['cert', 'key'],
          properties: { cert: { type: 'string', minLength: 1 }, key: { type: 'string', minLength: 1 }, ca: { type: 'string', minLength: 1 } },
          additionalProperties: false,
        },
      },
      additionalProperties: false,
    },
    start_at: { enum: ['end', 'beginning'] },
  },
  additionalProperties: false,
} as const;

/** A plain bantime, or a growth rule for repeat offenders (src/policy/bantime.ts). */
const bantimeRule = {
  if: { type: 'object' },
  then: {
    type: 'object',
    required: ['base'],
    properties: {
      base: bantime,
      factor: { type: 'number', minimum: 1, maximum: 1000 },
      max: duration,
      jitter: { type: ['string', 'number'], format: 'percent' },
      count: { enum: ['all', 'jail'] },
    },
    additionalProperties: false,
  },
  else: bantime,
} as const;

/** Netblock escalation (src/detectors/escalation.ts); `then` is an optional second, wider step. */
const escalateStep = {
  prefix4: { type: 'integer', minimum: 1, maximum: 31 },
  prefix6: { type: 'integer', minimum: 1, maximum: 127 },
  threshold: { type: 'integer', minimum: 2, maximum: 100000 },
  window: duration,
  bantime: bantime,
} as const;
const escalate = {
  type: 'object',
  properties: { ...escalateStep, then: { type: 'object', properties: escalateStep, additionalProperties: false } },
  additionalProperties: false,
} as const;

/** Siege mode against distributed attacks (src/detectors/siege.ts). */
const siege = {
  type: 'object',
  properties: {
    enter: {
      type: 'object',
      properties: { failures_per_minute: { type: 'integer', minimum: 1 }, sources: { type: 'integer', minimum: 1 } },
      additionalProperties: false,
    },
    leave: {
      type: 'object',
      properties: { failures_per_minute: { type: 'integer', minimum: 1 }, for: duration },
      additionalProperties: false,
    },
    maxretry: { type: 'integer', minimum: 1 },
    bantime: bantime,
    rate_limit: { type: 'string', format: 'rate' },
    allowlist_only: { type: 'boolean' },
  },
  additionalProperties: false,
} as const;

/** Slow and distributed brute force over a long window (src/detectors/spray.ts). */
const slow = {
  type: 'object',
  properties: {
    window: duration,
    maxretry: { type: 'integer', minimum: 1 },
    bantime: bantime,
    spray: {
      type: 'object',
      properties: { sources: { type: 'integer', minimum: 2 }, maxretry: { type: 'integer', minimum: 1 } },
      additionalProperties: false,
    },
    max_tracked: { type: 'integer', minimum: 100, maximum: 10000000 },
  },
  additionalProperties: false,
} as const;

const jail = {
  type: 'object',
  properties: {
    enabled: { type: 'boolean' },
    sources: { type: 'array', items: source },
    filters: { type: 'array', items: { type: 'string', minLength: 1 }, minItems: 1 },
    maxretry: { type: 'integer', minimum: 1 },
    findtime: duration,
    bantime: bantimeRule,
    escalate,
    siege,
    slow,
    ignoreip: targetList,
    allowlist: allowlistSchema,
    limits: limitsSchema,
    ports: { type: 'array', items: { type: 'integer', minimum: 1, maximum: 65535 } },
    protocol: { enum: ['tcp', 'udp', 'all'] },
    action: { enum: ['drop', 'reject', 'throttle'] },
    enforcer: { anyOf: [{ enum: ['nftables', 'iptables', 'pf', 'command', 'dry-run'] }, { type: 'array', items: { enum: ['nftables', 'iptables', 'pf', 'command', 'dry-run'] }, minItems: 1 }] },
    flush: { enum: ['none', 'rule', 'global'] },
    forward: { type: 'boolean' },
    /** Extra envelope program names for this jail's filters (e.g. a router tagging OpenVPN as `vpnserver1`). */
    programs: { type: 'array', items: { type: 'string', minLength: 1 } },
  },
  additionalProperties: false,
} as const;

const noticeKinds = { type: 'array', items: { enum: ['start', 'stop', 'ban', 'unban', 'siege'] } } as const;

/** E-mail and webhook alerts (src/notifiers). */
const notify = {
  type: 'object',
  properties: {
    email: {
      type: 'object',
      required: ['to', 'smtp'],
      properties: {
        to: stringOrList,
        from: { type: 'string', minLength: 3 },
        smtp: {
          type: 'object',
          required: ['host'],
          properties: {
            host: { type: 'string', minLength: 1 },
            port: { type: 'integer', minimum: 1, maximum: 65535 },
            tls: { enum: ['starttls', 'implicit', 'none'] },
            user: { type: 'string', minLength: 1 },
            password: { type: 'string' },
            password_file: { type: 'string', minLength: 1 },
            ca_file: { type: 'string', minLength: 1 },
            verify: { type: 'boolean' },
          },
          additionalProperties: false,
        },
        on: noticeKinds,
        bans: { enum: ['each', 'digest'] },
        digest_every: duration,
        max_per_hour: { type: 'integer', minimum: 1 },
        max_lines: { type: 'integer', minimum: 0, maximum: 1000 },
        subject_prefix: { type: 'string' },
      },
      additionalProperties: false,
    },
    webhooks: {
      type: 'array',
      items: {
        type: 'object',
        required: ['url'],
        properties: {
          url: { type: 'string', minLength: 1 },
          on: noticeKinds,
          template: { type: 'string', minLength: 2 },
          headers: { type: 'object', additionalProperties: { type: 'string' } },
          retries: { type: 'integer', minimum: 0, maximum: 100 },
          backoff: duration,
          timeout: duration,
          max_queue: { type: 'integer', minimum: 1 },
        },
        additionalProperties: false,
      },
    },
  },
  additionalProperties: false,
} as const;

const nodeName = { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$' } as const;
const jailNames = { type: 'array', items: { type: 'string', minLength: 1 } } as const;

/** Sharing decisions with other nodes through Redis (src/fleet). */
const fleet = {
  type: 'object',
  required: ['redis'],
  properties: {
    redis: { type: 'string', format: 'redis-url' },
    node: nodeName,
    share: { anyOf: [{ enum: ['all', 'none'] }, jailNames] },
    apply: {
      type: 'object',
      properties: { jails: jailNames, ports: { type: 'array', items: { type: 'integer', minimum: 1, maximum: 65535 }, minItems: 1 } },
      additionalProperties: false,
    },
    trust: { type: 'array', items: nodeName },
    count: jailNames,
    username: { type: 'string', minLength: 1 },
    password: { type: 'string' },
    password_file: { type: 'string', minLength: 1 },
    tls: {
      type: 'object',
      properties: { ca: { type: 'string', minLength: 1 }, cert: { type: 'string', minLength: 1 }, key: { type: 'string', minLength: 1 }, servername: { type: 'string', minLength: 1 } },
      additionalProperties: false,
    },
    prefix: { type: 'string', pattern: '^[A-Za-z0-9_.:-]{1,64}$' },
    stream_maxlen: { type: 'integer', minimum: 1000 },
  },
  additionalProperties: false,
} as const;

export const configSchema = {
  type: 'object',
  properties: {
    state_dir: { type: 'string', minLength: 1 },
    control: {
      type: 'object',
      properties: { socket: { type: 'string', minLength: 1 } },
      additionalProperties: false,
    },
    http: {
      type: 'object',
      properties: {
        enabled: { type: 'boolean' },
        listen: { type: 'string', format: 'listen' },
        token_file: { type: 'string', minLength: 1 },
        token: { type: 'string', minLength: 16 },
        cert_file: { type: 'string', minLength: 1 },
        key_file: { type: 'string', minLength: 1 },
      },
      additionalProperties: false,
    },
    notify,
    enforcer: { enum: ['auto', 'nftables', 'iptables', 'pf', 'command', 'dry-run'] },
    command: {
      type: 'object',
      required: ['ban', 'unban'],
      properties: { ban: commandTemplate, unban: commandTemplate, setup_jail: commandTemplate, teardown_jail: commandTemplate, timeout: duration },
      additionalProperties: false,
    },
    max_line_length: { type: 'integer', minimum: 256, maximum: 1048576 },
    /** How often journal sources look for new entries to wake journalctl at once (src/sources/journal-waker.ts), or `off`. */
    journal_wake: { type: 'string', format: 'journal-wake' },
    start_at: { enum: ['end', 'beginning'] },
    ignoreip: targetList,
    allowlist: allowlistSchema,
    dns: dnsSchema,
    defaults: {
      type: 'object',
      properties: { maxretry: jail.properties.maxretry, findtime: duration, bantime: bantimeRule },
      additionalProperties: false,
    },
    fleet,
    jails: { type: 'object', additionalProperties: jail, propertyNames: { pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,30}$' } },
  },
  additionalProperties: false,
} as const;
