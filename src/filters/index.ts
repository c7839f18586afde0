import type { Filter } from './filter.js';
import { SshdFilter } from './sshd.js';
import { createOpenvpnFilter } from './openvpn.js';
import { postfix } from './postfix.js';
import { SendmailFilter } from './sendmail.js';
import { exim } from './exim.js';
import { dovecot } from './dovecot.js';
import { asterisk } from './asterisk.js';
import { nginxHttpAuth, nginxLimitReq } from './nginx.js';
import { apacheAuth } from './apache.js';

/**
 * Every built-in filter by name, as a factory: some filters remember context
 * between lines (sshd's peer per pid, OpenVPN's recent handshakes, Sendmail's
 * queue ids), so each pipeline gets its own instances. Adding a service = one
 * file exporting a Filter, listed here.
 */
export const builtinFilters: ReadonlyMap<string, () => Filter> = new Map<string, () => Filter>([
  ['sshd', () => new SshdFilter()],
  ['openvpn', () => createOpenvpnFilter()],
  ['postfix', () => postfix],
  ['sendmail', () => new SendmailFilter()],
  ['exim', () => exim],
  ['dovecot', () => dovecot],
  ['asterisk', () => asterisk],
  ['nginx-http-auth', () => nginxHttpAuth],
  ['nginx-limit-req', () => nginxLimitReq],
  ['apache-auth', () => apacheAuth],
]);

/** A fresh instance of a built-in filter, or null for an unknown name. */
export function createFilter(name: string): Filter | null {
  return builtinFilters.get(name)?.() ?? null;
}
