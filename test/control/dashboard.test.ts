import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startDaemon, waitFor, type RunningDaemon } from '../helpers/daemon.js';
import { httpUrl, makeSetup, sshFailure, syslogTime, TOKEN, vpnSaturation } from './fixture.js';

/**
 * The dashboard in real headless Chromium against the real daemon (CLI
 * subprocess, dry-run enforcer) while an attack is appended to its logs: the
 * charts draw data, a ban shows up in the table by itself, unban from the page
 * is refused without the token and works with it. Screenshots of the overview
 * go to test-artifacts/ (and, with UPDATE_SCREENSHOTS=1, to docs/dashboard.png for the README).
 */

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const ARTIFACTS = `${ROOT}test-artifacts`;
const s = makeSetup('pc-dash-');
let daemon: RunningDaemon;
let browser: Browser;
let page: Page;
let url: string;

before(async () => {
  daemon = await startDaemon(['--config', s.config], s.socket);
  url = await httpUrl(daemon);
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on('pageerror', (e) => { throw e; });
});

after(async () => {
  await browser?.close();
  if (daemon && daemon.proc.exitCode === null) await daemon.stop();
  rmSync(s.dir, { recursive: true, force: true });
});

const bans = async (): Promise<Array<{ target: string; jail: string }>> => (await (await fetch(`${url}/api/bans`)).json()) as Array<{ target: string; jail: string }>;

test('the overview charts a replayed attack, shows bans live, and unbans only with the token', async () => {
  // A first wave: a spray over a /24 and a few OpenVPN handshake failures, plus a health warning.
  for (let round = 0; round < 3; round++) {
    for (let i = 20; i < 32; i++) sshFailure(s, `198.51.100.${i}`, ['root', 'admin', 'oracle'][round]);
    for (const a of ['203.0.113.40', '203.0.113.41']) appendFileSync(s.vpn, `${syslogTime()} gw ovpn-server[812]: ${a}:${50000 + round} TLS Error: TLS handshake failed\n`);
  }
  sshFailure(s, '192.0.2.200');
  vpnSaturation(s);
  vpnSaturation(s);
  await waitFor(async () => (await bans()).length >= 14, 10_000, () => `bans: ${daemon.output()}`);

  await page.goto(`${url}/`);
  await page.waitForSelector('body[data-ready="true"]');
  await page.waitForSelector('#live.on');
  await page.evaluate('window.notReloaded = true');

  // The failures chart has drawn the jails' data.
  await page.waitForSelector('#chart-failures .uplot canvas');
  const legend = await page.locator('#chart-failures .u-legend').innerText();
  assert.match(legend, /sshd/);
  assert.match(legend, /openvpn/);
  assert.ok(Number(await page.getAttribute('body', 'data-series-points')) >= 36 + 6, 'failures per minute add up to the lines appended');
  assert.equal(await page.locator('#bans tbody tr').count(), 14);
  assert.match(await page.locator('#top-networks tbody').innerText(), /198\.51\.100\.0\/24\s+12/);
  assert.match(await page.locator('#health').innerText(), /output saturation/);
  assert.match(await page.locator('#sources tbody').innerText(), /auth\.log\s+following/);

  // A new attacker: the ban reaches the open page by itself, within a second of its third log line.
  const attacker = '198.51.100.77';
  sshFailure(s, attacker);
  sshFailure(s, attacker);
  const row = page.locator('#bans tbody tr', { has: page.locator('td.addr', { hasText: attacker }) });
  const written = Date.now();
  sshFailure(s, attacker);
  await row.waitFor({ timeout: 1000 });
  assert.ok(Date.now() - written <= 1000);
  assert.equal(await page.evaluate('window.notReloaded'), true, 'the page was updated in place, not reloaded');

  // Search narrows the table to that address.
  await page.fill('#search', attacker);
  await waitFor(async () => (await page.locator('#bans tbody tr').count()) === 1);
  await row.waitFor();

  mkdirSync(ARTIFACTS, { recursive: true });
  await page.fill('#search', '');
  await waitFor(async () => (await page.locator('#bans tbody tr').count()) === 15);
  await waitFor(async () => (await page.locator('#t-bans').innerText()) === '15', 5000, () => 'the active-bans tile follows the table');
  await page.locator('#search').blur();
  await page.screenshot({ path: `${ARTIFACTS}/dashboard-overview.png`, fullPage: true });
  // The README's picture changes only when asked for, so test runs leave the work tree clean.
  if (process.env.UPDATE_SCREENSHOTS) await page.screenshot({ path: `${ROOT}docs/dashboard.png`, fullPage: false });
  await page.click('#range button[data-range="1d"]');
  await page.screenshot({ path: `${ARTIFACTS}/dashboard-overview-1d.png`, fullPage: true });

  // Unban without a token: refused, shown on the page, audited, and the ban stays.
  await row.getByRole('button', { name: 'Unban' }).click();
  await page.waitForSelector('#ban-msg.error');
  assert.match(await page.locator('#ban-msg').innerText(), /refused/);
  assert.ok((await bans()).some((b) => b.target === attacker));
  await waitFor(() => /http audit: refused DELETE \/api\/bans\/198\.51\.100\.77 from 127\.0\.0\.1: no bearer token/.test(daemon.output()), 5000, () => daemon.output());

  // With the token entered on the page: lifted, gone from the table, audited.
  await page.fill('#token', TOKEN);
  await page.click('#token-form button[type="submit"]');
  assert.equal(await page.evaluate("sessionStorage.getItem('portcullis-token')"), TOKEN);
  await row.getByRole('button', { name: 'Unban' }).click();
  await row.waitFor({ state: 'detached' });
  assert.match(await page.locator('#ban-msg').innerText(), /Unbanned 198\.51\.100\.77/);
  assert.ok(!(await bans()).some((b) => b.target === attacker));
  await waitFor(() => /http audit: DELETE \/api\/bans\/198\.51\.100\.77 from 127\.0\.0\.1: lifted 1 ban/.test(daemon.output()), 5000, () => daemon.output());
  await page.waitForSelector('#live.on');
});
