import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../helpers/daemon.js';

test('print-pf-rules prints a persistent table and a block rule per enabled jail, ports and verdict respected', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pc-pf-'));
  try {
    const config = join(dir, 'portcullis.yaml');
    writeFileSync(config, 'jails:\n  sshd: { enabled: true }\n  openvpn: { enabled: true }\n  postfix: { enabled: true, action: reject }\n  dovecot: { enabled: false }\n');
    const r = await runCli(['print-pf-rules', '--config', config]);
    assert.equal(r.code, 0, r.stderr);
    const rules = r.stdout.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
    assert.deepEqual(rules, [
      'table <portcullis_sshd> persist',
      'table <portcullis_openvpn> persist',
      'table <portcullis_postfix> persist',
      'block drop in quick proto tcp from <portcullis_sshd> to any port 22',
      'block drop in quick proto udp from <portcullis_openvpn> to any port 1194',
      'block return in quick proto tcp from <portcullis_postfix> to any port { 25, 465, 587 }',
    ]);
    const missing = await runCli(['print-pf-rules', '--config', join(dir, 'nope.yaml')]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /does not exist/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
