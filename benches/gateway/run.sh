#!/usr/bin/env bash
# Load test: the gateway example against nginx (auth_basic + proxy_pass), both
# over TLS on loopback in front of the same stand-in Web Service, with the
# same htpasswd file (one bcrypt cost-10 user, one {SHA} user).
#
#   benches/gateway/run.sh              # 10 s per run, 32 connections
#   DURATION=5s CONNECTIONS=16 benches/gateway/run.sh
#
# Needs wrk, nginx, htpasswd (apache2-utils) and curl. Every run is bounded by
# DURATION; every server started here is stopped by its PID on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
GATEWAY_PORT=${GATEWAY_PORT:-18443}
NGINX_PORT=${NGINX_PORT:-18444}
STANDIN=127.0.0.1:41101
PASSWORD=bench-password-1

for tool in wrk nginx htpasswd curl; do
  command -v "$tool" >/dev/null || { echo "run.sh: $tool is not installed" >&2; exit 2; }
done

work=$(mktemp -d)
chmod 755 "$work" # nginx workers (nobody when started as root) read htpasswd per request
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

echo "== building the gateway (release)" >&2
cargo build --release --example gateway >&2

# One file for both servers: bcrypt cost 10 and {SHA}.
htpasswd -nbB -C 10 bcrypt "$PASSWORD" | sed '/^$/d' >"$work/htpasswd"
htpasswd -nbs sha "$PASSWORD" | sed '/^$/d' >>"$work/htpasswd"
chmod 644 "$work/htpasswd"

# The gateway starts the stand-in on 41101 and writes cert.pem / key.pem.
RUST_LOG=warn target/release/examples/gateway \
  --https "127.0.0.1:$GATEWAY_PORT" --no-http --htpasswd "$work/htpasswd" --out-dir "$work" \
  >"$work/gateway.log" 2>&1 &
gateway_pid=$!
pids+=($gateway_pid)

wait_ready() { # url
  for _ in $(seq 100); do
    code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$work/cert.pem" "$1" || true)
    [ "$code" = 401 ] && return 0
    sleep 0.1
  done
  echo "run.sh: $1 did not come up; see logs in $work" >&2
  cat "$work"/*.log >&2 || true
  exit 1
}
for _ in $(seq 100); do [ -s "$work/key.pem" ] && break; sleep 0.1; done
wait_ready "https://localhost:$GATEWAY_PORT/api/ping"

sed -e "s|@PREFIX@|$work|g" -e "s|@PORT@|$NGINX_PORT|g" -e "s|@UPSTREAM@|$STANDIN|g" \
  benches/gateway/nginx.conf >"$work/nginx.conf"
nginx -p "$work" -c "$work/nginx.conf" -e "$work/error.log" &
nginx_pid=$!
pids+=($nginx_pid)
wait_ready "https://localhost:$NGINX_PORT/api/ping"

auth() { printf 'Basic %s' "$(printf '%s:%s' "$1" "$PASSWORD" | base64 -w0)"; }

# p99 from wrk's latency distribution, in milliseconds.
p99_ms() {
  awk '$1 == "99%" {
    v = $2
    if (v ~ /us$/) { sub(/us$/, "", v); v /= 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v) }
    else if (v ~ /m$/) { sub(/m$/, "", v); v *= 60000 }
    else if (v ~ /s$/) { sub(/s$/, "", v); v *= 1000 }
    printf "%.2f", v
  }' "$1"
}

# CPU time (clock ticks) used so far by the serving threads: the gateway's
# worker threads (not its stand-in thread), or nginx's worker processes.
server_ticks() { # port
  local stats
  if [ "$1" = "$GATEWAY_PORT" ]; then
    stats=$(for t in /proc/"$gateway_pid"/task/*; do
      case "$(cat "$t/comm")" in gateway-*) cat "$t/stat" ;; esac
    done)
  else
    stats=$(for p in $(pgrep -P "$nginx_pid"); do cat "/proc/$p/stat"; done)
  fi
  awk '{ s += $14 + $15 } END { print s + 0 }' <<<"$stats"
}

# One bounded wrk run; appends "name<TAB>requests/s<TAB>p99 ms<TAB>non-2xx<TAB>CPU µs/request"
# to results.
load() { # name port user
  local url="https://127.0.0.1:$2/api/ping" out="$work/wrk.txt" code
  code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$work/cert.pem" -H "Authorization: $(auth "$3")" \
    "https://localhost:$2/api/ping")
  [ "$code" = 200 ] || { echo "run.sh: $1 answered $code with valid credentials" >&2; exit 1; }
  local before after
  before=$(server_ticks "$2")
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -H "Authorization: $(auth "$3")" "$url" >"$out"
  after=$(server_ticks "$2")
  local rps non2xx requests cpu
  rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
  non2xx=$(awk '/Non-2xx/ {print $5}' "$out")
  requests=$(awk '/requests in/ {print $1}' "$out")
  # Server CPU per request, in microseconds.
  cpu=$(awk -v t=$((after - before)) -v n="$requests" -v hz="$(getconf CLK_TCK)" \
    'BEGIN { printf "%.1f", (n > 0 ? t * 1e6 / hz / n : 0) }')
  printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$rps" "$(p99_ms "$out")" "${non2xx:-0}" "$cpu" >>"$work/results.tsv"
  echo "  $1: $rps requests/s, p99 $(p99_ms "$out") ms, $cpu µs CPU/request" >&2
}

# The same load on every server, interleaved over ROUNDS rounds so that a
# busy moment of the machine does not favour one of them; medians reported.
ROUNDS=${ROUNDS:-3}
: >"$work/results.tsv"
echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION, GET /api/ping over TLS (HTTP/1.1), $(nproc) cores, $ROUNDS rounds" >&2
for round in $(seq "$ROUNDS"); do
  echo "round $round" >&2
  load "gateway, bcrypt-10 user" "$GATEWAY_PORT" bcrypt
  load "nginx, {SHA} user" "$NGINX_PORT" sha
  load "gateway, {SHA} user" "$GATEWAY_PORT" sha
  load "nginx, bcrypt-10 user" "$NGINX_PORT" bcrypt
done

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
echo
echo "| server, user | requests/s (median) | p99 latency, ms (median) | server CPU per request, µs (median) | non-2xx |"
echo "|---|---|---|---|---|"
for name in "gateway, bcrypt-10 user" "nginx, bcrypt-10 user" "gateway, {SHA} user" "nginx, {SHA} user"; do
  rows=$(awk -F'\t' -v n="$name" '$1 == n' "$work/results.tsv")
  rps=$(cut -f2 <<<"$rows" | median)
  p99=$(cut -f3 <<<"$rows" | median)
  cpu=$(cut -f5 <<<"$rows" | median)
  non2xx=$(cut -f4 <<<"$rows" | awk '{ s += $1 } END { print s }')
  printf '| %s | %.0f | %s | %s | %s |\n' "$name" "$rps" "$p99" "$cpu" "$non2xx"
done
