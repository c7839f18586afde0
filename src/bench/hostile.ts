import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { createFail2banFilter } from '../fail2ban/fail2ban-filter.js';
import { budgetThreadsIdle } from '../fail2ban/regex-budget.js';
import type { Filter } from '../filters/filter.js';
import { builtinFilters } from '../filters/index.js';
import { DEFAULT_MAX_LINE_LENGTH } from '../sources/source.js';
import { EnvelopeParser } from '../sources/envelope.js';
import { fmt, median, type BenchRow, type BenchSection } from './report.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
/** fail2ban's annotated sample logs (Debian's fail2ban package): templates for its filters' hostile lines. */
const FAIL2BAN_SAMPLES = '/usr/lib/python3/dist-packages/fail2ban/tests/files/logs';
const FAIL2BAN_FILTERS = '/etc/fail2ban/filter.d';
/** `BENCH_FAIL2BAN_FILTERS=sshd,lighttpd-auth` measures only those stock filters (empty: none). */
const ONLY_FAIL2BAN = process.env.BENCH_FAIL2BAN_FILTERS?.split(',').filter((n) => n !== '');

/** What an attacker repeats to fill a line: runs of spaces, repeated `from `, digits and dots, address-like text. */
const UNITS = [' ', 'from ', '1', '1.', '.', '1.2.3.4 ', ' from 1.2.3.4 port 22', ':', '::1:'];

/**
 * Attack lines of each built-in filter, as the services write them, and text crafted against its
 * patterns (the markers its addresses follow). A hostile line is a template with one of the units
 * repeated at one of its word boundaries, up to the longest line the filter reads: the daemon's line
 * limit (16 KiB: longer lines are cut there by every source), or the envelope's header plus the
 * longest message the service writes, where the filter skips longer ones unread.
 */
const BUILTIN: Record<string, { lines: string[]; units: string[] }> = {
  sshd: {
    lines: [
      'Mar  2 10:00:01 gw sshd[4101]: Failed password for invalid user admin from 198.51.100.7 port 50022 ssh2',
      'Mar  2 10:00:01 gw sshd[4101]: Invalid user admin from 198.51.100.7 port 50022',
      'Mar  2 10:00:02 gw sshd[4102]: Connection closed by authenticating user root 198.51.100.8 port 50023 [preauth]',
      'Mar  2 10:00:03 gw sshd[4103]: Received disconnect from 198.51.100.9 port 50024:11: Bye Bye [preauth]',
      'Mar  2 10:00:04 gw sshd[4104]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=198.51.100.10  user=root',
    ],
    units: [' port 1', ' rhost=1.2.3.4', ' ssh1: ruser ', ', client user "', ' [preauth]'],
  },
  openvpn: {
    lines: [
      'Mar  2 10:00:01 gw ovpn-server[535]: 198.51.100.7:22475 TLS Error: TLS key negotiation failed to occur within 60 seconds (check your network connectivity)',
      'Mar  2 10:00:02 gw ovpn-server[535]: TLS Error: cannot locate HMAC in incoming packet from [AF_INET]198.51.100.8:1194',
      'Mar  2 10:00:03 gw ovpn-server[535]: alice/198.51.100.9:1194 VERIFY ERROR: depth=0, error=certificate has expired: CN=alice',
    ],
    units: ['1.2.3.4:5 ', '/', '[AF_INET]'],
  },
  postfix: {
    lines: [
      'Mar  2 10:00:01 mx postfix/smtpd[2031]: warning: unknown[198.51.100.7]: SASL LOGIN authentication failed: UGFzc3dvcmQ6',
      'Mar  2 10:00:02 mx postfix/smtpd[2031]: NOQUEUE: reject: RCPT from unknown[198.51.100.8]: 554 5.7.1 <x@example.org>: Relay access denied; from=<a@b> to=<x@example.org> proto=ESMTP helo=<x>',
      'Mar  2 10:00:03 mx postfix/smtpd[2031]: disconnect from unknown[198.51.100.9] ehlo=1 auth=0/1 commands=1/2',
    ],
    units: ['unknown[1.2.3.4]: ', '[', ' from [1.2.3.4]'],
  },
  sendmail: {
    lines: [
      'Mar  2 10:00:01 gw sm-mta[4411]: tAE6V6ZP004411: host.example.net [198.51.100.7] did not issue MAIL/EXPN/VRFY/ETRN during connection to MTA',
      'Mar  2 10:00:02 gw sm-mta[4412]: tAE6V7ZP004412: AUTH failure (LOGIN): authentication failure (-13) SASL(-13): authentication failure: checkpass failed, user=x, relay=[198.51.100.8]',
      'Mar  2 10:00:03 gw sm-mta[4413]: tAE6V8ZP004413: [IPv6:2001:db8::9] (may be forged) did not issue MAIL/EXPN/VRFY/ETRN during connection to MTA',
    ],
    units: [' [1.2.3.4]', '[IPv6:', 'relay='],
  },
  exim: {
    lines: [
      '2024-02-10 08:00:01 login authenticator failed for (User) [198.51.100.7]: 535 Incorrect authentication data (set_id=admin@example.org)',
      '2024-02-10 08:00:02 H=(example.net) [198.51.100.8]:52113 I=[192.0.2.1]:25 rejected RCPT <x@example.org>: relay not permitted',
    ],
    units: [' [1.2.3.4]:', '(', 'H='],
  },
  dovecot: {
    lines: [
      'Mar  2 10:00:01 mail dovecot: imap-login: Disconnected (auth failed, 3 attempts in 12 secs): user=<alice>, method=PLAIN, rip=198.51.100.7, lip=192.0.2.1, TLS, session=<a1B2c3D4e5F6>',
      'Mar  2 10:00:02 mail dovecot: auth: pam(bob,198.51.100.8,<b1B2c3D4e5F6>): pam_authenticate() failed: Authentication failure (password mismatch?)',
    ],
    units: ['rip=1.2.3.4, ', 'user=<', ','],
  },
  asterisk: {
    lines: [
      "Mar  2 10:00:01 pbx asterisk[2200]: NOTICE[2211]: chan_sip.c:24501 in handle_request_register: Registration from '<sip:200@192.0.2.1>' failed for '198.51.100.7:5060' - Wrong password",
      'Mar  2 10:00:02 pbx asterisk[2200]: SECURITY[2212] res_security_log.c: SecurityEvent="InvalidAccountID",EventTV="2024-03-02T10:00:02",Severity="Error",Service="SIP",EventVersion="1",AccountID="100",SessionID="0x7f",LocalAddress="IPV4/UDP/192.0.2.1/5060",RemoteAddress="IPV4/UDP/198.51.100.8/5060"',
    ],
    units: ["' failed for '", "1.2.3.4:5060' - ", '",', 'RemoteAddress="IPV4/UDP/'],
  },
  'nginx-http-auth': {
    lines: ['2024/03/02 10:00:01 [error] 2865#0: *66647 user "xyz" was not found in "/var/www/.htpasswd", client: 198.51.100.7, server: www.example.org, request: "GET / HTTP/1.1", host: "www.example.org"'],
    units: [', client: 1.2.3.4, server: ', 'user "', '"'],
  },
  'nginx-limit-req': {
    lines: ['2024/03/02 10:00:01 [error] 256554#0: *99927 limiting requests, excess: 1.852 by zone "one", client: 198.51.100.7, server: example.com, request: "POST /index.htm HTTP/1.0", host: "example.com"'],
    units: [', client: 1.2.3.4, server: ', 'zone "', '"'],
  },
  'apache-auth': {
    lines: ['[Sat Mar 02 10:00:01.978080 2024] [auth_basic:error] [pid 17512:tid 140123053950720] [client 198.51.100.7:51390] AH01617: user admin: authentication failure for "/basic/file": Password Mismatch'],
    units: ['[client 1.2.3.4] ', ']', 'user '],
  },
};

/** `template` with `unit` repeated at `at` until the line is `length` long. */
function fill(template: string, at: number, unit: string, length: number): string {
  const room = Math.max(0, length - template.length);
  const body = unit.repeat(Math.ceil(room / unit.length)).slice(0, room);
  return template.slice(0, at) + body + template.slice(at);
}

/**
 * The longest line of `template`'s kind that `filter` scans: the line limit, or less where the filter
 * skips messages longer than its service can write (the envelope's header is not counted in that).
 */
function longestScanned(template: string, filter: Filter): number {
  if (filter.maxMessageLength === undefined) return DEFAULT_MAX_LINE_LENGTH;
  const header = template.length - new EnvelopeParser({}).parse(template, 'bench').message.length;
  return Math.min(DEFAULT_MAX_LINE_LENGTH, header + filter.maxMessageLength);
}

/** Word boundaries of a template (every space and the end), at most `max` spread over the line. */
function boundaries(template: string, max: number): number[] {
  const all: number[] = [];
  for (let i = template.indexOf(' '); i >= 0; i = template.indexOf(' ', i + 1)) all.push(i);
  all.push(template.length);
  return spreadPick(all, max);
}

/** At most `max` of `items`, spread evenly from the first to the last. */
function spreadPick<T>(items: readonly T[], max: number): T[] {
  if (items.length <= max) return [...items];
  return Array.from({ length: max }, (_, k) => items[Math.floor((k * (items.length - 1)) / (max - 1))]!);
}

function hostileLines(filter: Filter, templates: readonly string[], units: readonly string[], maxBoundaries: number): string[] {
  const out: string[] = [];
  for (const t of templates) {
    const length = longestScanned(t, filter);
    for (const at of boundaries(t, maxBoundaries)) for (const u of units) out.push(fill(t, at, u, length));
  }
  return out;
}

/** The hostile lines of a built-in filter (its templates and units, plus the common units). */
export function builtinHostileLines(name: string, filter: Filter): string[] {
  const spec = BUILTIN[name];
  if (!spec) throw new Error(`the hostile bench has no templates for the built-in filter "${name}": add them to src/bench/hostile.ts`);
  return hostileLines(filter, spec.lines, [...UNITS, ...spec.units], 24);
}

interface FilterFigures {
  filter: string;
  lines: number;
  /** Lines per second (envelope and filter) from each line's median time over the measured passes. */
  rate: number;
  /** Lines per second of each measured pass, pauses of the VM and collections of the bench's own lines included. */
  passRates: number[];
  /** The slowest single line, in ms: each line's median over the measured passes. */
  worstMs: number;
  /** The slowest single time of any line in any measured pass, in ms (pauses of the VM included). */
  rawWorstMs: number;
  /** The slowest single line of the first, unmeasured pass (patterns compiled and optimised as they are first met), in ms. */
  firstPassWorstMs: number;
  /** Lines of a measured pass given up after the time budget of user-supplied patterns (fail2ban filters), median over the passes. */
  overBudget: number;
}

/** Times one pass; every line through the envelope and the filter, each timed on its own (ms). */
function pass(filter: Filter, lines: readonly string[]): { rate: number; times: Float64Array } {
  const parser = new EnvelopeParser({});
  const times = new Float64Array(lines.length);
  let total = 0;
  for (let i = 0; i < lines.length; i++) {
    const t = process.hrtime.bigint();
    filter.match(parser.parse(lines[i]!, 'bench'));
    times[i] = Number(process.hrtime.bigint() - t) / 1e6;
    total += times[i]!;
  }
  return { rate: lines.length / (total / 1000), times };
}

/**
 * A first pass warms the filter up (V8 compiles a regex on its first run, optimises code as it gets hot);
 * then RUNS measured passes. A line's cost is its median over the passes: a line slow in one pass only
 * met a pause of the shared VM or a collection, not its pattern.
 */
function measure(name: string, filter: Filter, lines: readonly string[]): FilterFigures {
  const first = pass(filter, lines);
  const rates: number[] = [];
  const runs: Float64Array[] = [];
  const givenUp: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    const before = filter.linesOverBudget ?? 0;
    const p = pass(filter, lines);
    givenUp.push((filter.linesOverBudget ?? 0) - before);
    rates.push(p.rate);
    runs.push(p.times);
  }
  let worst = 0;
  let rawWorst = 0;
  let total = 0;
  for (let i = 0; i < lines.length; i++) {
    const perRun = runs.map((times) => times[i]!);
    const cost = median(perRun);
    total += cost;
    worst = Math.max(worst, cost);
    rawWorst = Math.max(rawWorst, ...perRun);
  }
  return { filter: name, lines: lines.length, rate: lines.length / (total / 1000), passRates: rates, worstMs: worst, rawWorstMs: rawWorst, firstPassWorstMs: Math.max(...first.times), overBudget: median(givenUp) };
}

/** Sample lines of fail2ban's log for a filter: its non-comment lines, at most `max`, spread over the file. */
function sampleLines(name: string, max: number): string[] {
  const file = join(FAIL2BAN_SAMPLES, name);
  if (!existsSync(file)) return [];
  const lines = readFileSync(file, 'utf8').split('\n').filter((l) => l.trim() !== '' && !l.startsWith('#'));
  return spreadPick(lines, max);
}

function rowsFor(label: string, figures: readonly FilterFigures[]): BenchRow[] {
  const bySpeed = [...figures].sort((a, b) => a.rate - b.rate);
  const slowest = bySpeed[0]!;
  const worst = figures.reduce((a, b) => (b.worstMs > a.worstMs ? b : a));
  const lines = figures.reduce((n, f) => n + f.lines, 0);
  const under = figures.filter((f) => f.rate < 100_000 || f.worstMs > 10).length;
  const givingUp = figures.filter((f) => f.overBudget > 0).sort((a, b) => b.overBudget - a.overBudget);
  return [
    {
      name: `${label}: slowest filter`,
      value: `${fmt(slowest.rate)} lines/s (${slowest.filter}; each line's median over ${RUNS} passes; its passes ${slowest.passRates.map(fmt).join(', ')}; ${fmt(lines)} lines over ${figures.length} filters)`,
      target: '≥ 100,000 lines/s',
      met: slowest.rate >= 100_000,
    },
    {
      name: `${label}: slowest single line`,
      value: `${worst.worstMs.toFixed(2)} ms (${worst.filter}; each line's median over ${RUNS} passes after a first one; the slowest single time ${Math.max(...figures.map((f) => f.rawWorstMs)).toFixed(2)} ms, the first pass's ${Math.max(...figures.map((f) => f.firstPassWorstMs)).toFixed(2)} ms)`,
      target: '≤ 10 ms',
      met: worst.worstMs <= 10,
    },
    {
      name: `${label}: short of a target`,
      value: `${under} of ${figures.length}; slowest: ${bySpeed.slice(0, 6).map((f) => `${f.filter} ${fmt(f.rate)}/s (worst ${f.worstMs.toFixed(1)} ms)`).join(', ')}`,
    },
    ...(givingUp.length === 0
      ? []
      : [{
        name: `${label}: lines given up (patterns over their time budget)`,
        value: `${fmt(givingUp.reduce((n, f) => n + f.overBudget, 0))} of ${fmt(lines)} lines a pass, in ${givingUp.length} filters: ${givingUp.slice(0, 8).map((f) => `${f.filter} ${fmt(f.overBudget)}/${fmt(f.lines)}`).join(', ')}`,
      }]),
  ];
}

/**
 * Target 6: the longest lines each built-in filter reads, crafted against it, and against each of fail2ban's stock
 * filters loaded by our fail2ban reader (its sample logs as templates, where Debian's fail2ban is
 * installed): lines per second of the slowest filter, and the slowest single line.
 */
export async function hostile(): Promise<BenchSection> {
  const builtin: FilterFigures[] = [];
  for (const [name, make] of builtinFilters) {
    const filter = make();
    builtin.push(measure(name, filter, builtinHostileLines(name, filter)));
  }
  const rows = rowsFor('built-in filters', builtin);

  const fail2ban: FilterFigures[] = [];
  const refused: string[] = [];
  if (existsSync(FAIL2BAN_FILTERS) && existsSync(FAIL2BAN_SAMPLES)) {
    for (const file of readdirSync(FAIL2BAN_FILTERS).filter((f) => f.endsWith('.conf')).sort()) {
      const name = file.slice(0, -'.conf'.length);
      if (ONLY_FAIL2BAN && !ONLY_FAIL2BAN.includes(name)) continue;
      const templates = sampleLines(name, 8);
      if (templates.length === 0) continue;
      let filter: Filter;
      try {
        filter = createFail2banFilter(`fail2ban:${name}`);
      } catch (e) {
        refused.push(`${name}: ${(e as Error).message.split('\n')[0]}`);
        continue;
      }
      // The threads may still run lines the filter before gave up on: those would give up this one's.
      while (!budgetThreadsIdle()) await sleep(10);
      fail2ban.push(measure(`fail2ban:${name}`, filter, hostileLines(filter, templates, UNITS, 12)));
    }
  }
  if (fail2ban.length > 0) {
    rows.push(...rowsFor('fail2ban filters (stock filter.d, sample logs as templates)', fail2ban));
    rows.push({ name: 'fail2ban filters not loaded', value: refused.length === 0 ? 'none' : `${refused.length}: ${refused.join('; ')}` });
  } else if (ONLY_FAIL2BAN) {
    rows.push({ name: 'fail2ban filters', value: `none of "${ONLY_FAIL2BAN.join(',')}" measured (BENCH_FAIL2BAN_FILTERS)` });
  } else {
    rows.push({ name: 'fail2ban filters', value: 'not installed (apt-get install fail2ban)' });
  }
  return {
    title: 'Hostile input: lines crafted against each filter, as long as it reads them (16 KiB, the line limit, or the longest message its service writes), every line timed',
    rows,
    json: { builtin, fail2ban, refused },
  };
}
