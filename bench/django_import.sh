#!/usr/bin/env bash
# `gatehouse import django` on a big old site, with the release binary:
# 10 000 members, 10 000 invitation codes, 10 000 visitors and 100 000 visit
# log rows in a Django SQLite database made here (the schemas documented in
# shared/seeds/behaviour-from-code.md), imported into a fresh Gatehouse
# SQLite database (or PostgreSQL: BENCH_DATABASE_URL=postgres://…, an empty
# database, with GATEHOUSE__SECRET_KEY set). Prints the dry run's and the
# import's reports with wall time and peak memory, then a second run (which
# must import nothing), then the first login of a member with Django's
# default 1 000 000-iteration pbkdf2_sha256 hash (verified, then re-hashed
# with argon2id) against the second (argon2id only).
# Sizes: MEMBERS, CODES, VISITORS, LOGS.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --quiet --locked
bin=target/release/gatehouse
dir=$(mktemp -d)
pid=""
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
export GATEHOUSE__DATABASE__URL="${BENCH_DATABASE_URL:-sqlite://$dir/gatehouse.db?mode=rwc}"
export GATEHOUSE__LOG__FILTER=warn

python3 - "$dir/django.sqlite3" "${MEMBERS:-10000}" "${CODES:-10000}" "${VISITORS:-10000}" "${LOGS:-100000}" <<'PY'
import base64, datetime, hashlib, json, os, random, sqlite3, sys, uuid
path, members, codes, visitors, logs = sys.argv[1], *map(int, sys.argv[2:])
db = sqlite3.connect(path)
db.executescript(open("tests/fixtures/django_sqlite_schema.sql").read())
db.executescript("""
INSERT INTO django_site VALUES (1, 'example.com', 'Old club');
""")
rng = random.Random(15)
now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
at = lambda days: (now - datetime.timedelta(days=days)).strftime("%Y-%m-%d %H:%M:%S.%f")
def pbkdf2(password, salt, iterations=1_000_000):
    raw = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), iterations)
    return f"pbkdf2_sha256${iterations}${salt}${base64.b64encode(raw).decode()}"
# Member 1 has a real hash at Django 5's default cost; the others have hashes
# of the same shape (the import parses them, it does not verify them).
users = [(1, pbkdf2("bench password 1", "benchsalt1"), "member1")]
for n in range(2, members + 1):
    fake = base64.b64encode(rng.randbytes(32)).decode()
    users.append((n, f"pbkdf2_sha256$1000000$salt{n}${fake}", f"member{n}"))
db.executemany(
    "INSERT INTO auth_user VALUES (?, ?, ?, 0, ?, 'Last', ?, ?, 1, ?, 'First')",
    [(n, pw, at(rng.randint(0, 300)), name, f"{name}@example.org", int(n == 1), at(400))
     for n, pw, name in users])
letters, digits = "ABCDEFGHJKMPQRSTUVWXYZ", "23456789"
keys = set()
while len(keys) < codes:
    keys.add("".join(rng.choice(letters) for _ in range(6)) + "".join(rng.choice(digits) for _ in range(3)))
rows = []
for n, key in enumerate(sorted(keys), 1):
    used = n % 2 == 0
    email = f"member{n}@example.org" if used and n <= members else f"invitee{n}@example.org"
    rows.append((n, at(20), email, f"Invitee {n}", None, at(10) if used else None, f"1-{key}",
                 int(n % 10 == 0), 1))
db.executemany("INSERT INTO invites_invitationcode VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1)", rows)
db.executemany(
    "INSERT INTO visitors_visitor VALUES (?, ?, 'Ginger', 'Rogers', ?, ?, ?, ?, ?, ?, 1, 600)",
    [(n, uuid.UUID(int=rng.getrandbits(128), version=4).hex, f"visitor{n}@example.org",
      rng.choice(["demo", "REFERENCE_REQUEST", "reference-request"]), at(5),
      json.dumps({"reference_id": n}), at(5), at(-9)) for n in range(1, visitors + 1)])
agents = ["Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0", "Mozilla/5.0 (iPhone) Safari/605.1"]
db.executemany(
    "INSERT INTO visitors_visitorlog VALUES (?, ?, 'GET', '/references/respond', ?, '', ?, '', ?, ?, 200)",
    [(n, "%032x" % rng.getrandbits(128), f"203.0.113.{n % 250}", rng.choice(agents),
      at(rng.randint(0, 4)), rng.randint(1, visitors)) for n in range(1, logs + 1)])
db.commit()
print(f"Django fixture: {members} members, {codes} codes, {visitors} visitors, {logs} log rows")
PY

"$bin" migrate >/dev/null
run() {
  echo "== gatehouse import django $*"
  /usr/bin/time -f "wall %e s, peak memory %M KB" "$bin" import django --database "sqlite://$dir/django.sqlite3" "$@"
}
run --dry-run
run
run

echo "== logging in with the imported 1 000 000-iteration pbkdf2_sha256 hash"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export GATEHOUSE__SERVER__BIND="127.0.0.1:$port"
"$bin" serve >"$dir/serve.log" 2>&1 &
pid=$!
base="http://127.0.0.1:$port"
for _ in $(seq 100); do curl -sf "$base/healthz" >/dev/null && break; sleep 0.1; done
login() {
  rm -f "$dir/jar"
  curl -s -c "$dir/jar" "$base/accounts/login" >/dev/null
  token=$(awk '$6 == "gatehouse_csrf" {print $7}' "$dir/jar")
  curl -s -o /dev/null -b "$dir/jar" -w "HTTP %{http_code} in %{time_total} s" \
    --data-urlencode "username=member1" --data-urlencode "password=bench password 1" \
    --data-urlencode "next=" --data-urlencode "csrf_token=$token" "$base/accounts/login"
}
echo "first login (pbkdf2, then re-hash): $(login)"
echo "second login (argon2id):            $(login)"
