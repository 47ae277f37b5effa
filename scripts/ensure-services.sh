#!/usr/bin/env bash
# Make sure PostgreSQL and Redis are reachable before Switchyard (or its tests) start.
#
#   DATABASE_URL  default postgresql://postgres@127.0.0.1:5432/switchyard
#   REDIS_URL     default redis://127.0.0.1:6379
#   REDIS_CLUSTER_NODES  host:port,...: a Redis Cluster instead (REDIS_URL is then unused); never started here,
#                 only waited for until its first node answers and reports cluster_state:ok
#   ENSURE_SERVICES_TIMEOUT  seconds to wait for the services (default 30)
#
# Only this machine's own services, on their default addresses (PostgreSQL on 127.0.0.1:5432, Redis on
# 127.0.0.1:6379; localhost and ::1 count too), are started when they are installed but down. A URL that
# names anything else (another port, another host) is only waited for: nothing is started for it, because
# a new, empty server there would cut the node off from the data and the cluster it is meant to join.
#
# Says what it did, one line per service ("redis: started redis-server on 127.0.0.1:6379",
# "redis: running at 127.0.0.1:6379"); while it waits, says for what and how long (on stderr, then every 10 s);
# exits 1 with one line per service that is still missing, saying what to do about it.
set -euo pipefail

readonly DEFAULT_DATABASE_URL='postgresql://postgres@127.0.0.1:5432/switchyard'
readonly DEFAULT_REDIS_URL='redis://127.0.0.1:6379'
readonly PG_DEFAULT_PORT=5432
readonly REDIS_DEFAULT_PORT=6379
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

# The URL as it may be printed: a password becomes ***.
redact_url() {
  local url=$1
  if [[ $url =~ ^([a-z]+://[^:/@]*):[^@/]*@(.*)$ ]]; then
    printf '%s:***@%s\n' "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}"
  else
    printf '%s\n' "$url"
  fi
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

pg_url=${DATABASE_URL:-$DEFAULT_DATABASE_URL}
redis_url=${REDIS_URL:-$DEFAULT_REDIS_URL}
cluster_nodes=${REDIS_CLUSTER_NODES:-}
if [[ -n $cluster_nodes ]]; then
  # The cluster's first seed node stands for it: it answers for the cluster's state.
  first_node=${cluster_nodes%%,*}
  redis_url="redis://${first_node// /}"
fi
read -r _ pg_host pg_port <<<"$(parse_url "$pg_url" "$PG_DEFAULT_PORT")"
read -r redis_scheme redis_host redis_port <<<"$(parse_url "$redis_url" "$REDIS_DEFAULT_PORT")"

if ! [[ $pg_port =~ ^[0-9]+$ ]]; then
  echo "ensure-services: cannot read a port from DATABASE_URL (got '$pg_port')" >&2
  exit 2
fi
if ! [[ $redis_port =~ ^[0-9]+$ ]]; then
  echo "ensure-services: cannot read a port from REDIS_URL (got '$redis_port')" >&2
  exit 2
fi

# This machine's own service on its default address: the only kind this script ever starts.
pg_own=0
redis_own=0
is_local "$pg_host" && [[ $pg_port == "$PG_DEFAULT_PORT" ]] && pg_own=1
is_local "$redis_host" && [[ $redis_port == "$REDIS_DEFAULT_PORT" ]] && [[ -z $cluster_nodes ]] && redis_own=1

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
  elif have redis-cli && [[ -n $cluster_nodes ]]; then
    reply=$(run_limited 5 redis-cli -h "$redis_host" -p "$redis_port" cluster info 2>&1 </dev/null) || true
    [[ $reply == *cluster_state:ok* || $reply == *NOAUTH* ]]
  elif have redis-cli; then
    reply=$(run_limited 5 redis-cli -h "$redis_host" -p "$redis_port" ping 2>&1 </dev/null) || true
    [[ $reply == PONG* || $reply == *NOAUTH* ]]
  else
    tcp_probe_redis "$redis_host" "$redis_port"
  fi
}

# What was done about each service, for the report: "started …", or why it could not be.
pg_note=''
redis_note=''

# The machine's PostgreSQL clusters that listen on the default port (pg_lsclusters: version, name, port, …).
start_postgres() {
  local ver cluster port _rest out started=''
  if ! have pg_ctlcluster || ! have pg_lsclusters; then
    pg_note='not installed (no pg_ctlcluster/pg_lsclusters)'
    return 1
  fi
  while read -r ver cluster port _rest; do
    [[ $port == "$PG_DEFAULT_PORT" ]] || continue
    if out=$(pg_ctlcluster --skip-systemctl-redirect "$ver" "$cluster" start 2>&1); then
      started+="${started:+, }$ver/$cluster"
    elif [[ $out != *already\ running* ]]; then
      pg_note="pg_ctlcluster $ver $cluster start: ${out//$'\n'/ }"
    fi
  done < <(pg_lsclusters -h 2>/dev/null || true)
  if [[ -n $started ]]; then
    pg_note="started cluster $started on port $PG_DEFAULT_PORT"
  elif [[ -z $pg_note ]]; then
    pg_note="not installed (no cluster on port $PG_DEFAULT_PORT in pg_lsclusters)"
    return 1
  fi
  return 0
}

# The machine's Redis, on the default address only, with the settings the machines run it with.
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
  if out=$(redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_DEFAULT_PORT" --save "" \
    --appendonly no --dir "$dir" --logfile "$logdir/ci.log" 2>&1 </dev/null); then
    redis_note="started redis-server on 127.0.0.1:$REDIS_DEFAULT_PORT"
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

if ((!pg_ok && pg_own)); then
  start_postgres || pg_can_wait=0
fi
if ((!redis_ok && redis_own)); then
  start_redis || redis_can_wait=0
fi

# What is still awaited, e.g. "redis at 127.0.0.1:6399 (REDIS_URL)": said before and while waiting, so that a
# dependency that never comes does not look like a hung start.
awaited() {
  local what=''
  if ((!pg_ok && pg_can_wait)); then
    what="postgresql at $pg_host:$pg_port (DATABASE_URL)"
  fi
  if ((!redis_ok && redis_can_wait)); then
    local name=redis var=REDIS_URL
    [[ -n $cluster_nodes ]] && name='redis cluster' && var=REDIS_CLUSTER_NODES
    what+="${what:+ and }$name at $redis_host:$redis_port ($var)"
  fi
  printf '%s' "$what"
}

deadline=$((SECONDS + timeout_s))
next_note=$SECONDS
noted=0
while true; do
  ((pg_ok)) || ! ((pg_can_wait)) || { pg_up && pg_ok=1; } || true
  ((redis_ok)) || ! ((redis_can_wait)) || { redis_up && redis_ok=1; } || true
  if { ((pg_ok)) || ! ((pg_can_wait)); } && { ((redis_ok)) || ! ((redis_can_wait)); }; then
    break
  fi
  ((SECONDS < deadline)) || break
  if ((SECONDS >= next_note)); then
    if ((noted)); then
      echo "ensure-services: still waiting for $(awaited), $((deadline - SECONDS))s left" >&2
    else
      echo "ensure-services: waiting up to ${timeout_s}s (ENSURE_SERVICES_TIMEOUT) for $(awaited)" >&2
      noted=1
    fi
    next_note=$((SECONDS + 10))
  fi
  sleep 1
done

# report NAME OK OWN NOTE WHERE URL INSTALL_PACKAGE: one line saying what was found and done.
report() {
  local name=$1 ok=$2 own=$3 note=$4 where=$5 url=$6 package=$7
  if ((ok)); then
    if [[ $note == started* ]]; then
      echo "$name: $note"
    else
      echo "$name: running at $where"
    fi
  elif ((!own)); then
    echo "$name at $(redact_url "$url") is not reachable after ${timeout_s}s; not starting anything: start it yourself" >&2
  elif [[ $note == not\ installed* ]]; then
    echo "$name: not running at $where and $note; install it with: apt-get install -y $package" >&2
  elif [[ -n $note && $note != started* ]]; then
    echo "$name: not running at $where and could not be started ($note); if it is missing: $INSTALL_HINT" >&2
  else
    echo "$name: not answering at $where after ${timeout_s}s${note:+ ($note)}; if it is missing: $INSTALL_HINT" >&2
  fi
}

report postgresql "$pg_ok" "$pg_own" "$pg_note" "$pg_host:$pg_port" "$pg_url" postgresql
if [[ -n $cluster_nodes ]]; then
  report "redis cluster" "$redis_ok" 0 "$redis_note" "$redis_host:$redis_port (first of REDIS_CLUSTER_NODES)" "$redis_url" redis-server
else
  report redis "$redis_ok" "$redis_own" "$redis_note" "$redis_host:$redis_port" "$redis_url" redis-server
fi
((pg_ok && redis_ok)) || exit 1
