#!/usr/bin/env bash
# The staff index (GET /staff: counts and four charts over 30 days) on a big
# site: the release binary on a fresh SQLite database seeded with 100 000
# invitations (over 120 days), 1 000 000 visit-log rows (2 000 visitor links
# in 6 scopes, over the 90 days the log keeps), 20 000 outbox rows and
# 10 000 reference requests. Reports the page's render time (curl's total
# time, server on the same machine) over RUNS requests: min, median, max.
# INVITES and VISITS change the sizes.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --quiet
bin=target/release/gatehouse
# BENCH_DIR keeps the database (and the server log) for a closer look.
dir=${BENCH_DIR:-$(mktemp -d)}
pid=""
trap 'kill "$pid" 2>/dev/null || true; [ -n "${BENCH_DIR:-}" ] || rm -rf "$dir"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export GATEHOUSE__DATABASE__URL="sqlite://$dir/bench.db?mode=rwc"
export GATEHOUSE__SERVER__BIND="127.0.0.1:$port"
export GATEHOUSE__LOG__FILTER=warn
base="http://127.0.0.1:$port"
runs=${RUNS:-20}

echo "a long staff password" | "$bin" user create --username boss --email boss@example.org --staff --password-stdin >/dev/null

echo "== seeding"
python3 - "$dir/bench.db" "${INVITES:-100000}" "${VISITS:-1000000}" <<'PY'
import random, sqlite3, sys, time, uuid
from datetime import datetime, timedelta, timezone

db = sqlite3.connect(sys.argv[1])
invites, visits = int(sys.argv[2]), int(sys.argv[3])
random.seed(13)
now = datetime.now(timezone.utc)
def ts(days_ago):
    # The format sqlx writes for DateTime<Utc> in SQLite.
    return (now - timedelta(days=days_ago)).isoformat(timespec="microseconds")
site, boss = db.execute("SELECT site_id, id FROM users WHERE username = 'boss'").fetchone()
started = time.time()

rows = []
for n in range(invites):
    created = random.uniform(0, 120)
    used = ts(created - random.uniform(0, min(created, 10))) if random.random() < 0.6 else None
    revoked = ts(created / 2) if used is None and random.random() < 0.1 else None
    rows.append((site, f"hmac{n}", f"person{n}@example.org", f"Person {n}", "", False, boss,
                 ts(created), ts(created), used, None, revoked))
db.executemany("INSERT INTO invites (site_id, code_hmac, email, name, phone, grants_staff, "
               "created_by, created_at, sent_at, first_used_at, user_id, revoked_at) "
               "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", rows)

scopes = ["reference-request", "demo", "press", "board", "vendors", "alumni"]
visitors = []
for n in range(2000):
    vid = str(uuid.uuid4())
    created = random.uniform(0, 120)
    visitors.append(vid)
    db.execute("INSERT INTO visitors (id, site_id, token_hash, scope, first_name, last_name, email, "
               "context, created_at, expires_at, is_active, session_expiry_secs, created_by) "
               "VALUES (?,?,?,?,?,?,?,NULL,?,?,?,0,?)",
               (vid, site, f"hash{n}", random.choice(scopes), f"V{n}", "Isitor",
                f"visitor{n}@example.org", ts(created), ts(created - 14), True, boss))
batch = []
for n in range(visits):
    batch.append((random.choice(visitors), f"session{random.randrange(4000)}", "GET",
                  "/visitors/demo", 200, f"192.0.2.{random.randrange(250)}", "bench", "",
                  ts(random.uniform(0, 90))))
    if len(batch) == 50000:
        db.executemany("INSERT INTO visitor_logs (visitor_id, session_hash, http_method, "
                       "request_path, status_code, remote_addr, user_agent, referer, timestamp) "
                       "VALUES (?,?,?,?,?,?,?,?,?)", batch)
        batch = []
if batch:
    db.executemany("INSERT INTO visitor_logs (visitor_id, session_hash, http_method, request_path, "
                   "status_code, remote_addr, user_agent, referer, timestamp) "
                   "VALUES (?,?,?,?,?,?,?,?,?)", batch)

for n in range(20000):
    created = random.uniform(0, 90)
    status = random.choices(["sent", "failed", "cancelled"], [90, 5, 5])[0]
    db.execute("INSERT INTO mail_outbox (site_id, sender, recipient, subject, status, attempts, "
               "created_at, next_attempt_at) VALUES (?,?,?,?,?,?,?,?)",
               (site, "site@example.org", f"r{n}@example.org", "Hello", status,
                random.choice([1, 1, 1, 2, 3]), ts(created), ts(created)))
for n in range(10000):
    created = random.uniform(0, 90)
    opened = ts(created - 1) if random.random() < 0.7 else None
    completed = ts(created - 2) if opened and created > 2 and random.random() < 0.6 else None
    status = "completed" if completed else ("opened" if opened else "requested")
    db.execute("INSERT INTO reference_requests (site_id, requester_id, referee_name, referee_email, "
               "message, status, created_at, link_expires_at, opened_at, completed_at) "
               "VALUES (?,?,?,?,?,?,?,?,?,?)",
               (site, boss, "Ref Eree", "referee@example.org", "", status, ts(created),
                ts(created - 14), opened, completed))
db.commit()
db.execute("ANALYZE")
counts = {t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
          for t in ["invites", "visitors", "visitor_logs", "mail_outbox", "reference_requests"]}
print(f"seeded in {time.time() - started:.0f} s: {counts}")
PY

"$bin" serve >"$dir/serve.log" 2>&1 &
pid=$!
for _ in $(seq 100); do curl -sf "$base/healthz" >/dev/null && break; sleep 0.1; done

curl -s -c "$dir/jar" -b "$dir/jar" "$base/accounts/login" >/dev/null
csrf=$(awk '$6 == "gatehouse_csrf" {print $7}' "$dir/jar")
curl -s -c "$dir/jar" -b "$dir/jar" -o /dev/null \
  -d "username=boss&password=a+long+staff+password&next=&csrf_token=$csrf" "$base/accounts/login"
curl -s -b "$dir/jar" "$base/staff" -o "$dir/staff.html"
grep -q 'id="chart-visits"' "$dir/staff.html" || { echo "no dashboard: see $dir/serve.log" >&2; cat "$dir/serve.log" >&2; exit 1; }
grep -o 'class="chart-summary">[^<]*' "$dir/staff.html" | sed 's/.*">/  /'

echo "== GET /staff, $runs times"
for _ in $(seq "$runs"); do
  curl -s -b "$dir/jar" -o /dev/null -w '%{time_total}\n' "$base/staff"
done | sort -n | awk '{ t[NR] = $1 * 1000 } END {
  printf "render time: min %.0f ms, median %.0f ms, max %.0f ms (%d requests)\n", t[1], t[int((NR + 1) / 2)], t[NR], NR }'
