import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createFail2banFilter } from '../fail2ban/fail2ban-filter.js';
import type { Filter } from '../filters/filter.js';
import { builtinFilters } from '../filters/index.js';
import { DEFAULT_MAX_LINE_LENGTH } from '../sources/source.js';
import { EnvelopeParser } from '../sources/envelope.js';
import { fmt, median, type BenchRow, type BenchSection } from './report.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
/** fail2ban's annotated sample logs (Debian's fail2ban package): templates for its filters' hostile lines. */
const FAIL2BAN_SAMPLES = '/usr/lib/python3/dist-packages/fail2ban/tests/files/logs';
const FAIL2BAN_FILTERS = '/etc/fail2ban/filter.d';

/** What an attacker repeats to fill a line: runs of spaces, repeated `from `, digits and dots, address-like text. */
const UNITS = [' ', 'from ', '1', '1.', '.', '1.2.3.4 ', ' from 1.2.3.4 port 22', ':', '::1:'];

/**
 * Attack lines of each built-in filter, as the services write them, and text crafted against its
 * patterns (the markers its addresses follow). A hostile line is a template with one of the units
 * repeated at one of its word boundaries, up to the daemon's line limit (16 KiB: longer lines are cut
 * there by every source, so this is the longest line a filter ever sees).
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

/** Lines of `template` with `unit` repeated at `at` to the daemon's line limit. */
function fill(template: string, at: number, unit: string): string {
  const room = DEFAULT_MAX_LINE_LENGTH - template.length;
  const body = unit.repeat(Math.ceil(room / unit.length)).slice(0, room);
  return template.slice(0, at) + body + template.slice(at);
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

function hostileLines(templates: readonly string[], units: readonly string[], maxBoundaries: number): string[] {
  const out: string[] = [];
  for (const t of templates) for (const at of boundaries(t, maxBoundaries)) for (const u of units) out.push(fill(t, at, u));
  return out;
}

interface FilterFigures {
  filter: string;
  lines: number;
  /** Lines per second of each measured pass (envelope and filter). */
  rates: number[];
  /** The slowest single line over the measured passes, in ms. */
  worstMs: number;
  /** The slowest single line of the first, unmeasured pass (patterns compiled and optimised as they are first met), in ms. */
  firstPassWorstMs: number;
}

/** Times one pass; every line through the envelope and the filter, each timed on its own. */
function pass(filter: Filter, lines: readonly string[]): { rate: number; worst: number } {
  const parser = new EnvelopeParser({});
  let total = 0n;
  let worst = 0;
  for (const text of lines) {
    const t = process.hrtime.bigint();
    filter.match(parser.parse(text, 'bench'));
    const dt = process.hrtime.bigint() - t;
    total += dt;
    if (Number(dt) > worst) worst = Number(dt);
  }
  return { rate: lines.length / (Number(total) / 1e9), worst: worst / 1e6 };
}

/** A first pass warms the filter up (V8 compiles a regex on its first run, optimises code as it gets hot); then RUNS measured passes. */
function measure(name: string, filter: Filter, lines: readonly string[]): FilterFigures {
  const first = pass(filter, lines);
  const rates: number[] = [];
  let worst = 0;
  for (let run = 0; run < RUNS; run++) {
    const p = pass(filter, lines);
    rates.push(p.rate);
    worst = Math.max(worst, p.worst);
  }
  return { filter: name, lines: lines.length, rates, worstMs: worst, firstPassWorstMs: first.worst };
}

/** Sample lines of fail2ban's log for a filter: its non-comment lines, at most `max`, spread over the file. */
function sampleLines(name: string, max: number): string[] {
  const file = join(FAIL2BAN_SAMPLES, name);
  if (!existsSync(file)) return [];
  const lines = readFileSync(file, 'utf8').split('\n').filter((l) => l.trim() !== '' && !l.startsWith('#'));
  return spreadPick(lines, max);
}

function rowsFor(label: string, figures: readonly FilterFigures[]): BenchRow[] {
  const bySpeed = [...figures].sort((a, b) => median(a.rates) - median(b.rates));
  const slowest = bySpeed[0]!;
  const worst = figures.reduce((a, b) => (b.worstMs > a.worstMs ? b : a));
  const lines = figures.reduce((n, f) => n + f.lines, 0);
  const under = figures.filter((f) => median(f.rates) < 100_000 || f.worstMs > 10).length;
  return [
    {
      name: `${label}: slowest filter`,
      value: `${fmt(median(slowest.rates))} lines/s (${slowest.filter}, median of ${slowest.rates.length}; ${fmt(lines)} lines of 16 KiB over ${figures.length} filters)`,
      target: '≥ 100,000 lines/s',
      met: median(slowest.rates) >= 100_000,
    },
    {
      name: `${label}: slowest single line`,
      value: `${worst.worstMs.toFixed(2)} ms (${worst.filter}, over ${slowest.rates.length} passes after a first one; the first pass's slowest: ${Math.max(...figures.map((f) => f.firstPassWorstMs)).toFixed(2)} ms)`,
      target: '≤ 10 ms',
      met: worst.worstMs <= 10,
    },
    {
      name: `${label}: short of a target`,
      value: `${under} of ${figures.length}; slowest: ${bySpeed.slice(0, 6).map((f) => `${f.filter} ${fmt(median(f.rates))}/s (worst ${f.worstMs.toFixed(1)} ms)`).join(', ')}`,
    },
  ];
}

/**
 * Target 6: 16 KiB lines crafted against each built-in filter, and against each of fail2ban's stock
 * filters loaded by our fail2ban reader (its sample logs as templates, where Debian's fail2ban is
 * installed): lines per second of the slowest filter, and the slowest single line.
 */
export async function hostile(): Promise<BenchSection> {
  const builtin: FilterFigures[] = [];
  for (const [name, make] of builtinFilters) {
    const spec = BUILTIN[name];
    if (!spec) throw new Error(`the hostile bench has no templates for the built-in filter "${name}": add them to src/bench/hostile.ts`);
    builtin.push(measure(name, make(), hostileLines(spec.lines, [...UNITS, ...spec.units], 24)));
  }
  const rows = rowsFor('built-in filters', builtin);

  const fail2ban: FilterFigures[] = [];
  const refused: string[] = [];
  if (existsSync(FAIL2BAN_FILTERS) && existsSync(FAIL2BAN_SAMPLES)) {
    for (const file of readdirSync(FAIL2BAN_FILTERS).filter((f) => f.endsWith('.conf')).sort()) {
      const name = file.slice(0, -'.conf'.length);
      const templates = sampleLines(name, 8);
      if (templates.length === 0) continue;
      let filter: Filter;
      try {
        filter = createFail2banFilter(`fail2ban:${name}`);
      } catch (e) {
        refused.push(`${name}: ${(e as Error).message.split('\n')[0]}`);
        continue;
      }
      fail2ban.push(measure(`fail2ban:${name}`, filter, hostileLines(templates, UNITS, 12)));
    }
  }
  if (fail2ban.length > 0) {
    rows.push(...rowsFor('fail2ban filters (stock filter.d, sample logs as templates)', fail2ban));
    rows.push({ name: 'fail2ban filters not loaded', value: refused.length === 0 ? 'none' : `${refused.length}: ${refused.join('; ')}` });
  } else {
    rows.push({ name: 'fail2ban filters', value: 'not installed (apt-get install fail2ban)' });
  }
  return {
    title: 'Hostile input: 16 KiB lines (the line limit) crafted against each filter, every line timed',
    rows,
    json: { builtin, fail2ban, refused },
  };
}
