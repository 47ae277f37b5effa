#!/usr/bin/env bash
# Health probe for one Switchyard node, usable as a Docker HEALTHCHECK or a Kubernetes exec probe.
#
#   scripts/healthcheck.sh [-k] [URL]        URL default: ${SWITCHYARD_URL:-http://127.0.0.1:3000}
#
# Checks, in order: GET /health is 200 with "ok" in the body; GET /ready is 200 (on 503 the
# failing checks are named); a real Engine.IO handshake (GET /socket.io/?EIO=4&transport=polling)
# answers 200 with an open packet `0{..."sid"...}`.
#
#   HEALTHCHECK_TIMEOUT          seconds allowed for each request (default 3)
#   HEALTHCHECK_CONNECT_TIMEOUT  seconds allowed for connecting (default: HEALTHCHECK_TIMEOUT)
#   HEALTHCHECK_INSECURE=1       do not verify the TLS certificate (curl -k); same as -k
#
# Exit 0 printing "ok: <url> healthy"; exit 1 with one line "unhealthy: ..." on stderr.
set -euo pipefail
shopt -s extglob

insecure=${HEALTHCHECK_INSECURE:-0}
url=''
for arg in "$@"; do
  case $arg in
    -k | --insecure) insecure=1 ;;
    -h | --help)
      sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    -*)
      echo "unhealthy: unknown option $arg (usage: healthcheck.sh [-k] [URL])" >&2
      exit 2
      ;;
    *)
      if [[ -n $url ]]; then
        echo "unhealthy: more than one URL given (usage: healthcheck.sh [-k] [URL])" >&2
        exit 2
      fi
      url=$arg
      ;;
  esac
done
url=${url:-${SWITCHYARD_URL:-http://127.0.0.1:3000}}
url=${url%/}

timeout_s=${HEALTHCHECK_TIMEOUT:-3}
connect_s=${HEALTHCHECK_CONNECT_TIMEOUT:-$timeout_s}
for value in "$timeout_s" "$connect_s"; do
  if ! [[ $value =~ ^[0-9]+([.][0-9]+)?$ ]]; then
    echo "unhealthy: HEALTHCHECK_TIMEOUT/HEALTHCHECK_CONNECT_TIMEOUT must be a number of seconds, got '$value'" >&2
    exit 2
  fi
done

if ! command -v curl >/dev/null 2>&1; then
  echo "unhealthy: curl is not installed" >&2
  exit 1
fi

curl_opts=(--silent --show-error --max-time "$timeout_s" --connect-timeout "$connect_s"
  --user-agent switchyard-healthcheck --header 'Accept: application/json')
case $insecure in
  1 | true | yes) curl_opts+=(--insecure) ;;
esac
# A probe of this very machine must not be sent through an HTTP(S)_PROXY from the environment.
case $url in
  *://127.0.0.1[:/]* | *://127.0.0.1 | *://localhost[:/]* | *://localhost | *://\[::1\]*)
    curl_opts+=(--noproxy '*') ;;
esac

fail() {
  echo "unhealthy: $*" >&2
  exit 1
}

# Why curl could not get an answer, in a few words.
curl_reason() {
  local code=$1 err=$2
  err=${err%%$'\n'*}           # curl's first line only
  err=${err#curl: }
  err=${err#\(+([0-9])\) }      # drop "(60) "
  case $code in
    6) echo "cannot resolve host" ;;
    7)
      if [[ $err == *"No route"* || $err == *nreachable* ]]; then
        echo "host unreachable"
      else
        echo "connection refused"
      fi
      ;;
    28) echo "timed out after ${timeout_s}s" ;;
    51 | 58 | 60 | 77 | 83 | 90 | 91)
      echo "TLS certificate not accepted: $err; HEALTHCHECK_INSECURE=1 skips the check" ;;
    35 | 53 | 54 | 59 | 64 | 66 | 80 | 82) echo "TLS error: $err" ;;
    52) echo "empty reply from server" ;;
    55 | 56) echo "connection reset" ;;
    *) echo "curl error $code: $err" ;;
  esac
}

# request PATH -> sets status and body; on transport failure prints the reason and exits 1.
status=''
body=''
request() {
  local path=$1 out err rc errfile
  errfile=$(mktemp 2>/dev/null || echo '')
  rc=0
  if [[ -n $errfile ]]; then
    out=$(curl "${curl_opts[@]}" --write-out '\n%{http_code}' "$url$path" 2>"$errfile") || rc=$?
    err=$(cat "$errfile" 2>/dev/null || true)
    rm -f "$errfile"
  else
    # No writable temp dir (read-only filesystem): keep only curl's exit code.
    out=$(curl "${curl_opts[@]}" --write-out '\n%{http_code}' "$url$path" 2>/dev/null) || rc=$?
    err=''
  fi
  if ((rc != 0)); then
    fail "${path%%\?*} unreachable ($(curl_reason "$rc" "$err"))"
  fi
  status=${out##*$'\n'}
  body=${out%$'\n'*}
}

# snippet TEXT -> the first 120 characters on one line
snippet() {
  local text=${1//[$'\r\n\t']/ }
  ((${#text} > 120)) && text="${text:0:120}..."
  printf '%s' "${text:-<empty body>}"
}

# 1. liveness
request /health
[[ $status == 200 ]] || fail "/health returned HTTP $status: $(snippet "$body")"
[[ $body == *ok* ]] || fail "/health 200 but body has no \"ok\": $(snippet "$body")"

# 2. readiness
request /ready
if [[ $status == 503 ]]; then
  # {"status":"...","node":"...","checks":{"redis":"ok","postgres":"error: ..."}}
  checks=$(printf '%s' "$body" | tr -d '\r\n' |
    sed -n 's/.*"checks"[[:space:]]*:[[:space:]]*{\([^}]*\)}.*/\1/p')
  failing=''
  while IFS= read -r pair; do
    [[ -n $pair ]] || continue
    name=$(printf '%s' "$pair" | sed 's/^"\([^"]*\)".*/\1/')
    value=$(printf '%s' "$pair" | sed 's/^"[^"]*"[[:space:]]*:[[:space:]]*"\(.*\)"$/\1/')
    [[ $value == ok ]] && continue
    value=${value//\\\"/\"}
    entry=$name
    if [[ -n $value && $value != error ]]; then
      ((${#value} > 80)) && value="${value:0:80}..."
      entry+=" ($value)"
    fi
    failing+="${failing:+, }$entry"
  done < <(printf '%s' "$checks" | grep -oE '"[^"]+"[[:space:]]*:[[:space:]]*"([^"\\]|\\.)*"' || true)
  if [[ -z $failing ]]; then
    # Every check passed but the node is not ready (e.g. draining): name its status instead.
    state=$(printf '%s' "$body" | tr -d '\r\n' |
      sed -n 's/.*"status"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p')
    failing=${state:+status $state}
  fi
  fail "/ready 503: ${failing:-$(snippet "$body")}"
fi
[[ $status == 200 ]] || fail "/ready returned HTTP $status: $(snippet "$body")"

# 3. a real Engine.IO v4 handshake over long-polling
request '/socket.io/?EIO=4&transport=polling'
[[ $status == 200 ]] || fail "socket.io handshake returned HTTP $status: $(snippet "$body")"
[[ $body == 0\{* && $body == *'"sid"'* ]] ||
  fail "socket.io handshake answered without an open packet: $(snippet "$body")"

# Close the probe's session at once instead of leaving it to the ping timeout (best effort: behind
# a load balancer without sticky sessions this may reach another node, which is harmless).
sid=$(printf '%s' "$body" | sed -n 's/.*"sid"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p')
if [[ -n $sid ]]; then
  curl "${curl_opts[@]}" --output /dev/null --request POST --header 'Content-Type: text/plain;charset=UTF-8' \
    --data-binary 1 "$url/socket.io/?EIO=4&transport=polling&sid=$sid" >/dev/null 2>&1 || true
fi

echo "ok: $url healthy"
