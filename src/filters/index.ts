import type { Filter } from './filter.js';
import { sshd } from './sshd.js';
import { openvpn } from './openvpn.js';
import { postfix } from './postfix.js';
import { sendmail } from './sendmail.js';
import { exim } from './exim.js';
import { dovecot } from './dovecot.js';
import { asterisk } from './asterisk.js';
import { nginxHttpAuth, nginxLimitReq } from './nginx.js';
import { apacheAuth } from './apache.js';

/** Every built-in filter by name. Adding a service = one file exporting a Filter, listed here. */
export const builtinFilters: ReadonlyMap<string, Filter> = new Map(
  [sshd, openvpn, postfix, sendmail, exim, dovecot, asterisk, nginxHttpAuth, nginxLimitReq, apacheAuth].map((f) => [f.name, f]),
);
