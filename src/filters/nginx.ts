import { RuleFilter } from './filter.js';

/**
 * nginx error log (`error_log` file, or `error_log syslog:` tagged `nginx`).
 *
 * An error line is `[level] PID#TID: *CONN MESSAGE, client: ADDR, server:
 * NAME, request: "…", host: "…"[, referrer: "…"]`. The request, host and
 * referrer after the address are the client's; so is the user name inside
 * MESSAGE before it. The rules anchor at the start of the message and let
 * nothing before `, client: ` contain a colon except fixed text: a basic-auth
 * user name can never contain `:` (it ends at the first colon of the decoded
 * credentials), so a forged `, client: 8.8.8.8` inside it cannot match, and
 * anything after the first real `, client: ADDR, server: ` is never looked at.
 */

const HEAD = '^\\[(?:emerg|alert|crit|error|warn|notice|info)\\] \\d+#\\d+: (?:\\*\\d+ )?';
/** nginx prints the client as a bare IPv4 or IPv6 address. */
const CLIENT = ', client: (?<addr>[0-9A-Fa-f:.]{2,45}), server: ';

export const nginxHttpAuth = new RuleFilter({
  name: 'nginx-http-auth',
  service: 'http',
  programs: ['nginx'],
  bareLines: true,
  // An error-log line is at most NGX_MAX_ERROR_STR bytes: 2,048, 4,096 in debug builds.
  maxMessageLength: 4096,
  rules: [
    {
      id: 'user-not-found',
      kind: 'invalid-user',
      needle: '" was not found in "',
      re: new RegExp(`${HEAD}user "(?<user>[^:]*)" was not found in "[^"]*"${CLIENT}`),
    },
    {
      id: 'password-mismatch',
      kind: 'auth-failure',
      needle: '": password mismatch, client: ',
      re: new RegExp(`${HEAD}user "(?<user>[^:]*)": password mismatch${CLIENT}`),
    },
    {
      // Logged at `info` for every first request before the browser asks for a password: weak evidence.
      id: 'no-credentials',
      kind: 'probe',
      needle: 'no user/password was provided for basic authentication',
      re: new RegExp(`${HEAD}no user/password was provided for basic authentication${CLIENT}`),
    },
    {
      // Bytes that are not TLS at all on a TLS port (plain HTTP, scanners' probes): OpenSSL's own reason text.
      id: 'tls-garbage',
      kind: 'probe',
      needle: 'while SSL handshaking, client: ',
      re: new RegExp(
        `${HEAD}SSL_do_handshake\\(\\) failed \\(SSL: error:[0-9A-Fa-f]{8}:SSL routines:\\w*:(?:packet length too long|length too short|encrypted length too long|wrong version number|http request|https proxy request)\\) while SSL handshaking${CLIENT}`,
      ),
    },
  ],
});

export const nginxLimitReq = new RuleFilter({
  name: 'nginx-limit-req',
  service: 'http',
  programs: ['nginx'],
  bareLines: true,
  // An error-log line is at most NGX_MAX_ERROR_STR bytes: 2,048, 4,096 in debug builds.
  maxMessageLength: 4096,
  rules: [
    {
      // `delaying request` (burst without nodelay) and `dry run` lines are not rejections.
      id: 'limiting-requests',
      kind: 'flood',
      needle: 'limiting requests, excess: ',
      re: new RegExp(`${HEAD}limiting requests, excess: \\d+\\.\\d+ by zone "[^"]*"${CLIENT}`),
    },
  ],
});
