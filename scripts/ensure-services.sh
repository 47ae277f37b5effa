#!/usr/bin/env bash
# Make sure PostgreSQL and Redis are reachable before Switchyard (or its tests) start.
#
#   DATABASE_URL  default postgresql://postgres@127.0.0.1:5432/switchyard
#   REDIS_URL     default redis://127.0.0.1:6379
#   ENSURE_SERVICES_TIMEOUT  seconds to wait for the services (default 30)
#
# A service on a local host (127.0.0.1, localhost, ::1) that is installed but down is
# started with the same commands the machines use; a remote one is only waited for.
# Quiet on success apart from one summary line; exits 1 with one line per service that
# is still missing, saying what to do about it.
set -euo pipefail

readonly DEFAULT_DATABASE_URL='postgresql://postgres@127.0.0.1:5432/switchyard'
readonly DEFAULT_REDIS_URL='redis://127.0.0.1:6379'
readonly INSTALL_HINT='apt-get install -y postgresql redis-server'

timeout_s=${ENSURE_SERVICES_TIMEOUT:-30}
if ! [[ $timeout_s =~ ^[0-9]+$ ]]; then
  echo "ensure-services: ENSURE_SERVICES_TIMEOUT must be a whole number of seconds, got '$timeout_s'" >&2
  exit 2
fi

# parse_url URL DEFAULT_PORT -> prints "scheme host port" (first host of a multi-host URL).
parse_url() {
  local url=$1 default_port=$2 scheme rest host port
  scheme=${url%%://*}
  [[ $scheme == "$url" ]] && scheme=''
  rest=${url#*://}
  rest=${rest%%/*}   # authority ends at the path...
  rest=${rest%%\?*}  # ...or at the query
  rest=${rest##*@}   # drop user:password@
  rest=${rest%%,*}   # postgres multi-host: keep the first
  if [[ $rest == \[* ]]; then          # [ipv6]:port
    host=${rest#\[}
    host=${host%%\]*}
    port=${rest#*\]}
    port=${port#:}
  elif [[ $rest == *:* ]]; then
    host=${rest%%:*}
    port=${rest#*:}
  else
    host=$rest
    port=''
  fi
  [[ -n $host ]] || host=127.0.0.1
  [[ -n $port ]] || port=$default_port
  printf '%s %s %s\n' "${scheme:-none}" "$host" "$port"
}

is_local() {
  case $1 in
    127.0.0.1 | localhost | ::1) return 0 ;;
    *) return 1 ;;
  esac
}

have() { command -v "$1" >/dev/null 2>&1; }

# run_limited SECONDS CMD... : run with a time limit when coreutils' timeout exists.
run_limited() {
  local secs=$1
  shift
  if have timeout; then
    timeout "$secs" "$@"
  else
    "$@"
  fi
}

read -r _ pg_host pg_port <<<"$(parse_url "${DATABASE_URL:-$DEFAULT_DATABASE_URL}" 5432)"
read -r redis_scheme redis_host redis_port <<<"$(parse_url "${REDIS_URL:-$DEFAULT_REDIS_URL}" 6379)"

if ! [[ $pg_port =~ ^[0-9]+$ ]]; then
  echo "ensure-services: cannot read a port from DATABASE_URL (got '$pg_port')" >&2
  exit 2
fi
if ! [[ $redis_port =~ ^[0-9]+$ ]]; then
  echo "ensure-services: cannot read a port from REDIS_URL (got '$redis_port')" >&2
  exit 2
fi

# Probes without the client tools: PostgreSQL answers an SSLRequest with one byte ('S' or 'N'),
# Redis answers PING with +PONG (or -NOAUTH when it wants a password: still up).
tcp_probe_pg() {
  # shellcheck disable=SC2016 # expanded by the inner bash
  run_limited 3 bash -c '
    exec 3<>"/dev/tcp/$1/$2" || exit 1
    printf "\000\000\000\010\004\322\026\057" >&3
    IFS= read -r -n 1 -t 2 reply <&3 || exit 1
    [[ $reply == S || $reply == N ]]
  ' _ "$1" "$2" 2>/dev/null
}

tcp_probe_redis() {
  # shellcheck disable=SC2016 # expanded by the inner bash
  run_limited 3 bash -c '
    exec 3<>"/dev/tcp/$1/$2" || exit 1
    printf "PING\r\n" >&3
    IFS= read -r -t 2 reply <&3 || exit 1
    [[ $reply == +PONG* || $reply == -NOAUTH* ]]
  ' _ "$1" "$2" 2>/dev/null
}

tcp_connect() {
  # shellcheck disable=SC2016 # expanded by the inner bash
  run_limited 3 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}

pg_up() {
  if have pg_isready; then
    run_limited 5 pg_isready -q -h "$pg_host" -p "$pg_port" -t 3 >/dev/null 2>&1
  else
    tcp_probe_pg "$pg_host" "$pg_port"
  fi
}

redis_up() {
  local reply
  if [[ $redis_scheme == rediss ]]; then
    tcp_connect "$redis_host" "$redis_port"   # TLS: a plain PING cannot be spoken here
  elif have redis-cli; then
    reply=$(run_limited 5 redis-cli -h "$redis_host" -p "$redis_port" ping 2>&1 </dev/null) || true
    [[ $reply == PONG* || $reply == *NOAUTH* ]]
  else
    tcp_probe_redis "$redis_host" "$redis_port"
  fi
}

pg_note=''
redis_note=''

start_postgres() {
  local versions ver out started=0
  if ! have pg_ctlcluster || ! [[ -d /etc/postgresql ]]; then
    pg_note='not installed (no pg_ctlcluster or /etc/postgresql)'
    return 1
  fi
  versions=$(ls /etc/postgresql 2>/dev/null || true)
  if [[ -z $versions ]]; then
    pg_note='not installed (no cluster under /etc/postgresql)'
    return 1
  fi
  for ver in $versions; do
    [[ -d /etc/postgresql/$ver/main ]] || continue
    if out=$(pg_ctlcluster --skip-systemctl-redirect "$ver" main start 2>&1); then
      started=1
    else
      # "already running" is fine; anything else is kept for the failure message.
      [[ $out == *already\ running* ]] || pg_note="pg_ctlcluster $ver main start: ${out//$'\n'/ }"
    fi
  done
  ((started)) && pg_note='started'
  return 0
}

start_redis() {
  local dir=/var/lib/redis logdir=/var/log/redis out
  if ! have redis-server; then
    redis_note='not installed (no redis-server)'
    return 1
  fi
  if ! mkdir -p "$dir" "$logdir" 2>/dev/null || ! [[ -w $dir && -w $logdir ]]; then
    dir=${TMPDIR:-/tmp}/switchyard-redis
    logdir=$dir
    mkdir -p "$dir"
  fi
  if out=$(redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$redis_port" --save "" \
    --appendonly no --dir "$dir" --logfile "$logdir/ci.log" 2>&1 </dev/null); then
    redis_note='started'
  else
    redis_note="redis-server failed: ${out//$'\n'/ } (log: $logdir/ci.log)"
  fi
  return 0
}

pg_ok=0
redis_ok=0
pg_can_wait=1
redis_can_wait=1

pg_up && pg_ok=1
redis_up && redis_ok=1

if ((!pg_ok)); then
  if is_local "$pg_host"; then
    start_postgres || pg_can_wait=0
  fi
fi
if ((!redis_ok)); then
  if is_local "$redis_host"; then
    start_redis || redis_can_wait=0
  fi
fi

deadline=$((SECONDS + timeout_s))
while true; do
  ((pg_ok)) || ! ((pg_can_wait)) || { pg_up && pg_ok=1; } || true
  ((redis_ok)) || ! ((redis_can_wait)) || { redis_up && redis_ok=1; } || true
  if { ((pg_ok)) || ! ((pg_can_wait)); } && { ((redis_ok)) || ! ((redis_can_wait)); }; then
    break
  fi
  ((SECONDS < deadline)) || break
  sleep 1
done

if ((pg_ok && redis_ok)); then
  summary="services: postgresql ok"
  [[ $pg_note == started ]] && summary+=" (started)"
  summary+=", redis ok"
  [[ $redis_note == started ]] && summary+=" (started)"
  echo "$summary"
  exit 0
fi

if ((!pg_ok)); then
  where="$pg_host:$pg_port"
  if ! is_local "$pg_host"; then
    echo "postgresql: not reachable at $where after ${timeout_s}s (remote host from DATABASE_URL; not started here)" >&2
  elif ((!pg_can_wait)); then
    echo "postgresql: not running at $where and $pg_note; install it with: $INSTALL_HINT" >&2
  elif [[ -n $pg_note && $pg_note != started ]]; then
    echo "postgresql: not running at $where and could not be started ($pg_note); if it is missing: $INSTALL_HINT" >&2
  else
    echo "postgresql: not accepting connections at $where after ${timeout_s}s (a local cluster may listen on another port); if it is missing: $INSTALL_HINT" >&2
  fi
fi

if ((!redis_ok)); then
  where="$redis_host:$redis_port"
  if ! is_local "$redis_host"; then
    echo "redis: not reachable at $where after ${timeout_s}s (remote host from REDIS_URL; not started here)" >&2
  elif ((!redis_can_wait)); then
    echo "redis: not running at $where and $redis_note; install it with: $INSTALL_HINT" >&2
  elif [[ -n $redis_note && $redis_note != started ]]; then
    echo "redis: not running at $where and could not be started ($redis_note); if it is missing: $INSTALL_HINT" >&2
  else
    echo "redis: not answering PING at $where after ${timeout_s}s; if it is missing: $INSTALL_HINT" >&2
  fi
fi
exit 1
