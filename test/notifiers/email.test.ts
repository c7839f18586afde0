import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, rmSync } from 'node:fs';
import { silentLogger, type Logger } from '../../src/core/log.js';
import { EmailNotifier } from '../../src/notifiers/email.js';
import type { DecisionNotice, EmailOptions } from '../../src/notifiers/notifier.js';
import { startDaemon, waitFor } from '../helpers/daemon.js';
import { makeSetup, sshFailure, syslogTime } from '../control/fixture.js';
import { CA_FILE, SMTP_PASSWORD, SMTP_USER, startSmtp, type TestSmtp } from './smtp.js';

/**
 * Mail alerts against a real SMTP server on loopback (STARTTLS, AUTH): the
 * daemon mails on start, on a ban and on stop; a flood of bans stays within
 * the hourly cap and the digest lists every ban.
 */

let smtp: TestSmtp;
before(async () => { smtp = await startSmtp(); });
after(async () => smtp?.close());

const ADDRESS = /\b198\.(?:18|19)\.\d+\.\d+\b/g;

describe('the daemon mails on start, ban and stop', () => {
  test('through STARTTLS with authentication, with jail, address, reason, duration and escaped log lines', async () => {
    smtp.mails.length = 0;
    const s = makeSetup('pc-mail-', [
      'notify:',
      '  email:',
      '    to: [admin@example.org, oncall@example.org]',
      '    from: portcullis@web1.example.org',
      `    smtp: { host: localhost, port: ${smtp.port}, tls: starttls, user: ${SMTP_USER}, password: ${SMTP_PASSWORD}, ca_file: ${CA_FILE} }`,
      '    max_lines: 2',
    ].join('\n'));
    try {
      const daemon = await startDaemon(['--config', s.config], s.socket);
      await waitFor(() => smtp.mails.length >= 1, 10_000, () => daemon.output());
      const start = smtp.mails[0]!;
      assert.match(start.subject, /^\[Portcullis\] \S+: started$/);
      assert.match(start.text, /Jails: sshd, openvpn/);
      assert.equal(start.secure, true, 'the session was upgraded with STARTTLS');
      assert.equal(start.user, SMTP_USER);
      assert.equal(start.from, 'portcullis@web1.example.org');
      assert.deepEqual(start.to, ['admin@example.org', 'oncall@example.org']);

      // Three failures, the last with a user name carrying a terminal escape sequence.
      sshFailure(s, '198.51.100.9');
      sshFailure(s, '198.51.100.9');
      appendFileSync(s.auth, `${syslogTime()} web1 sshd[77]: Failed password for invalid user x\u001b[2Jroot from 198.51.100.9 port 4242 ssh2\n`);
      await waitFor(() => smtp.mails.length >= 2, 10_000, () => daemon.output());
      const ban = smtp.mails[1]!;
      assert.match(ban.subject, /: banned 198\.51\.100\.9 in sshd$/);
      assert.match(ban.text, /^Jail: +sshd$/m);
      assert.match(ban.text, /^Address: +198\.51\.100\.9$/m);
      assert.match(ban.text, /^Reason: +3 failures within 10m \(last: invalid-user by sshd, user "x\\u001b\[2Jroot"\)$/m);
      assert.match(ban.text, /^Duration: +1h \(until \d{4}-\d\d-\d\dT/m);
      assert.match(ban.text, /\(1 earlier line\(s\) not shown\)/);
      assert.match(ban.text, /Failed password for invalid user x\\x1b\[2Jroot from 198\.51\.100\.9 port 4242/);
      assert.ok(!ban.text.includes('\u001b'), 'no raw control character reaches the mail');

      assert.equal(await daemon.stop(), 0, daemon.output());
      await waitFor(() => smtp.mails.length >= 3, 10_000, () => daemon.output());
      assert.match(smtp.mails[2]!.subject, /: stopped$/);
      assert.equal(smtp.mails.length, 3);
    } finally {
      rmSync(s.dir, { recursive: true, force: true });
    }
  });
});

function options(overrides: Partial<EmailOptions> = {}): EmailOptions {
  return {
    to: ['admin@example.org'], from: 'portcullis@example.org',
    smtp: { host: 'localhost', port: smtp.port, tls: 'starttls', user: SMTP_USER, password: SMTP_PASSWORD, caFile: CA_FILE, verify: true },
    on: ['start', 'stop', 'ban', 'siege'], bans: 'each', digestEveryMs: 500, maxPerHour: 5, maxLines: 3, subjectPrefix: '[Portcullis]',
    ...overrides,
  };
}

function ban(i: number): DecisionNotice {
  const target = `198.${18 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;
  const now = Date.now();
  return {
    kind: 'ban', time: now, node: 'web1',
    decision: { action: 'ban', target, jail: 'sshd', time: now, until: now + 3_600_000, reason: '5 failures within 10m', origin: 'web1', evidence: [`sshd[1]: Failed password for root from ${target} port 22 ssh2`] },
  };
}

function capture(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  const keep = (m: string): void => { lines.push(m); };
  return { log: { debug: keep, info: keep, warn: keep, error: keep }, lines };
}

describe('a flood does not flood the mailbox', () => {
  test('10,000 bans within a minute: at most max_per_hour mails, and together they name every address', async () => {
    smtp.mails.length = 0;
    const { log, lines } = capture();
    const mailer = new EmailNotifier(options({ maxPerHour: 5 }), log);
    mailer.notify({ kind: 'start', time: Date.now(), node: 'web1', jails: ['sshd'] });
    for (let i = 0; i < 10_000; i++) mailer.notify(ban(i));
    await waitFor(() => smtp.mails.length >= 5, 20_000, () => lines.join('\n'));
    // Nothing more comes: the hour's mails are used up.
    for (let i = 10_000; i < 10_010; i++) mailer.notify(ban(i));
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(smtp.mails.length, 5);

    const [start, ...rest] = smtp.mails;
    assert.match(start!.subject, /started/);
    const singles = rest.filter((m) => /banned/.test(m.subject));
    const digests = rest.filter((m) => /\(digest\)/.test(m.subject));
    assert.equal(singles.length, 3, 'one mail of the hour is kept for the digest');
    assert.equal(digests.length, 1);
    assert.match(digests[0]!.subject, /: 9997 ban\(s\) \(digest\)$/);
    assert.match(digests[0]!.text, /Bans by jail: sshd 9997/);
    const named = new Set<string>();
    for (const m of [...singles, ...digests]) for (const a of m.text.match(ADDRESS) ?? []) named.add(a);
    for (let i = 0; i < 10_000; i++) assert.ok(named.has(ban(i).decision.target), `ban ${i} is reported`);
    assert.match(digests[0]!.text, /Matching log lines of the first 20 ban\(s\)/);

    await mailer.close();
    assert.ok(lines.some((l) => /10 notice\(s\) not mailed at shutdown/.test(l)), lines.join('\n'));
    assert.equal(smtp.mails.length, 5);
  });

  test('digest mode: bans collected and mailed together every digest_every, with their log lines', async () => {
    smtp.mails.length = 0;
    const mailer = new EmailNotifier(options({ bans: 'digest', maxPerHour: 10, digestEveryMs: 300 }), silentLogger);
    for (let i = 0; i < 50; i++) mailer.notify(ban(i));
    await waitFor(() => smtp.mails.length >= 1, 10_000);
    for (let i = 50; i < 60; i++) mailer.notify(ban(i));
    await waitFor(() => smtp.mails.length >= 2, 10_000);
    assert.match(smtp.mails[0]!.subject, /: 50 ban\(s\) \(digest\)$/);
    assert.match(smtp.mails[1]!.subject, /: 10 ban\(s\) \(digest\)$/);
    assert.match(smtp.mails[0]!.text, /Failed password for root from 198\.18\.0\.0 port 22/);
    // The stop mail carries what is still waiting: nothing is lost at shutdown.
    mailer.notify(ban(60));
    mailer.notify({ kind: 'stop', time: Date.now(), node: 'web1' });
    await mailer.close();
    assert.equal(smtp.mails.length, 3);
    assert.match(smtp.mails[2]!.subject, /: stopped$/);
    assert.match(smtp.mails[2]!.text, /Not reported until now:[\s\S]*banned 198\.18\.0\.60 for 1h/);
  });

  test('a server that refuses the login: the failure is logged and the bans go into the next digest', async () => {
    smtp.mails.length = 0;
    const { log, lines } = capture();
    const o = options({ maxPerHour: 10, digestEveryMs: 200 });
    const mailer = new EmailNotifier({ ...o, smtp: { ...o.smtp, password: 'wrong' } }, log);
    mailer.notify(ban(1));
    await waitFor(() => lines.some((l) => /email: cannot send .* retrying in the next digest/.test(l)), 10_000, () => lines.join('\n'));
    assert.equal(smtp.mails.length, 0);
    assert.equal(mailer.stats.failed, 1);
    await mailer.close();
  });
});
