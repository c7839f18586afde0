import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EnvelopeParser } from '../../src/sources/envelope.js';

// Times are compared as local wall-clock components so the test holds in any TZ.
const NOW = new Date(2024, 5, 15, 12, 0, 0).getTime();
const parser = new EnvelopeParser({ now: () => NOW });
const local = (y: number, mo: number, d: number, h: number, mi: number, s: number, ms = 0): number => new Date(y, mo - 1, d, h, mi, s, ms).getTime();

test('RFC 3164 with host, program and pid', () => {
  const l = parser.parse('Sep 26 03:12:34 skapet sshd[25771]: Failed password for root from 200.72.41.31 port 40992 ssh2', 't');
  assert.equal(l.host, 'skapet');
  assert.equal(l.program, 'sshd');
  assert.equal(l.pid, 25771);
  assert.equal(l.message, 'Failed password for root from 200.72.41.31 port 40992 ssh2');
  // September is after June 15: it belongs to the previous year.
  assert.equal(l.time, local(2023, 9, 26, 3, 12, 34));
  assert.equal(l.timeFromLine, true);
});

test('RFC 3164 from a router that omits its host (seed 000)', () => {
  const l = parser.parse('Sep 6 12:40:15 vpnserver1[535]: 148.163.126.72:22475 TLS Error: TLS handshake failed', 't');
  assert.equal(l.host, null);
  assert.equal(l.program, 'vpnserver1');
  assert.equal(l.pid, 535);
  assert.equal(l.message, '148.163.126.72:22475 TLS Error: TLS handshake failed');
});

test('single-digit day padded with a space, program without pid, postfix sub-program', () => {
  const l = parser.parse('Jun  3 01:02:03 mx postfix/smtpd[99]: lost connection after AUTH from unknown[192.0.2.9]', 't');
  assert.equal(l.time, local(2024, 6, 3, 1, 2, 3));
  assert.equal(l.program, 'postfix/smtpd');
  const k = parser.parse('Jun  3 01:02:03 gw kernel: [12345.678] IN=eth0', 't');
  assert.equal(k.program, 'kernel');
  assert.equal(k.pid, null);
  assert.equal(k.message, '[12345.678] IN=eth0');
});

test('RFC 3164 with a year, and with a priority', () => {
  assert.equal(parser.parse('Feb 7 2005 15:10:42 h sshd[1]: x', 't').time, local(2005, 2, 7, 15, 10, 42));
  const l = parser.parse('<34>Jun 14 22:14:15 mymachine su: su root failed on /dev/pts/8', 't');
  assert.equal(l.host, 'mymachine');
  assert.equal(l.program, 'su');
});

test('ISO 8601 (rsyslog high precision) with offset', () => {
  const l = parser.parse('2024-03-01T10:00:00.123456+01:00 host sshd[7]: Invalid user a from 192.0.2.1 port 5', 't');
  assert.equal(l.time, Date.UTC(2024, 2, 1, 9, 0, 0, 123));
  assert.equal(l.program, 'sshd');
});

test('RFC 5424 with structured data', () => {
  const l = parser.parse('<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog 42 ID47 [exampleSDID@32473 iut="3" x="a\\]b"] An application event', 't');
  assert.equal(l.time, Date.UTC(2003, 9, 11, 22, 14, 15, 3));
  assert.equal(l.host, 'mymachine.example.com');
  assert.equal(l.program, 'evntslog');
  assert.equal(l.pid, 42);
  assert.equal(l.message, 'An application event');
  const nil = parser.parse('<13>1 2024-01-01T00:00:00Z h sshd - - - Failed password', 't');
  assert.equal(nil.message, 'Failed password');
  assert.equal(nil.pid, null);
});

test('RFC 5424 structured data with an unescaped ] inside a quoted value (fail2ban gh-2309)', () => {
  const l = parser.parse(
    '<38>1 2019-07-08T17:40:17.954167-04:00 hostname.example.com sshd 55555 - [timeQuality tzKnown="1" isSynced="0"][xxx@123 test="[brackets]" q="a\\"]b"] Failed unknown for invalid user redmond from 192.0.2.2 port 55555 ssh2',
    't',
  );
  assert.equal(l.program, 'sshd');
  assert.equal(l.pid, 55555);
  assert.equal(l.time, Date.UTC(2019, 6, 8, 21, 40, 17, 954));
  assert.equal(l.message, 'Failed unknown for invalid user redmond from 192.0.2.2 port 55555 ssh2');
});

test('bare service formats: nginx, Apache, Asterisk, OpenVPN ctime, exim', () => {
  const n = parser.parse('2024/01/02 03:04:05 [error] 123#0: *1 user "x" was not found', 't');
  assert.equal(n.time, local(2024, 1, 2, 3, 4, 5));
  assert.equal(n.program, null);
  assert.equal(n.message, '[error] 123#0: *1 user "x" was not found');
  const a = parser.parse('[Wed Jan 03 04:05:06.123456 2024] [auth_basic:error] [pid 1] [client 192.0.2.1:5] AH01617: x', 't');
  assert.equal(a.time, local(2024, 1, 3, 4, 5, 6, 123));
  assert.equal(a.message, '[auth_basic:error] [pid 1] [client 192.0.2.1:5] AH01617: x');
  const s = parser.parse('[2024-01-04 05:06:07] NOTICE[123] chan_sip.c: Registration failed', 't');
  assert.equal(s.time, local(2024, 1, 4, 5, 6, 7));
  assert.equal(s.message, 'NOTICE[123] chan_sip.c: Registration failed');
  const o = parser.parse('Thu Jan  4 05:06:07 2024 192.0.2.4:1194 TLS Error: TLS handshake failed', 't');
  assert.equal(o.time, local(2024, 1, 4, 5, 6, 7));
  assert.equal(o.message, '192.0.2.4:1194 TLS Error: TLS handshake failed');
  const e = parser.parse('2024-01-05 06:07:08 login authenticator failed for (x) [192.0.2.5]: 535', 't');
  assert.equal(e.time, local(2024, 1, 5, 6, 7, 8));
  assert.equal(e.program, null);
});

test('lines without a known envelope keep arrival time and the whole text', () => {
  const l = parser.parse('just some text from 192.0.2.1', 't');
  assert.equal(l.timeFromLine, false);
  assert.equal(l.time, NOW);
  assert.equal(l.message, 'just some text from 192.0.2.1');
});

test('hostile envelopes stay linear', () => {
  for (const raw of ['Jan ' + ' '.repeat(16000), '<' + '1'.repeat(16000), '[' + '2024-'.repeat(3000), 'Jan 1 00:00:00 ' + 'a['.repeat(8000) + ':']) {
    const l = parser.parse(raw, 't');
    assert.equal(typeof l.message, 'string');
  }
});

test('multilog TAI64N label, then the program tag', () => {
  // 2^62 + 10 + Unix seconds (daemontools' tai64nlocal subtracts the same 10 s), then nanoseconds.
  const l = parser.parse('@4000000066bd20e61dcd6500 imap-login: Info: Aborted login (auth failed, 1 attempts)', 't');
  assert.equal(l.time, (0x66bd20e6 - 10) * 1000 + 500);
  assert.equal(l.timeFromLine, true);
  assert.equal(l.program, 'imap-login');
  assert.equal(l.host, null);
  assert.equal(l.message, 'Info: Aborted login (auth failed, 1 attempts)');
  const bare = parser.parse('@4000000066bd20e61dcd6500 some text', 't');
  assert.equal(bare.program, null);
  assert.equal(bare.message, 'some text');
  // Not a label: one hex digit too many, or not hex.
  assert.equal(parser.parse('@4000000066bd20e61dcd65000 x', 't').timeFromLine, false);
  assert.equal(parser.parse('@4000000066bd20e61dcd650g x', 't').timeFromLine, false);
});

test('ISO date with a space followed by a syslog tag (rsyslog templates), but never a service text', () => {
  const l = parser.parse('2019-10-22 03:39:17 mx1 exim[29786]: dovecot_login authenticator failed for (User) [192.0.2.37]: 535', 't');
  assert.equal(l.time, local(2019, 10, 22, 3, 39, 17));
  assert.equal(l.host, 'mx1');
  assert.equal(l.program, 'exim');
  assert.equal(l.pid, 29786);
  assert.equal(l.message, 'dovecot_login authenticator failed for (User) [192.0.2.37]: 535');
  const noHost = parser.parse('2019-10-22 03:39:17 exim[1]: x', 't');
  assert.equal(noHost.program, 'exim');
  assert.equal(noHost.host, null);
  // A host name has at most 253 characters: a longer word is the service's text, not a host.
  const host253 = 'h'.repeat(253);
  assert.equal(parser.parse(`2019-10-22 03:39:17 ${host253} exim[1]: x`, 't').host, host253);
  const long = parser.parse(`2019-10-22 03:39:17 ${'h'.repeat(254)} exim[1]: x`, 't');
  assert.deepEqual([long.host, long.program, long.message], [null, null, `${'h'.repeat(254)} exim[1]: x`]);
  // Exim's own `[pid]`, Dovecot's `auth-worker(N):` and text that merely looks like a host stay the message.
  for (const message of ['[13314] SMTP protocol synchronization error', 'auth-worker(default): Info: pam(u,192.0.2.1): unknown user', 'H=(x) [192.0.2.1] a[1]: b', 'login authenticator failed for (x) [192.0.2.1]']) {
    const b = parser.parse(`2013-06-02 06:54:20 ${message}`, 't');
    assert.equal(b.program, null);
    assert.equal(b.host, null);
    assert.equal(b.message, message);
  }
});

test('a tag is prog[digits]: anything else in the brackets keeps the line as a message', () => {
  const tag = (raw: string): [string | null, number | null, string] => {
    const l = parser.parse(raw, 't');
    return [l.program, l.pid, l.message];
  };
  assert.deepEqual(tag('Jun  3 01:02:03 h p[7]: x'), ['p', 7, 'x']);
  assert.deepEqual(tag('Jun  3 01:02:03 h p[0042]: x'), ['p', 42, 'x']);
  assert.deepEqual(tag('Jun  3 01:02:03 h p[]: x'), [null, null, 'p[]: x']);
  assert.deepEqual(tag('Jun  3 01:02:03 h p[4a2]: x'), [null, null, 'p[4a2]: x']);
  assert.deepEqual(tag('Jun  3 01:02:03 h p[[42]: x'), ['p[', 42, 'x']);
  assert.deepEqual(tag('Jun  3 01:02:03 h [42]: x'), [null, null, '[42]: x']);
  // A pid has at most 10 digits: a crafted run of them is not read to its start.
  assert.deepEqual(tag('Jun  3 01:02:03 h p[4294967295]: x'), ['p', 4294967295, 'x']);
  assert.deepEqual(tag(`Jun  3 01:02:03 h p[${'1'.repeat(11)}]: x`), [null, null, `p[${'1'.repeat(11)}]: x`]);
  // Weekday and month names are whole words, case and all.
  assert.equal(parser.parse('Sun Jun  3 01:02:03 2024 ovpn: x', 't').time, local(2024, 6, 3, 1, 2, 3));
  assert.equal(parser.parse('Jux  3 01:02:03 h p: x', 't').timeFromLine, false);
  assert.equal(parser.parse('jun  3 01:02:03 h p: x', 't').timeFromLine, false);
});

test('yearless dates follow the clock across New Year, line after line', () => {
  let now = new Date(2023, 11, 31, 23, 59, 40).getTime();
  const p = new EnvelopeParser({ now: () => now });
  assert.equal(p.parse('Dec 31 23:59:30 h sshd[1]: x', 't').time, local(2023, 12, 31, 23, 59, 30));
  now = new Date(2024, 0, 1, 0, 0, 40).getTime();
  assert.equal(p.parse('Jan  1 00:00:30 h sshd[1]: x', 't').time, local(2024, 1, 1, 0, 0, 30));
  // A late line from the old year still goes to the old year.
  assert.equal(p.parse('Dec 31 23:59:59 h sshd[1]: x', 't').time, local(2023, 12, 31, 23, 59, 59));
});

test('a timestamp repeated from the line before parses as it would on its own', () => {
  // Pairs whose second line starts with the first one's timestamp text, or almost: the cached parse of
  // the first must never stand in for a different one.
  const lines = [
    'Jan 10 00:00:00 gw sshd[1]: a', 'Jan 10 00:00:00 gw sshd[2]: b', 'Jan 10 00:00:00  gw sshd[3]: two spaces',
    'Jan 10 00:00:00 sshd[4]: no host', 'Jan 10 00:00:00.250 gw sshd[5]: fraction', 'Jan 10 00:00:00 2023 gw sshd[6]: with a year',
    'Jan 10 00:00:00', 'Jan 10 00:00:00 ', 'Jan 10 00:00:01 gw sshd[7]: next second',
    '<38>Jan 10 00:00:01 gw sshd[8]: priority', '<38>Jan 10 00:00:01 gw sshd[9]: priority again', 'Jan 10 00:00:01 gw sshd[10]: after',
    'Wed Jan 10 00:00:02 2024 ovpn: ctime', 'Wed Jan 10 00:00:02 2024 ovpn: ctime again', 'Wed Jan 10 00:00:02 2024',
    '2024-01-10 00:00:03 gw prog[1]: rsyslog', '2024-01-10 00:00:03 gw prog[2]: again', '2024-01-10 00:00:03 SMTP text',
    '2024-01-10T00:00:03Z gw sshd[11]: iso', '2024-01-10T00:00:03Z gw sshd[12]: iso again', '2024-01-10T00:00:03+01:00 gw sshd[13]: offset',
    '[Jan 10 00:00:04] NOTICE[1] chan_sip.c: bracketed', '[Jan 10 00:00:04] NOTICE[2] chan_sip.c: again',
    '@400000006000000000000000 prog: tai', '@400000006000000000000000 prog: tai again',
    'Jan 10 00:00:04 gw sshd[14]: x', 'Jan 10 00:00:04', 'Jan 10 00:00:04 gw sshd[15]: y',
  ];
  const shared = new EnvelopeParser({ now: () => NOW });
  for (const line of lines) {
    assert.deepEqual(shared.parse(line, 't'), new EnvelopeParser({ now: () => NOW }).parse(line, 't'), line);
  }
});
