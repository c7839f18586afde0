/**
 * The jails Portcullis knows out of the box: which logs, which filters, which
 * ports. A user enables one with two lines (`jails: { sshd: { enabled: true } }`)
 * and overrides any key. Paths are Debian's defaults.
 */

export interface BuiltinJail {
  filters: string[];
  sources: Array<{ file: string | string[] } | { journal: Record<string, string | string[]> }>;
  ports: number[] | null;
  protocol: 'tcp' | 'udp' | 'all';
  /** Enabled when the user's config does not say otherwise. */
  enabled: boolean;
  maxretry?: number;
  /** Preferred over `defaults:` (the recidive jail counts over a day, not the services' minutes). */
  findtime?: string;
  bantime?: string;
}

/** The native repeat-offender jail: it reads no logs, it counts the other jails' bans (see the pipeline). */
export const RECIDIVE_JAIL = 'recidive';

const MAIL_LOG = '/var/log/mail.log';
const SMTP_PORTS = [25, 465, 587];

export const BUILTIN_JAILS: Record<string, BuiltinJail> = {
  sshd: {
    filters: ['sshd'],
    // Debian 12 without rsyslog logs sshd only to the journal; with rsyslog, to auth.log.
    sources: [{ file: '/var/log/auth.log' }, { journal: { _SYSTEMD_UNIT: ['ssh.service', 'sshd.service'] } }],
    ports: [22],
    protocol: 'tcp',
    enabled: true,
  },
  openvpn: {
    filters: ['openvpn'],
    sources: [{ file: ['/var/log/openvpn/*.log', '/var/log/openvpn.log'] }, { journal: { SYSLOG_IDENTIFIER: ['openvpn', 'ovpn-server'] } }],
    ports: [1194],
    protocol: 'udp',
    enabled: false,
    maxretry: 3,
  },
  postfix: {
    filters: ['postfix'],
    sources: [{ file: MAIL_LOG }],
    ports: SMTP_PORTS,
    protocol: 'tcp',
    enabled: false,
  },
  sendmail: {
    filters: ['sendmail'],
    sources: [{ file: MAIL_LOG }],
    ports: SMTP_PORTS,
    protocol: 'tcp',
    enabled: false,
  },
  exim: {
    filters: ['exim'],
    sources: [{ file: '/var/log/exim4/mainlog' }],
    ports: SMTP_PORTS,
    protocol: 'tcp',
    enabled: false,
  },
  dovecot: {
    filters: ['dovecot'],
    sources: [{ file: MAIL_LOG }],
    ports: [110, 143, 993, 995, 4190],
    protocol: 'tcp',
    enabled: false,
  },
  asterisk: {
    filters: ['asterisk'],
    sources: [{ file: ['/var/log/asterisk/messages', '/var/log/asterisk/full', '/var/log/asterisk/security'] }],
    ports: [5060, 5061],
    protocol: 'all',
    enabled: false,
  },
  'nginx-http-auth': {
    filters: ['nginx-http-auth'],
    sources: [{ file: '/var/log/nginx/*error.log' }],
    ports: [80, 443],
    protocol: 'tcp',
    enabled: false,
  },
  'nginx-limit-req': {
    filters: ['nginx-limit-req'],
    sources: [{ file: '/var/log/nginx/*error.log' }],
    ports: [80, 443],
    protocol: 'tcp',
    enabled: false,
  },
  'apache-auth': {
    filters: ['apache-auth'],
    sources: [{ file: '/var/log/apache2/*error.log' }],
    ports: [80, 443],
    protocol: 'tcp',
    enabled: false,
  },
  // Banned `maxretry` times within `findtime` in any other jail → banned on every port for `bantime`.
  [RECIDIVE_JAIL]: {
    filters: [],
    sources: [],
    ports: null,
    protocol: 'all',
    enabled: false,
    maxretry: 5,
    findtime: '1d',
    bantime: '1w',
  },
};

export const DEFAULT_MAXRETRY = 5;
export const DEFAULT_FINDTIME = '10m';
export const DEFAULT_BANTIME = '1h';
