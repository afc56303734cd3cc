#!/usr/bin/env bash
# Visitor overhead, measured in one run with wrk at 64 connections:
#   unguarded  the demo page's template, anonymous (no session, no visitor)
#   guarded    /visitors/demo as a visitor: session load, visitor lookup,
#              scope guard and a visit log row per request
#   floor      bare actix-web + Tera rendering a page of the same size
# Reports requests/s, the guarded/unguarded and guarded/floor ratios, and the
# Gatehouse process's peak memory.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release --quiet --example bench_server
cargo build --release --quiet
dir=$(mktemp -d)
pid=""
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
export GATEHOUSE__DATABASE__URL="sqlite://$dir/bench.db?mode=rwc"
export GATEHOUSE__SERVER__BIND="127.0.0.1:0"
export GATEHOUSE__LOG__FILTER=warn
duration=${DURATION:-15s}

target/release/examples/bench_server >"$dir/ports" 2>"$dir/server.log" &
pid=$!
for _ in $(seq 100); do grep -q floor= "$dir/ports" 2>/dev/null && break; sleep 0.1; done
gh=$(sed -n 's/.*gatehouse=\([0-9]*\).*/\1/p' "$dir/ports")
floor=$(sed -n 's/.*floor=\([0-9]*\).*/\1/p' "$dir/ports")
base="http://127.0.0.1:$gh"

# A visitor session, entered through the link as a person would.
link=$(GATEHOUSE__SERVER__BASE_URL="$base" target/release/gatehouse visitor create --scope demo --email ginger@example.org --first-name Ginger | tail -1)
curl -s -c "$dir/jar" -b "$dir/jar" "$link" -o "$dir/landing.html"
token=$(grep -o 'name="token" value="[^"]*"' "$dir/landing.html" | sed 's/.*value="//; s/"$//')
csrf=$(awk '$6 == "gatehouse_csrf" {print $7}' "$dir/jar")
curl -s -c "$dir/jar" -b "$dir/jar" -d "token=$token&next=/visitors/demo&csrf_token=$csrf" "$base/visitors/enter" -o /dev/null
session=$(awk '$6 == "gatehouse_session" {print $7}' "$dir/jar")
curl -s -b "gatehouse_session=$session" "$base/visitors/demo" | grep -q "You are a visitor" || { echo "no visitor session" >&2; exit 1; }

rps() { wrk -t2 -c64 -d"$duration" "$@" | tee /dev/stderr | awk '/Requests\/sec/ {print $2}'; }
echo "== unguarded (anonymous)"
unguarded=$(rps "$base/bench/unguarded")
echo "== guarded (visitor)"
guarded=$(rps -H "Cookie: gatehouse_session=$session" "$base/visitors/demo")
echo "== floor (bare actix-web + Tera)"
floor_rps=$(rps "http://127.0.0.1:$floor/")
hwm=$(awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$pid/status")
logs=$(python3 - "$dir/bench.db" <<'PY'
import sqlite3, sys
print(sqlite3.connect(sys.argv[1]).execute("select count(*) from visitor_logs").fetchone()[0])
PY
)
python3 - "$unguarded" "$guarded" "$floor_rps" "$hwm" "$logs" <<'PY'
import sys
unguarded, guarded, floor, hwm, logs = map(float, sys.argv[1:])
print(f"requests/s: unguarded {unguarded:.0f}, guarded {guarded:.0f}, floor {floor:.0f}")
print(f"guarded / unguarded: {guarded / unguarded:.2f}")
print(f"guarded / floor: {guarded / floor:.2f}  (target >= 0.25)")
print(f"visit log rows written: {logs:.0f}")
print(f"peak memory of the benchmark process (both servers): {hwm:.0f} MB")
PY
