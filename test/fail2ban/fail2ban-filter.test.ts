import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configFromFiles } from '../../src/config/load.js';
import { ConfigErrors } from '../../src/core/errors.js';
import { replay } from '../../src/cli/replay.js';
import { createFail2banFilter } from '../../src/fail2ban/fail2ban-filter.js';
import { EnvelopeParser } from '../../src/sources/envelope.js';

const now = Date.UTC(2005, 7, 14, 12);

test('a fail2ban filter as a Portcullis filter: address, user, its own time, names never banned', () => {
  const f = createFail2banFilter('fail2ban:sshd[mode=aggressive]', { now: () => now });
  const p = new EnvelopeParser({ now: () => now });
  const m = f.match(p.parse('Aug 14 11:58:59 host sshd[1]: Failed password for invalid user oracle from 192.0.2.7 port 22 ssh2', 'file:x'));
  assert.deepEqual({ ...m, time: new Date(m!.time!).getFullYear() }, { kind: 'auth-failure', address: '192.0.2.7', user: 'oracle', pattern: 'failregex 4', time: 2005 });
  assert.equal(f.match(p.parse('Aug 14 11:59:00 host sshd[2]: User root from evil.example not allowed because not listed in AllowUsers', 'file:x')), null);
  assert.equal(f.unbannable, 1);
});

test('config: filters may be fail2ban filter files; mistakes point into the fail2ban file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'f2b-cfg-'));
  try {
    mkdirSync(join(dir, 'filter.d'));
    writeFileSync(join(dir, 'filter.d', 'app.conf'), '[Definition]\nfailregex = ^\\s*\\S+ app: login failed for <F-USER>\\S+</F-USER> from <HOST>$\n            ^bad (regex\ndatepattern = ^%%Y-%%m-%%d %%H:%%M:%%S\n');
    const log = join(dir, 'app.log');
    writeFileSync(log, ['2024-05-01 10:00:00 h app: login failed for a from 203.0.113.9', '2024-05-01 10:00:05 h app: login failed for b from 203.0.113.9', '2024-05-01 10:00:09 h app: login ok for a from 203.0.113.9'].join('\n'));
    const yaml = (filter: string): string => `jails:\n  sshd: { enabled: false }\n  app:\n    filters: ["${filter}"]\n    sources: [{ file: ${log} }]\n    maxretry: 2\n`;
    assert.throws(() => configFromFiles([{ file: 'p.yaml', text: yaml(`${dir}/filter.d/app.conf`) }]), (e: unknown) => e instanceof ConfigErrors && e.message.includes(`${dir}/filter.d/app.conf:3:`) && /missing \)/.test(e.message));
    writeFileSync(join(dir, 'filter.d', 'app.local'), '[Definition]\nfailregex = ^\\s*\\S+ app: login failed for <F-USER>\\S+</F-USER> from <HOST>$\n');
    const config = configFromFiles([{ file: 'p.yaml', text: yaml(`${dir}/filter.d/app.conf`) }]);
    const bans: string[] = [];
    await replay(config, [log], { includeHostAddresses: false, onDecision: (d) => { if (d.action === 'ban') bans.push(`${d.target} ${new Date(d.time).toISOString()}`); } });
    assert.deepEqual(bans, [`203.0.113.9 ${new Date(2024, 4, 1, 10, 0, 5).toISOString()}`]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
