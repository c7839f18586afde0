import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect as netConnect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { parseNetwork } from '../../src/core/address.js';
import { callDaemon } from '../../src/control/client.js';
import type { StatusReport } from '../../src/daemon/daemon.js';
import { FrameDecoder, parseListen, SyslogSource, type SyslogSourceStatus } from '../../src/sources/syslog.js';
import { configFromFiles } from '../../src/config/load.js';
import { startDaemon, waitFor as waitForAsync } from '../helpers/daemon.js';
import { createTopology } from '../helpers/netns.js';
import { Collector, waitFor } from './helpers.js';

/**
 * The syslog receiver with real senders: util-linux `logger` over UDP and TCP
 * (RFC 3164, RFC 5424, newline-framed and octet-counted), a TLS client with and
 * without a client certificate, garbage that must not stop it, a sender not on
 * the allowlist; and end to end, a router's OpenVPN flood sent over syslog to
 * a daemon in a network namespace, banned in that namespace's nftables.
 */

const dir = mkdtempSync(join(tmpdir(), 'pc-syslog-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const net = (...t: string[]) => t.map((x) => parseNetwork(x)!);

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

function logger(args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('logger', args, (err, _out, stderr) => (err ? reject(new Error(`logger ${args.join(' ')}: ${stderr}`)) : resolve()));
  });
}

async function receiver(listen: string, allow = net('127.0.0.1'), extra: Partial<ConstructorParameters<typeof SyslogSource>[0]> = {}) {
  const source = new SyslogSource({ listen, allow, ...extra });
  const collector = new Collector();
  await source.start(collector.handler);
  return { source, collector, status: () => source.status() as SyslogSourceStatus };
}

describe('framing (RFC 6587)', () => {
  const decode = (chunks: Array<string | Buffer>, max = 64) => {
    const frames: string[] = [];
    const malformed: string[] = [];
    let cuts = 0;
    const d = new FrameDecoder(max, (f, cut) => { frames.push(f.toString()); if (cut) cuts++; }, (why) => malformed.push(why));
    let open = true;
    for (const c of chunks) if (open) open = d.push(Buffer.isBuffer(c) ? c : Buffer.from(c));
    if (open) d.end();
    return { frames, malformed, cuts, open };
  };

  test('octet-counted and newline-framed frames, recognised per frame, split anywhere', () => {
    const stream = '11 <13>hello\nx<14>plain line\n9 <15>a b c\r\n<13>last without LF';
    for (let cutAt = 1; cutAt < stream.length; cutAt++) {
      const r = decode([stream.slice(0, cutAt), stream.slice(cutAt)]);
      assert.deepEqual(r.frames, ['<13>hello\nx', '<14>plain line', '<15>a b c', '<13>last without LF'], `split at ${cutAt}`);
    }
  });

  test('a frame longer than the limit is cut and its rest skipped; memory stays bounded', () => {
    const r = decode([`100 <13>${'a'.repeat(96)}`, `<13>${'b'.repeat(200)}\n<13>ok\n`], 16);
    assert.deepEqual(r.frames, [`<13>${'a'.repeat(12)}`, `<13>${'b'.repeat(12)}`, '<13>ok']);
    assert.equal(r.cuts, 2);
  });

  test('a broken octet count is reported; an absurd one closes the connection', () => {
    const r = decode(['12x <13>junk\n<13>after\n']);
    assert.deepEqual(r.frames, ['<13>after']);
    assert.equal(r.malformed.length, 1);
    const huge = decode(['123456789012 <13>x']);
    assert.equal(huge.open, false);
    assert.deepEqual(huge.frames, []);
  });

  test('listen addresses', () => {
    assert.equal(parseListen('udp://0.0.0.0')?.url, 'udp://0.0.0.0:514');
    assert.equal(parseListen('tls://[::]')?.url, 'tls://[::]:6514');
    assert.equal(parseListen('tcp://[::ffff:127.0.0.1]:1514')?.url, 'tcp://127.0.0.1:1514');
    assert.equal(parseListen('http://0.0.0.0:514'), null);
    assert.equal(parseListen('udp://example.org:514'), null);
    assert.equal(parseListen('udp://0.0.0.0:70000'), null);
  });
});

describe('receiver with logger', () => {
  test('UDP, RFC 3164 and RFC 5424: envelope parsed, peer address recorded as sender', async () => {
    const port = await freePort();
    const r = await receiver(`udp://127.0.0.1:${port}`);
    try {
      await logger(['--server', '127.0.0.1', '--port', String(port), '--udp', '--rfc3164', '-t', 'sshd', '-p', 'auth.warning', 'Failed password for root from 198.51.100.7 port 4711 ssh2']);
      await logger(['--server', '127.0.0.1', '--port', String(port), '--udp', '--rfc5424', '-t', 'vpnserver1', '--id=535', '198.51.100.8:1194 TLS Error: TLS handshake failed']);
      await waitFor(() => r.collector.lines.length === 2, 'two lines', () => r.collector.raw());
      const [a, b] = r.collector.lines;
      assert.equal(a!.program, 'sshd');
      assert.equal(a!.message, 'Failed password for root from 198.51.100.7 port 4711 ssh2');
      assert.equal(a!.sender, '127.0.0.1');
      assert.equal(a!.source, `syslog:udp://127.0.0.1:${port}`);
      assert.equal(a!.timeFromLine, true);
      assert.ok(Math.abs(a!.time - Date.now()) < 5000);
      assert.equal(b!.program, 'vpnserver1');
      assert.equal(b!.pid, 535);
      assert.equal(b!.message, '198.51.100.8:1194 TLS Error: TLS handshake failed');
      assert.equal(b!.sender, '127.0.0.1');
      const st = r.status();
      assert.equal(st.senders[0]!.address, '127.0.0.1');
      assert.equal(st.senders[0]!.lines, 2);
      assert.equal(st.senders[0]!.perMinute, 2);
      assert.ok(st.items.some((i) => i.name === 'from 127.0.0.1' && /2 lines\/min/.test(i.state)));
    } finally {
      await r.source.stop();
    }
  });

  test('TCP newline-framed and octet-counted (RFC 6587), several messages on one connection', async () => {
    const port = await freePort();
    const r = await receiver(`tcp://127.0.0.1:${port}`);
    try {
      await logger(['--server', '127.0.0.1', '--port', String(port), '--tcp', '--rfc3164', '-t', 'sshd', 'Invalid user admin from 198.51.100.9 port 1']);
      await logger(['--server', '127.0.0.1', '--port', String(port), '--tcp', '--octet-count', '--rfc5424', '-t', 'sshd', 'Invalid user oracle from 198.51.100.10 port 2']);
      // logger sends one message per line of standard input, all on one connection.
      const many = Array.from({ length: 50 }, (_, i) => `Invalid user u${i} from 198.51.100.11 port ${i}`).join('\n');
      await new Promise<void>((resolve, reject) => {
        const p = execFile('logger', ['--server', '127.0.0.1', '--port', String(port), '--tcp', '--octet-count', '--rfc5424', '-t', 'sshd'], (err) => (err ? reject(err) : resolve()));
        p.stdin!.end(`${many}\n`);
      });
      await waitFor(() => r.collector.lines.length === 52, '52 lines', () => r.collector.lines.length);
      assert.equal(r.collector.lines[0]!.message, 'Invalid user admin from 198.51.100.9 port 1');
      assert.equal(r.collector.lines[1]!.message, 'Invalid user oracle from 198.51.100.10 port 2');
      assert.deepEqual(r.collector.lines.slice(2).map((l) => l.message), many.split('\n'));
      assert.ok(r.collector.lines.every((l) => l.program === 'sshd' && l.sender === '127.0.0.1'));
    } finally {
      await r.source.stop();
    }
  });

  test('a sender not on the allowlist is dropped and counted, over UDP and TCP', async () => {
    const [udpPort, tcpPort] = [await freePort(), await freePort()];
    const udp = await receiver(`udp://127.0.0.1:${udpPort}`, net('192.0.2.1', '2001:db8::/32'));
    const tcp = await receiver(`tcp://127.0.0.1:${tcpPort}`, net('192.0.2.0/24'));
    try {
      for (let i = 0; i < 3; i++) await logger(['--server', '127.0.0.1', '--port', String(udpPort), '--udp', '-t', 'sshd', `Failed password for root from 198.51.100.${i} port 1 ssh2`]);
      await logger(['--server', '127.0.0.1', '--port', String(tcpPort), '--tcp', '-t', 'sshd', 'Failed password for root from 198.51.100.1 port 1 ssh2']).catch(() => {});
      await waitFor(() => udp.status().dropped.notAllowed === 3 && tcp.status().dropped.notAllowed >= 1, 'drops counted', () => [udp.status().dropped, tcp.status().dropped]);
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal(udp.collector.lines.length, 0);
      assert.equal(tcp.collector.lines.length, 0);
      assert.deepEqual(udp.status().notAllowedSenders, [{ address: '127.0.0.1', count: 3 }]);
      assert.deepEqual(udp.status().senders, []);
    } finally {
      await udp.source.stop();
      await tcp.source.stop();
    }
  });

  test('malformed frames do not stop the receiver', async () => {
    const [udpPort, tcpPort] = [await freePort(), await freePort()];
    const udp = await receiver(`udp://127.0.0.1:${udpPort}`, net('127.0.0.1'), { maxLineLength: 256 });
    const tcp = await receiver(`tcp://127.0.0.1:${tcpPort}`, net('127.0.0.1'), { maxLineLength: 256 });
    try {
      const sock = createSocket('udp4');
      const junk = [Buffer.from('no priority at all'), Buffer.from([0xff, 0xfe, 0x00, 0x3c, 0x3e]), Buffer.from('<999>pri out of range'), Buffer.alloc(0), Buffer.from(`<13>${'x'.repeat(4000)}`)];
      for (const j of junk) await new Promise<void>((resolve) => sock.send(j, udpPort, '127.0.0.1', () => resolve()));
      sock.close();
      // TCP: a bad frame on one connection, an absurd octet count on another (closed by the receiver), a half frame.
      const send = (data: string | Buffer) => new Promise<void>((resolve) => {
        const c = netConnect(tcpPort, '127.0.0.1', () => c.end(data));
        c.on('close', () => resolve());
        c.on('error', () => resolve());
      });
      await send('garbage without pri\n12x <13>broken count\n<13>sshd: fine after garbage\n');
      await send('999999999999 <13>never');
      await send('30 <13>sshd: cut short');
      await send(Buffer.concat([Buffer.from('<13>sshd: bad utf8 '), Buffer.from([0xc3, 0x28, 0xa0]), Buffer.from(' \x1b[31mred\n')]));
      await logger(['--server', '127.0.0.1', '--port', String(udpPort), '--udp', '-t', 'sshd', 'still listening (udp)']);
      await logger(['--server', '127.0.0.1', '--port', String(tcpPort), '--tcp', '-t', 'sshd', 'still listening (tcp)']);
      await waitFor(() => udp.collector.raw().some((l) => l.endsWith('still listening (udp)')), 'udp line after junk', () => udp.status());
      await waitFor(() => tcp.collector.raw().some((l) => l.endsWith('still listening (tcp)')), 'tcp line after junk', () => tcp.status());
      const u = udp.status();
      assert.equal(u.dropped.malformed, 3, 'no PRI, binary, PRI above 191');
      assert.equal(u.dropped.cut, 1);
      assert.equal(udp.collector.lines.filter((l) => l.raw.startsWith('<13>xxx')).length, 1);
      assert.ok(udp.collector.lines.every((l) => Buffer.byteLength(l.raw) <= 256));
      const t = tcp.status();
      assert.ok(t.dropped.malformed >= 3, JSON.stringify(t.dropped));
      const fine = tcp.collector.lines.map((l) => l.message);
      assert.ok(fine.includes('fine after garbage'));
      const bad = tcp.collector.lines.find((l) => l.message.startsWith('bad utf8'))!;
      assert.equal(bad.message.includes('\x1b'), false, 'control characters are escaped');
      assert.match(bad.message, /#033\[31mred$/);
      assert.equal(t.state, 'listening');
    } finally {
      await udp.source.stop();
      await tcp.source.stop();
    }
  });

  test('TLS (RFC 5425) with client certificates: a signed client is heard, one without a certificate is refused', async () => {
    const f = (n: string) => join(dir, n);
    const ssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
    ssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '1', '-subj', '/CN=test syslog CA');
    for (const who of ['server', 'router']) {
      ssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', f(`${who}.key`), '-out', f(`${who}.csr`), '-subj', `/CN=${who === 'server' ? 'localhost' : 'router'}`);
      writeFileSync(f(`${who}.ext`), who === 'server' ? 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' : 'extendedKeyUsage=clientAuth\n');
      ssl('x509', '-req', '-in', f(`${who}.csr`), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f(`${who}.pem`), '-days', '1', '-extfile', f(`${who}.ext`));
    }
    const port = await freePort();
    const r = await receiver(`tls://127.0.0.1:${port}`, net('127.0.0.0/8'), { tls: { cert: f('server.pem'), key: f('server.key'), ca: f('ca.pem') } });
    const sendTls = (withCert: boolean, message: string) => new Promise<string>((resolve) => {
      const c = tlsConnect({
        host: '127.0.0.1', port, ca: readFileSync(f('ca.pem')),
        ...(withCert ? { cert: readFileSync(f('router.pem')), key: readFileSync(f('router.key')) } : {}),
      }, () => c.end(`${Buffer.byteLength(message)} ${message}`));
      c.on('error', (e) => resolve(`error ${e.message}`));
      c.on('close', () => resolve('closed'));
    });
    try {
      await sendTls(true, '<38>1 2024-09-06T12:40:17Z gw sshd 77 - - Failed password for root from 198.51.100.20 port 5 ssh2');
      await waitFor(() => r.collector.lines.length === 1, 'the TLS line');
      assert.equal(r.collector.lines[0]!.message, 'Failed password for root from 198.51.100.20 port 5 ssh2');
      assert.equal(r.collector.lines[0]!.host, 'gw');
      assert.equal(r.collector.lines[0]!.sender, '127.0.0.1');
      await sendTls(false, '<38>1 - gw sshd - - - Failed password for root from 198.51.100.21 port 5 ssh2');
      await waitFor(() => r.status().dropped.refused >= 1, 'the client without certificate refused', () => r.status().dropped);
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal(r.collector.lines.length, 1);
    } finally {
      await r.source.stop();
    }
  });

  test('a port in use is reported with what to do', async () => {
    const port = await freePort();
    const first = await receiver(`tcp://127.0.0.1:${port}`);
    try {
      await assert.rejects(receiver(`tcp://127.0.0.1:${port}`), /cannot listen on tcp:\/\/127\.0\.0\.1:\d+: the port is already in use/);
    } finally {
      await first.source.stop();
    }
  });
});

describe('configuration', () => {
  const load = (text: string) => configFromFiles([{ file: '/etc/portcullis/portcullis.yaml', text }]);

  test('syslog sources are read and checked with file:line:column errors', () => {
    const c = load('jails:\n  openvpn:\n    enabled: true\n    sources:\n      - syslog: { listen: udp://0.0.0.0:514, allow: [192.0.2.1, 2001:db8::/32] }\n');
    const spec = c.jails.find((j) => j.name === 'openvpn')!.sources[0]!;
    assert.equal(spec.kind, 'syslog');
    assert.throws(() => load('jails:\n  openvpn:\n    sources:\n      - syslog: { listen: udp://0.0.0.0:514 }\n'), /portcullis\.yaml:4:\d+: .*allow/);
    assert.throws(() => load('jails:\n  openvpn:\n    sources:\n      - syslog: { listen: "udp://router:514", allow: [192.0.2.1] }\n'), /portcullis\.yaml:4:\d+: .*"udp:\/\/router:514" is not valid; expected udp:\/\/ADDRESS:PORT/);
    assert.throws(() => load('jails:\n  openvpn:\n    sources:\n      - syslog: { listen: "tls://0.0.0.0", allow: [192.0.2.1] }\n'), /portcullis\.yaml:4:\d+: jail "openvpn": syslog source tls:\/\/0\.0\.0\.0:6514: tls:\/\/ needs/);
    assert.throws(() => load('jails:\n  openvpn:\n    sources:\n      - syslog: { listen: udp://0.0.0.0:514, allow: [192.0.2.1], tsl: {} }\n'), /unknown key "tsl".*did you mean "tls"/);
  });
});

describe('end to end: a router logging over syslog to a daemon in a namespace', () => {
  test('an OpenVPN flood from the router is banned in nftables; an unlisted sender is ignored and counted; jails see only their senders', async (t) => {
    const topo = await createTopology({ after: (fn) => t.after(fn) });
    const work = mkdtempSync(join(tmpdir(), 'pc-syslog-e2e-'));
    t.after(() => rmSync(work, { recursive: true, force: true }));
    const socket = join(work, 'control.sock');
    const config = join(work, 'portcullis.yaml');
    const { friend: router, attacker: vps } = topo.addresses;
    writeFileSync(config, [
      `state_dir: ${join(work, 'state')}`,
      `control: { socket: ${socket} }`,
      'enforcer: nftables',
      'http: { enabled: false }',
      'defaults: { maxretry: 3, findtime: 10m, bantime: 1h }',
      'jails:',
      '  sshd: { enabled: false }',
      '  openvpn:',
      '    enabled: true',
      `    sources: [{ syslog: { listen: "udp://0.0.0.0:5514", allow: [${router.v4}] } }]`,
      '    programs: [vpnserver1]',
      '  ssh-vps:',
      '    enabled: true',
      '    filters: [sshd]',
      `    sources: [{ syslog: { listen: "udp://0.0.0.0:5514", allow: [${vps.v4}] } }]`,
      '',
    ].join('\n'));
    const daemon = await startDaemon(['--config', config], socket, {}, { netns: topo.ns.server });
    t.after(async () => { if (daemon.proc.exitCode === null) await daemon.stop(); });
    // The control socket answers before the sources are started: wait for the receiver.
    await waitForAsync(async () => {
      const s = (await callDaemon(socket, 'status')) as StatusReport;
      return (s.jails.find((j) => j.name === 'openvpn')?.sources[0] as SyslogSourceStatus | undefined)?.state === 'listening';
    }, 10_000, () => daemon.output());
    const send = (role: 'friend' | 'attacker' | 'server', tag: string, message: string) =>
      topo.exec(role, 'logger', ['--server', topo.addresses.server.v4, '--port', '5514', '--udp', '--rfc3164', '-t', tag, message]);

    // The router's OpenVPN is flooded with handshakes from 198.51.100.77, and it also relays SSH failures of its own.
    for (let i = 0; i < 4; i++) await send('friend', 'vpnserver1[535]', `198.51.100.77:${20000 + i} TLS Error: TLS handshake failed`);
    for (let i = 0; i < 4; i++) await send('friend', 'sshd[9]', `Failed password for root from 198.51.100.88 port ${i} ssh2`);
    // The VPS's SSH failures count for ssh-vps only; the same lines from an unlisted sender (the server itself) count nowhere.
    for (let i = 0; i < 3; i++) await send('attacker', 'sshd[7]', `Failed password for root from 203.0.113.99 port ${i} ssh2`);
    for (let i = 0; i < 5; i++) await send('server', 'vpnserver1[535]', `198.51.100.66:${i} TLS Error: TLS handshake failed`);

    const setHas = async (set: string, addr: string) => (await topo.exec('server', 'nft', ['list', 'set', 'inet', 'portcullis', set], { allowFailure: true })).stdout.includes(addr);
    await waitForAsync(() => setHas('openvpn_v4', '198.51.100.77'), 10_000, () => daemon.output());
    await waitForAsync(() => setHas('ssh-vps_v4', '203.0.113.99'), 10_000, () => daemon.output());
    const status = (await callDaemon(socket, 'status')) as StatusReport;
    const vpn = status.jails.find((j) => j.name === 'openvpn')!;
    const src = vpn.sources[0] as SyslogSourceStatus;
    assert.equal(src.kind, 'syslog');
    assert.deepEqual(src.senders.map((s) => s.address).sort(), [vps.v4, router.v4].sort());
    assert.equal(src.senders.find((s) => s.address === router.v4)!.lines, 8);
    assert.ok(src.senders.find((s) => s.address === router.v4)!.perMinute >= 8);
    assert.equal(src.dropped.notAllowed, 5);
    assert.deepEqual(src.notAllowedSenders.map((s) => s.address), [topo.addresses.server.v4]);
    assert.equal(await setHas('openvpn_v4', '198.51.100.66'), false, 'lines from an unlisted sender never count');
    // The router's SSH lines went to no jail: ssh-vps listens to the VPS only, openvpn's filter ignores sshd.
    assert.equal(await setHas('ssh-vps_v4', '198.51.100.88'), false);
    const banned = (await callDaemon(socket, 'banned')) as Array<{ target: string; jail: string }>;
    assert.deepEqual(banned.map((b) => `${b.jail} ${b.target}`).sort(), ['openvpn 198.51.100.77', 'ssh-vps 203.0.113.99']);
  });
});
