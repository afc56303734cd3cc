#!/usr/bin/env bash
# Password logins under load, against the release binary on a fresh SQLite DB.
# Baseline measured in the same run: what argon2 allows here — the app's own
# hasher verifying flat out on its threads (examples/argon2_rate.rs).
# Reports logins/s at 64 connections as a ratio of that (and of one login at a
# time), the login page's p99 latency while the logins run, and the server's
# peak memory (VmHWM).
set -euo pipefail
cd "$(dirname "$0")/.."

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release --quiet
cargo build --release --quiet --example argon2_rate
bin=target/release/gatehouse
dir=$(mktemp -d)
pid=""
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export GATEHOUSE__DATABASE__URL="sqlite://$dir/bench.db?mode=rwc"
export GATEHOUSE__SERVER__BIND="127.0.0.1:$port"
export GATEHOUSE__LOG__FILTER=warn
base="http://127.0.0.1:$port"
duration=${DURATION:-15s}

# Many members log in, one connection each at a time: the per-account limits
# count attempts in flight, so one account hammered by 64 connections would
# measure the limiter (5 in flight, the rest 429), not the logins. All come
# from 127.0.0.1, so the per-address limit is raised for the run.
members=64
for n in $(seq 0 $((members - 1))); do
  echo "correct horse battery" | "$bin" user create --username "fred$n" --email "fred$n@example.org" --password-stdin >/dev/null
done
export GATEHOUSE__SECURITY__IP_MAX_FAILURES=100000
"$bin" serve >"$dir/serve.log" 2>&1 &
pid=$!
for _ in $(seq 100); do curl -sf "$base/healthz" >/dev/null && break; sleep 0.1; done

curl -s -c "$dir/jar" "$base/accounts/login" >/dev/null
token=$(awk '$6 == "gatehouse_csrf" {print $7}' "$dir/jar")
cat >"$dir/login.lua" <<LUA
local n = 0
request = function()
  n = n + 1
  local body = "username=fred" .. (n % $members) .. "&password=correct+horse+battery&next=&csrf_token=$token"
  return wrk.format("POST", nil, {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Cookie"] = "gatehouse_csrf=$token",
  }, body)
end
done = function(summary, latency, requests)
  io.write(string.format("rps=%.1f non2xx3xx=%d\n", summary.requests / (summary.duration / 1e6), summary.errors.status))
end
LUA
cores=$(nproc)
rps() { tee "$dir/last.txt" | grep -o 'rps=[0-9.]*' | cut -d= -f2; }
refused() { grep -o 'non2xx3xx=[0-9]*' "$dir/last.txt" | cut -d= -f2; }

echo "== baseline: the hasher alone, flat out"
allowed=$(target/release/examples/argon2_rate "${duration%s}" | tee /dev/stderr | sed -n 's/hashes_per_second=\([0-9.]*\).*/\1/p')

echo "== baseline: 1 connection (one hash at a time)"
single=$(wrk -t1 -c1 -d"$duration" -s "$dir/login.lua" "$base/accounts/login" | tee /dev/stderr | rps)
# Other pages meanwhile: a steady, light load (about 50 requests/s), as real
# visitors are; a flat-out page load would starve the logins of CPU instead.
cat >"$dir/paced.lua" <<'LUA'
function delay() return 20 end
LUA
echo "== 64 connections, with the login page requested alongside (~50/s)"
wrk -t1 -c1 -d"$duration" --latency -s "$dir/paced.lua" "$base/accounts/login" >"$dir/page.txt" &
page=$!
parallel=$(wrk -t2 -c64 -d"$duration" --timeout 30s -s "$dir/login.lua" "$base/accounts/login" | tee /dev/stderr | rps)
not_logged_in=$(refused)
wait "$page"
p99=$(awk '$1 == "99%" {print $2}' "$dir/page.txt")
hwm=$(awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$pid/status")

python3 - "$single" "$parallel" "$cores" "$p99" "$hwm" "$allowed" "$not_logged_in" <<'PY'
import sys
single, parallel, cores, p99, hwm, allowed = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5], float(sys.argv[6])
not_logged_in = int(sys.argv[7])
print(f"responses other than a login redirect under the 64-connection load: {not_logged_in}")
print(f"logins/s: one at a time {single:.1f}; 64 parallel {parallel:.1f}")
print(f"argon2 alone on {cores} cores: {allowed:.1f} verifications/s")
print(f"ratio of 64-parallel logins to what argon2 allows: {parallel / allowed:.2f}  (target >= 0.90)")
print(f"login page p99 during the login load: {p99}")
print(f"peak server memory: {hwm} MB")
PY
