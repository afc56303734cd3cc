#!/usr/bin/env bash
# The hot paths beside the floor, in one run (release builds, wrk, SQLite):
#   guarded        /visitors/demo as a visitor (session, visitor, guard, visit log)
#   login page     GET /accounts/login, anonymous
#   anonymous home GET /, no cookie
#   member home    GET / with a member's session
#   floor          bare actix-web + Tera rendering the base page (examples/floor.rs)
#   logins         password logins at 64 connections against what argon2 alone
#                  allows here (examples/argon2_rate.rs), beside the floor's
#                  logins (the same form and hasher over bare actix-web: what
#                  HTTP and the load generator leave of argon2's rate), the
#                  three measured in short turns (this machine's speed drifts
#                  by up to 15 % within a minute) with nothing else running,
#                  each login slice against the argon2 slices either side of
#                  it, and the median of those;
#                  also the server's CPU time per login against argon2's per
#                  hash, split by thread (hashing, actix, SQLite workers)
# First the session cache is filled: 100 000 visitor sessions (SESSIONS) are
# stored (examples/seed_sessions.rs) and each is requested once, so every
# scenario runs with the cache full; examples/session_cache_memory.rs says
# what one entry costs.
# Also: the guarded page's p99 under a light paced load, alone and while the
# logins run; 1000 concurrent keep-alive connections on the guarded page; the
# server's peak memory in each scenario (the high-water mark is reset before
# each, once the server has finished the work the last one left it) and over
# the whole run; visit log rows written against guarded requests served.
# The four pages are taken in turns with the floor (F G F L F A F M F), each
# against the median of the floor slices around it.
# DURATION (default 10s) is each load's length (the page and floor slices
# half of it); the run takes under 3 minutes once built.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release --quiet --bin gatehouse --example floor --example argon2_rate --example seed_sessions --example session_cache_memory
bin=target/release/gatehouse
started=$SECONDS
dir=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; cp "$dir/serve.log" /tmp/last-serve.log 2>/dev/null; rm -rf "$dir"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
export GATEHOUSE__DATABASE__URL="sqlite://$dir/bench.db?mode=rwc"
export GATEHOUSE__SERVER__BIND="127.0.0.1:$port"
export GATEHOUSE__SERVER__BASE_URL="$base"
export GATEHOUSE__LOG__FILTER=warn
duration=${DURATION:-10s}
ulimit -n 4096 2>/dev/null || true

# Members who log in (one connection each at a time: the per-account limits
# count attempts in flight), all from 127.0.0.1, so the per-address limit is
# raised for the run.
members=64
for n in $(seq 0 $((members - 1))); do
  echo "correct horse battery" | "$bin" user create --username "fred$n" --email "fred$n@example.org" --password-stdin >/dev/null
done
export GATEHOUSE__SECURITY__IP_MAX_FAILURES=100000
link=$("$bin" visitor create --scope demo --email ginger@example.org --first-name Ginger | tail -1)

"$bin" serve >"$dir/serve.log" 2>&1 &
pid=$!
pids+=("$pid")
target/release/examples/floor >"$dir/floor" 2>&1 &
floor_pid=$!
pids+=("$floor_pid")
for _ in $(seq 100); do curl -sf "$base/healthz" >/dev/null && grep -q floor= "$dir/floor" && break; sleep 0.1; done
floor="http://127.0.0.1:$(sed -n 's/floor=//p' "$dir/floor")"

cookie() { awk -v name="$1" '$6 == name {print $7}' "$2"; }
# A visitor session, entered through the link as a person would.
curl -s -c "$dir/visitor" -b "$dir/visitor" "$link" -o "$dir/landing.html"
token=$(grep -o 'name="token" value="[^"]*"' "$dir/landing.html" | sed 's/.*value="//; s/"$//')
curl -s -c "$dir/visitor" -b "$dir/visitor" -d "token=$token&next=/visitors/demo&csrf_token=$(cookie gatehouse_csrf "$dir/visitor")" "$base/visitors/enter" -o /dev/null
visitor=$(cookie gatehouse_session "$dir/visitor")
curl -s -b "gatehouse_session=$visitor" "$base/visitors/demo" | grep -q "You are a visitor" || { echo "no visitor session" >&2; exit 1; }
# A member session, logged in with a password.
curl -s -c "$dir/member" -b "$dir/member" "$base/accounts/login" -o /dev/null
curl -s -c "$dir/member" -b "$dir/member" -d "username=fred0&password=correct+horse+battery&next=&csrf_token=$(cookie gatehouse_csrf "$dir/member")" "$base/accounts/login" -o /dev/null
member=$(cookie gatehouse_session "$dir/member")
curl -s -b "gatehouse_session=$member" "$base/" | grep -q "fred0" || { echo "no member session" >&2; exit 1; }

# The cache full: sessions copied from the visitor's, each requested once.
sessions=${SESSIONS:-100000}
echo "== filling the session cache with $sessions sessions"
target/release/examples/seed_sessions "$sessions" >"$dir/seeded"

# wrk with its latency table; prints "rps p99_ms requests errors".
# Each call has its own output file: two loads may run at once.
load() {
  local out
  out=$(mktemp -p "$dir" wrk.XXXXXX)
  wrk --latency "$@" >"$out" 2>&1 || true
  python3 - "$out" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", text)
ms = float(p99.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[p99.group(2)] if p99 else float("nan")
requests = int(re.search(r"(\d+) requests in", text).group(1))
errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", text))
errors += int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", text)) else 0
print(f"{rps:.1f} {ms:.2f} {requests} {errors}")
PY
}
# The server's CPU ticks, all threads and then by kind of thread, at one
# moment: "all hashing actix sqlite-workers" (the rest of all is other
# threads and those that have exited).
thread_cpu() {
  cat "/proc/$pid/stat" "/proc/$pid/task/"*/stat 2>/dev/null | awk '
    {ticks = $14 + $15}
    NR == 1 {all = ticks; next}
    $2 ~ /password-hash/ {hashing += ticks; next}
    $2 ~ /actix-rt/ {actix += ticks; next}
    $2 ~ /sqlx-sqlite/ {sqlite += ticks; next}
    END {print all, hashing + 0, actix + 0, sqlite + 0}'
}
# Before a scenario: wait (drain, 30 s at most) until the server and the floor have
# finished what the last one left them (wrk hangs up on requests still
# queued, which they complete), after logins a little longer than idle
# hashing threads keep their memory (1 s), then reset the server's memory
# high-water mark (VmHWM).
both_cpu() { cat "/proc/$pid/stat" "/proc/$floor_pid/stat" | awk '{sum += $14 + $15} END {print sum}'; }
drain() {
  local before after
  for _ in $(seq 60); do
    before=$(both_cpu); sleep 0.5; after=$(both_cpu)
    [ $((after - before)) -le 2 ] && break
  done
}
settle() {
  drain
  [ "${1:-}" = after-logins ] && sleep 1.5
  echo 5 >"/proc/$pid/clear_refs"
}
# The server's memory high-water mark, in MB.
peak() { awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$pid/status"; }
# About 50 requests/s on one connection: a person's pace, not a flood.
echo 'function delay() return 20 end' >"$dir/paced.lua"
paced() { load -t1 -c1 -d"$duration" -s "$dir/paced.lua" "$@"; }
guarded_cookie="Cookie: gatehouse_session=$visitor"

fill_n=0 fill_err=0
if [ "$sessions" -gt 0 ]; then
  # curl, 64 at a time, each session once (wrk would run on to its -d).
  echo "== cache fill"
  awk -v url="$base/visitors/demo" 'NR > 1 {print "next"} {printf "url = \"%s\"\nheader = \"Cookie: gatehouse_session=%s\"\noutput = \"/dev/null\"\nwrite-out = \"%%{http_code}\\n\"\n", url, $0}' "$dir/seeded" >"$dir/fill.cfg"
  curl -s --no-progress-meter --parallel --parallel-max 64 --config "$dir/fill.cfg" >"$dir/fill-codes" || true
  fill_n=$(wc -l <"$dir/fill-codes")
  fill_err=$(grep -vc '^200$' "$dir/fill-codes" || true)
fi
filled_rss=$(awk '/VmRSS/ {printf "%.0f", $2/1024}' "/proc/$pid/status")
fill_peak=$(peak)
# The pages and the floor in turns (F G F L F A F M F), each page against
# the floor slices around it: this machine's speed drifts within a
# minute, and a floor measured once, before all four, let a slow spell
# decide a page's ratio (the login page read 0.62 of it in one run, 0.71-0.76
# in the others).
page_s=$(( (${duration%s} + 1) / 2 ))
page() { load -t2 -c64 -d"${page_s}s" "$@"; }
floor_rates=() floor_p99s=()
floor_turn() {
  local rps p99
  read -r rps p99 _ _ <<<"$(page "$floor/")"
  floor_rates+=("$rps") floor_p99s+=("$p99")
}
echo "== the pages, in turns with the floor (slices of ${page_s}s)"
# The floor's process is fresh (Gatehouse's was warmed by the cache fill):
# its first requests are not counted.
load -t2 -c64 -d2s "$floor/" >/dev/null
floor_turn
settle; echo "== guarded page";  read -r guarded guarded_p99 guarded_n guarded_err <<<"$(page -H "$guarded_cookie" "$base/visitors/demo")"; guarded_peak=$(peak)
floor_turn
settle; echo "== login page";    read -r login_page login_page_p99 _ login_page_err <<<"$(page "$base/accounts/login")"; login_page_peak=$(peak)
floor_turn
settle; echo "== anonymous home"; read -r anon anon_p99 _ anon_err <<<"$(page "$base/")"; anon_peak=$(peak)
floor_turn
settle; echo "== member home";   read -r member_home member_p99 _ member_err <<<"$(page -H "Cookie: gatehouse_session=$member" "$base/")"; member_peak=$(peak)
floor_turn
settle; echo "== guarded page, paced"; read -r _ quiet_p99 quiet_n _ <<<"$(paced -H "$guarded_cookie" "$base/visitors/demo")"

# argon2 alone for $1 seconds; prints "hashes/s CPU-ms-per-hash".
argon2_alone() {
  target/release/examples/argon2_rate "$1" | sed -n 's/hashes_per_second=\([0-9.]*\) cpu_ms_per_hash=\([0-9.]*\)/\1 \2/p'
}
# A fresh anonymous CSRF cookie (the member's is bound to their session).
curl -s -c "$dir/anonymous" "$base/accounts/login" -o /dev/null
csrf=$(cookie gatehouse_csrf "$dir/anonymous")
cat >"$dir/login.lua" <<LUA
local n = 0
request = function()
  n = n + 1
  local body = "username=fred" .. (n % $members) .. "&password=correct+horse+battery&next=&csrf_token=$csrf"
  return wrk.format("POST", nil, {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Cookie"] = "gatehouse_csrf=$csrf",
  }, body)
end
LUA
logins_load() { load -t2 -c64 -d"$1" --timeout 30s -s "$dir/login.lua" "$2"; }
# argon2 alone, the floor's logins and Gatehouse's in turns, argon2 first
# and last (A F L A ... F L A): this machine's speed drifts by up to 15 %
# within a minute, and taken in turns the drift falls on all three alike.
# Each login slice ends with a drain: wrk hangs up on the logins queued,
# which the server still hashes, and those must not fall in the next slice.
# The floor's slices are shorter: it is there for comparison.
slices=3 alone_s=2
slice_s=$(( (${duration%s} * 6 / 5 + slices - 1) / slices )) floor_s=$(( (${duration%s} * 9 / 10 + slices - 1) / slices ))
settle; echo "== argon2 alone, the floor's logins and Gatehouse's, in turns ($slices slices of ${alone_s}s, ${floor_s}s and ${slice_s}s)"
alone_rates=() alone_ms=() floor_login_rates=() login_rates=() floor_login_err=0 login_err=0 logins_peak=0
# Gatehouse's CPU ticks over its login slices ("all hashing actix sqlite"),
# and the logins served while they were counted: each slice's rate times
# the time between the two counts, which is a little longer than wrk's run.
cpu_spent=(0 0 0 0) logins_counted=0
now() { date +%s.%N; }
# The server's memory high-water mark over the login phases, which a
# settle between them resets.
note_logins_peak() { local mb; mb=$(peak); [ "$mb" -gt "$logins_peak" ] && logins_peak=$mb || true; }
for n in $(seq "$slices"); do
  read -r rate ms <<<"$(argon2_alone "$alone_s")"
  alone_rates+=("$rate") alone_ms+=("$ms")
  read -r rate _ _ errors <<<"$(logins_load "${floor_s}s" "$floor/login")"
  floor_login_rates+=("$rate") floor_login_err=$((floor_login_err + errors))
  drain
  read -r -a before <<<"$(thread_cpu)"
  started_at=$(now)
  read -r rate _ _ errors <<<"$(logins_load "${slice_s}s" "$base/accounts/login")"
  ended_at=$(now)
  read -r -a after <<<"$(thread_cpu)"
  for i in 0 1 2 3; do cpu_spent[i]=$((cpu_spent[i] + after[i] - before[i])); done
  logins_counted=$(python3 -c "print($logins_counted + $rate * ($ended_at - $started_at))")
  login_rates+=("$rate") login_err=$((login_err + errors))
  note_logins_peak
  drain
done
read -r rate ms <<<"$(argon2_alone "$alone_s")"
alone_rates+=("$rate") alone_ms+=("$ms")
read -r cpu_all cpu_hashing cpu_actix cpu_sqlite <<<"${cpu_spent[*]}"
mean() { python3 -c 'import sys; xs = [float(x) for x in sys.argv[1:]]; print(sum(xs) / len(xs))' "$@"; }
logins=$(mean "${login_rates[@]}")
floor_logins=$(mean "${floor_login_rates[@]}")
allowed=$(mean "${alone_rates[@]}")
hash_ms=$(mean "${alone_ms[@]}")
settle after-logins; echo "== logins, with the guarded page paced alongside"
paced -H "$guarded_cookie" "$base/visitors/demo" >"$dir/busy.txt" &
busy=$!
read -r _ _ _ busy_login_err <<<"$(logins_load "$duration" "$base/accounts/login")"
wait "$busy"
read -r _ busy_p99 busy_n _ <"$dir/busy.txt"
login_err=$((login_err + busy_login_err))
note_logins_peak
# Last: the flood leaves the visit log writer a backlog to catch up on.
settle after-logins; echo "== 1000 connections"; read -r wide wide_p99 wide_n wide_err <<<"$(load -t2 -c1000 -d"$duration" --timeout 10s -H "$guarded_cookie" "$base/visitors/demo")"; wide_peak=$(peak)

# Graceful stop: the queued visit log rows are written before exit.
kill -TERM "$pid"
wait "$pid" 2>/dev/null || true
rows=$(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("select count(*) from visitor_logs").fetchone()[0])' "$dir/bench.db")

python3 - <<PY
from statistics import median
# Each page against the median of the floor slices around it: the two either
# side and the next one out, so that a burst in one floor slice (one read
# 165 592/s between neighbours of 112 366 and 110 215) does not decide it.
floors = [$(IFS=,; echo "${floor_rates[*]}")]
floor = [median(floors[max(i - 1, 0):i + 3]) for i in range(4)]
rows = [
    ("guarded visitor page", $guarded, floor[0], 0.25, $guarded_p99, $guarded_err, $guarded_peak),
    ("login page GET", $login_page, floor[1], 0.60, $login_page_p99, $login_page_err, $login_page_peak),
    ("anonymous home", $anon, floor[2], 0.60, $anon_p99, $anon_err, $anon_peak),
    ("member home", $member_home, floor[3], 0.25, $member_p99, $member_err, $member_peak),
    ("password logins (vs argon2 alone)", $logins, $allowed, 0.90, float("nan"), $login_err, $logins_peak),
]
# Each login slice against the argon2 slices either side of it, and the
# median of those: the drift cancels within a pair, and one slice the
# machine slowed for (it happens) moves the median little.
alone = [$(IFS=,; echo "${alone_rates[*]}")]
def against_alone(rates):
    pairs = [rate / ((alone[i] + alone[i + 1]) / 2) for i, rate in enumerate(rates)]
    return median(pairs), pairs
login_ratio, login_pairs = against_alone([$(IFS=,; echo "${login_rates[*]}")])
floor_ratio, floor_pairs = against_alone([$(IFS=,; echo "${floor_login_rates[*]}")])
ratios = {"password logins (vs argon2 alone)": login_ratio}
peaks = [row[-1] for row in rows] + [$wide_peak]
print()
print(f"| scenario, 64 connections | Gatehouse /s | floor /s | ratio | target | p99 ms | errors | peak MB |")
print(f"|---|---|---|---|---|---|---|---|")
print(f"| floor (bare actix-web + Tera), median of its slices | {median(floors):.0f} | | | | {median([$(IFS=,; echo "${floor_p99s[*]}")]):.2f} | | |")
for name, got, against, target, p99, errors, peak in rows:
    ratio = ratios.get(name, got / against)
    mark = "ok" if ratio >= target else "BELOW"
    print(f"| {name} | {got:.1f} | {against:.1f} | {ratio:.2f} | >= {target:.2f} {mark} | {p99:.2f} | {errors} | {peak} |")
p99_ratio = $busy_p99 / $quiet_p99
print()
print("the floor's slices, around the pages in turn: " + " ".join(f"{rate:.0f}/s" for rate in floors))
print("in turns: argon2 alone $(printf '%s/s ' "${alone_rates[@]}")")
print("          the floor's logins $(printf '%s/s ' "${floor_login_rates[@]}")")
print("          Gatehouse's logins $(printf '%s/s ' "${login_rates[@]}")")
print("each against the argon2 slices either side: Gatehouse's " + " ".join(f"{r:.2f}" for r in login_pairs) + f" (median {login_ratio:.2f}, the table's ratio), the floor's " + " ".join(f"{r:.2f}" for r in floor_pairs) + f" (median {floor_ratio:.2f})")
print(f"floor logins (same form and hasher, bare actix-web): {$floor_logins:.1f}/s, errors {$floor_login_err}; Gatehouse's: {login_ratio / floor_ratio:.2f} of them")
hash_ms = $hash_ms
# CPU ticks (1/100 s) over the logins served, in ms per login.
per_login = lambda ticks: ticks * 10 / max($logins_counted, 1)
login_ms = per_login($cpu_all)
print(f"CPU time: {login_ms:.2f} ms per login (server, all threads), {hash_ms:.2f} ms per hash alone: {hash_ms / login_ms:.2f}")
hashing, actix, sqlite = per_login($cpu_hashing), per_login($cpu_actix), per_login($cpu_sqlite)
print(f"  by thread, per login: hashing {hashing:.2f} ms (argon2 alone: {hash_ms:.2f} per hash), actix {actix:.2f}, SQLite workers {sqlite:.2f}, the rest {login_ms - hashing - actix - sqlite:.2f}")
print(f"guarded page p99 at ~50/s: alone {$quiet_p99:.2f} ms, while logins run {$busy_p99:.2f} ms: x{p99_ratio:.1f} (target <= 5)")
print(f"1000 keep-alive connections on the guarded page: {$wide:.0f}/s, p99 {$wide_p99:.2f} ms, errors {$wide_err}, peak {$wide_peak} MB")
print(f"session cache: {min($fill_n, $sessions)} of $sessions stored sessions requested ({$fill_n} requests, errors {$fill_err}); server memory then {$filled_rss} MB")
print("one entry, with its row: a member's $(target/release/examples/session_cache_memory member | sed 's/.*bytes_per_entry=//') bytes, a visitor's $(target/release/examples/session_cache_memory visitor | sed 's/.*bytes_per_entry=//') bytes")
mark = "ok" if max(peaks) <= 150 else "ABOVE"
print(f"peak server memory in a scenario: {max(peaks)} MB (target <= 150 {mark}); while filling the cache: {$fill_peak} MB")
served = $guarded_n + $quiet_n + $wide_n + $busy_n + $fill_n
print(f"visit log rows after a graceful stop: $rows for {served} guarded requests counted by wrk")
print(f"run time, once built: $((SECONDS - started)) s")
PY
