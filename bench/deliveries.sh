#!/usr/bin/env bash
# Webhook delivery throughput and the memory a dead endpoint costs (README, "Receiving
# events"). Run from the project root: bench/deliveries.sh   (EVENTS=1000 DEAD=10000)
#
# 1. backlog: EVENTS events queue for a disabled endpoint (nginx answering 204 on loopback);
#    it is enabled and the time until its backlog is empty gives deliveries/s.
# 2. keeping up: 5,000 events arrive in POSTs of 500 while the endpoint is enabled; the time
#    from the first POST until the backlog is empty, against the time the POSTs took.
# 3. dead endpoint: DEAD events queue for an endpoint whose port refuses connections; the
#    gateway's RSS before, once they are queued, and after 20 s of attempts.
# Absolute figures vary between machines: compare before/after in one sitting.
set -euo pipefail
EVENTS=${EVENTS:-1000} DEAD=${DEAD:-10000}
for tool in nginx curl python3; do
    command -v "$tool" >/dev/null || { apt-get update -q >/dev/null; apt-get install -y -q "$tool" >/dev/null; }
done
cargo build --release --quiet
BIN=$PWD/target/release/wa-groups-gateway
tmp=$(mktemp -d); P=""; N=""
trap '[[ -n $P ]] && kill $P 2>/dev/null; [[ -n $N ]] && kill $N 2>/dev/null; rm -rf "$tmp"; true' EXIT
port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
G=$(port) R=$(port)
mkdir -p "$tmp/nginx"
cat > "$tmp/nginx/nginx.conf" <<NG
daemon off;
worker_processes 1;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $tmp/nginx;
  server { listen 127.0.0.1:$R; keepalive_requests 100000; location / { return 204; } }
}
NG
nginx -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" & N=$!
KEY=$(python3 -c 'import base64,os;print(base64.b64encode(os.urandom(32)).decode())')
cat > "$tmp/gw.toml" <<CF
[server]
host = "127.0.0.1"
port = $G
workers = 1
[graph]
mode = "sandbox"
[auth]
issuer = "wa-groups-gateway"
audience = "wa-groups-api"
[[auth.keys]]
kid = "b"
algorithm = "HS256"
secret = "bench-secret-0123456789abcdef0123"
signing = true
[storage]
url = "${STORAGE_URL:-sqlite://$tmp/gw.db}"
encryption_key = "$KEY"
[webhooks]
verify_token = "v"
app_secret = "bench-app-secret"
[sandbox]
webhook_delay_ms = 0
[phone_numbers.111]
access_token = "EAAG-bench"
[teams.bench]
phone_numbers = ["111"]
CF
RUST_LOG=warn "$BIN" --config "$tmp/gw.toml" serve >"$tmp/gw.log" 2>&1 & P=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$G/healthz" >/dev/null && break; sleep 0.1; done
TOKEN=$("$BIN" --config "$tmp/gw.toml" token issue --team bench --scope groups:read groups:write webhooks 2>/dev/null)
api() { curl -sf -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' "$@"; }
json() { python3 -c "import json,sys;print(json.load(sys.stdin)$1)"; }
GROUP=$(api -X POST "http://127.0.0.1:$G/v1/phone-numbers/111/groups?wait_seconds=10" -d '{"subject":"Bench"}' | json '["group_id"]')
endpoint() { api -X POST "http://127.0.0.1:$G/v1/webhook-endpoints" -d "$1" | json '["id"]'; }
backlog() { api "http://127.0.0.1:$G/v1/webhook-endpoints/$1" | json '["backlog"]'; }
wait_backlog() { while [[ $(backlog "$1") != "$2" ]]; do sleep 0.02; done; }
rss() { echo $(( $(ps -o rss= -p $P) / 1024 )); }
# POSTs of `per` participant events each, numbered from `from`, signed as Meta signs them.
post_events() {
    python3 - "$GROUP" "$1" "$2" "$3" <<'PY' | while read -r sig; do read -r body; curl -sf -o /dev/null -H 'content-type: application/json' -H "x-hub-signature-256: $sig" --data-binary "$body" "http://127.0.0.1:$G/webhooks/whatsapp"; done
import hashlib, hmac, json, sys
gid, count, per, first = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
for start in range(first, first + count, per):
    items = [{"timestamp": str(1765000000 + i), "group_id": gid, "type": "group_participants_add",
              "added_participants": [{"wa_id": "1650%07d" % i}]} for i in range(start, min(start + per, first + count))]
    body = json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [
        {"field": "group_participants_update", "value": {"messaging_product": "whatsapp",
         "metadata": {"phone_number_id": "111"}, "groups": items}}]}]}, separators=(",", ":"))
    print("sha256=" + hmac.new(b"bench-app-secret", body.encode(), hashlib.sha256).hexdigest())
    print(body)
PY
}
now() { date +%s.%N; }

echo "== 1. a backlog of $EVENTS events for a healthy endpoint"
OK=$(endpoint "{\"url\":\"http://127.0.0.1:$R/hooks\",\"disabled\":true}")
post_events "$EVENTS" 500 0
wait_backlog "$OK" "$EVENTS"
t0=$(now)
api -X PATCH "http://127.0.0.1:$G/v1/webhook-endpoints/$OK" -d '{"disabled":false}' >/dev/null
wait_backlog "$OK" 0
t1=$(now)
python3 -c "print(f'delivered {$EVENTS} in {$t1-$t0:.2f} s: {$EVENTS/($t1-$t0):.0f} deliveries/s')"

echo "== 2. 5000 events arriving while the endpoint is enabled"
t0=$(now)
post_events 5000 500 100000
t1=$(now)
wait_backlog "$OK" 0
t2=$(now)
python3 -c "print(f'ingress took {$t1-$t0:.2f} s ({5000/($t1-$t0):.0f} events/s); every event delivered {$t2-$t0:.2f} s after the first POST ({5000/($t2-$t0):.0f} events/s end to end)')"

echo "== 3. $DEAD events for a dead endpoint"
DEAD_ID=$(endpoint "{\"url\":\"http://127.0.0.1:9/hooks\"}")
before=$(rss)
post_events "$DEAD" 500 200000
wait_backlog "$DEAD_ID" "$DEAD"
queued=$(rss)
sleep 20
after=$(rss)
attempts=$(api "http://127.0.0.1:$G/v1/webhook-endpoints/$DEAD_ID/attempts?limit=1000" | json '["attempts"].__len__()')
echo "gateway RSS: ${before} MiB before, ${queued} MiB with $DEAD queued, ${after} MiB after 20 s of attempts ($attempts attempts made)"
