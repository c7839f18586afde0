/**
 * JSON Schema of portcullis.yaml (validated with ajv). Formats `duration`,
 * `bantime`, `target` (address or CIDR) and `port` are checked by our own
 * parsers so the error can say what is allowed.
 */

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
    start_at: { enum: ['end', 'beginning'] },
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
    bantime: bantime,
    ignoreip: targetList,
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
      properties: { listen: { type: 'string' }, token_file: { type: 'string' }, token: { type: 'string' } },
      additionalProperties: false,
    },
    enforcer: { enum: ['auto', 'nftables', 'iptables', 'pf', 'command', 'dry-run'] },
    command: {
      type: 'object',
      required: ['ban', 'unban'],
      properties: { ban: commandTemplate, unban: commandTemplate, setup_jail: commandTemplate, teardown_jail: commandTemplate, timeout: duration },
      additionalProperties: false,
    },
    max_line_length: { type: 'integer', minimum: 256, maximum: 1048576 },
    start_at: { enum: ['end', 'beginning'] },
    ignoreip: targetList,
    defaults: {
      type: 'object',
      properties: { maxretry: jail.properties.maxretry, findtime: duration, bantime: bantime },
      additionalProperties: false,
    },
    jails: { type: 'object', additionalProperties: jail, propertyNames: { pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,30}$' } },
  },
  additionalProperties: false,
} as const;
