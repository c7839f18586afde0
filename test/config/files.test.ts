import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configFiles, DEFAULT_CONTROL_SOCKET, DEFAULT_STATE_DIR, localSettingsOf } from '../../src/config/files.js';
import { loadConfig } from '../../src/config/load.js';

test('the control socket and state directory are read from the same files as the daemon reads, the last one setting them winning', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pc-files-'));
  try {
    const main = join(dir, 'portcullis.yaml');
    assert.deepEqual(localSettingsOf(main), { controlSocket: DEFAULT_CONTROL_SOCKET, stateDir: DEFAULT_STATE_DIR }, 'no file: the defaults');
    writeFileSync(main, 'state_dir: /srv/pc\ncontrol: { socket: /run/a.sock }\njails: { sshd: { maxretry: 3 } }\n');
    assert.deepEqual(localSettingsOf(main), { controlSocket: '/run/a.sock', stateDir: '/srv/pc' });
    mkdirSync(join(dir, 'conf.d'));
    writeFileSync(join(dir, 'conf.d', '10-socket.yaml'), 'control:\n  socket: /run/b.sock\n');
    writeFileSync(join(dir, 'conf.d', '20-other.yaml'), 'jails: { sshd: { bantime: 1d } }\n');
    writeFileSync(join(dir, 'conf.d', 'notes.txt'), 'control: { socket: /run/ignored.sock }\n');
    assert.deepEqual(configFiles(main).map((f) => f.slice(dir.length + 1)), ['portcullis.yaml', 'conf.d/10-socket.yaml', 'conf.d/20-other.yaml']);
    assert.deepEqual(localSettingsOf(main), { controlSocket: '/run/b.sock', stateDir: '/srv/pc' });
    const full = loadConfig(main);
    assert.deepEqual(localSettingsOf(main), { controlSocket: full.controlSocket, stateDir: full.stateDir }, 'the same answer as the full loader');
    // A file that does not parse is skipped here (the daemon would not have started on it).
    writeFileSync(join(dir, 'conf.d', '30-broken.yaml'), 'control: { socket: [\n');
    assert.equal(localSettingsOf(main).controlSocket, '/run/b.sock');
    assert.throws(() => configFiles(join(dir, 'missing.yaml'), { requireFile: true }), /missing\.yaml:1:1: the configuration file does not exist/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
