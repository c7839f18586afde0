#!/bin/sh
# Installs what Portcullis needs on Debian, idempotently.
#   scripts/install-deps.sh            everything the test suite uses (nftables, sshd, redis, chromium, fail2ban's samples…)
#   scripts/install-deps.sh --runtime  only what the daemon needs
set -eu
cd "$(dirname "$0")/.."

runtime="nftables"
tests="nftables iptables ipset iproute2 conntrack openssh-server openssh-client sshpass openvpn redis-server
chromium fail2ban sshguard dnsmasq-base systemd-journal-remote util-linux bsdutils openssl procps python3 make g++"
if [ "${1:-}" = "--runtime" ]; then wanted=$runtime; else wanted=$tests; fi

missing=""
for p in $wanted; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "installing Debian packages:$missing"
  # Installing a service package must never start it here: no sshd, fail2ban or redis on the host's own ports or ruleset.
  policy=/usr/sbin/policy-rc.d
  created=""
  if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; created=1; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  # shellcheck disable=SC2086
  apt-get install -y -q --no-install-recommends $missing
  [ -n "$created" ] && rm -f "$policy"
fi

# better-sqlite3 builds from source against the local Node headers (prebuilt downloads are not reachable).
export npm_config_nodedir=/usr
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
