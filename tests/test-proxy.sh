#!/bin/sh
# Many hosts on one machine: two kvmrund, each behind its own HAProxy that
# terminates mutual TLS (systemd/deploy/haproxy-host.cfg), and a front
# HAProxy balancing over the two with a ping health check
# (systemd/deploy/haproxy-front.cfg), both files run as shipped but for
# paths, ports and the check interval.  Certificates are made here with
# openssl.  Clients go through the front: kvmrun-client, libkvmrun
# (tests/lib-check) and the Python package.  Without KVM, runs come back
# unavailable after validation; the run that must halt needs KVM.

. "$TOP_SRCDIR/tests/lib.sh"
. "$TOP_SRCDIR/tests/lib-proxy.sh"

HELLO=$GUESTS/hello-real.bin

for tool in haproxy openssl; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "1..0 # SKIP $tool is not installed (apt-get install $tool; dev.sh does)"
		exit 0
	fi
done

make_test_dir
tls=$test_dir/tls
mkdir "$tls" || exit 99
stop_haproxy() {
	[ -n "${PROXY_PID:-}" ] || return 0
	proxy_stop
	# What HAProxy saw, when something failed.
	[ "$tap_failed" -eq 0 ] || sed 's/^/# haproxy: /' "$test_dir/haproxy.log" | tail -n 40
}
trap 'stop_haproxy; cleanup' EXIT

# --- certificates -------------------------------------------------------------
proxy_certs "$tls"
proxy_ca "$tls" other-ca
proxy_cert "$tls" stranger other-ca clientAuth

# --- two daemons, told apart by their workers ------------------------------------
start_daemon --workers 1
SOCK1=$SOCK PID1=$DAEMON_PID
start_daemon --workers 2
SOCK2=$SOCK PID2=$DAEMON_PID

# --- HAProxy from the shipped configurations -------------------------------------
set -- $(proxy_free_ports 3)
port1=$1 port2=$2 port_front=$3
# Each host on 127.0.0.2 too, for the name check.
proxy_host_config "$test_dir/host1.cfg" "$tls" 1 "127.0.0.1:$port1,127.0.0.2:$port1" "$SOCK1"
proxy_host_config "$test_dir/host2.cfg" "$tls" 2 "127.0.0.1:$port2,127.0.0.2:$port2" "$SOCK2"
proxy_front_config "$test_dir/front.cfg" "$tls" "$port_front" "127.0.0.1:$port1" \
	"127.0.0.1:$port2"
configs="$test_dir/host1.cfg $test_dir/host2.cfg $test_dir/front.cfg"
check_out=$(haproxy -c $(printf -- '-f %s ' $configs) 2>&1)
check_status=$?
if ! proxy_start "$test_dir/haproxy.log" "$port_front" "$port1" "$port2" -- $configs; then
	echo "1..0 # SKIP haproxy did not start here: $(tr '\n' ' ' <"$test_dir/haproxy.log")"
	exit 0
fi

is "$check_status" 0 "haproxy -c accepts the shipped configurations with the test's paths"
[ "$check_status" = 0 ] || diag "$check_out"
FRONT=tls://127.0.0.1:$port_front
export KVMRUN_CA="$tls/ca.pem" KVMRUN_CERT="$tls/client.crt" KVMRUN_KEY="$tls/client.key"

# --- through the front -----------------------------------------------------------
out=$("$KVMRUN_CLIENT" ping -s "$FRONT" 2>&1)
is "$?" 0 "kvmrun-client ping through the front and a host's mutual TLS"
like "$out" "kvmrund *protocol*" "the ping's answer is the daemon's"

out=$(env -u KVMRUN_CA -u KVMRUN_CERT -u KVMRUN_KEY "$KVMRUN_CLIENT" ping \
	-s "tls://localhost:$port1" --ca "$tls/ca.pem" --cert "$tls/client.crt" \
	--key "$tls/client.key" 2>&1)
is "$?" 0 "--ca, --cert and --key, to a host by its name"

out=$("$KVMRUN_CLIENT" ping -s "tls://127.0.0.2:$port1" 2>&1)
is "$?" 4 "a server whose certificate does not name the address is refused"
like "$out" "*certificate is refused for 127.0.0.2*" "  and the client says so"

out=$("$KVMRUN_CLIENT" ping -s "$FRONT" --ca "$tls/other-ca.pem" 2>&1)
is "$?" 4 "a server certificate from another CA is refused"
like "$out" "*certificate is refused*" "  and the client says so"

out=$(env -u KVMRUN_CA "$KVMRUN_CLIENT" ping -s "$FRONT" 2>&1)
is "$?" 4 "without --ca, the system's CAs do not trust the test CA"

out=$(env -u KVMRUN_CERT -u KVMRUN_KEY "$KVMRUN_CLIENT" ping -s "$FRONT" 2>&1)
is "$?" 4 "a client without a certificate is refused by HAProxy"
like "$out" "*$FRONT*" "  the message names the address"
diag "$out"

out=$("$KVMRUN_CLIENT" ping -s "$FRONT" --cert "$tls/stranger.crt" \
	--key "$tls/stranger.key" 2>&1)
is "$?" 4 "a client certificate from another CA is refused by HAProxy"
like "$out" "*refused the TLS session*" "  and the client says so"

out=$(env -u KVMRUN_KEY "$KVMRUN_CLIENT" ping -s "$FRONT" --cert "$tls/client.crt" 2>&1)
is "$?" 4 "a certificate without its key is refused before connecting"
like "$out" "*needs its key*" "  and the client says so"

out=$("$KVMRUN_CLIENT" ping -s tls://127.0.0.1 2>&1)
is "$?:$out" "4:kvmrun-client: tls://127.0.0.1: not an address tls://HOST:PORT" \
	"an address without a port is refused, naming the form"

# stats_field SOCKET FIELD: a figure of the daemon at SOCKET, asked directly.
stats_field() {
	SOCK=$1 send_lines '{"id":1,"op":"stats"}' | {
		read -r line
		json "$line" "r['stats']['$2']"
	}
}

before1=$(stats_field "$SOCK1" connections_total)
before2=$(stats_field "$SOCK2" connections_total)
workers_seen=
for i in 1 2 3 4 5 6 7 8 9 10; do
	line=$(echo '{"id":1,"op":"stats"}' | "$KVMRUN_CLIENT" raw -s "$FRONT" 2>&1)
	workers_seen="$workers_seen $(json "$line" "r['stats']['workers']")"
done
after1=$(stats_field "$SOCK1" connections_total)
after2=$(stats_field "$SOCK2" connections_total)
like "$workers_seen" "* 1*" "connections through the front reach the first daemon"
like "$workers_seen" "* 2*" "connections through the front reach the second daemon"
diag "workers of the daemon that answered:$workers_seen"
below "$before1" "$after1" "the first daemon's connections_total grows"
below "$before2" "$after2" "the second daemon's connections_total grows"

# What is lost: the daemon sees HAProxy, not the client.
if grep -q "connected: pid $PROXY_PID uid $(id -u) " "$test_dir/kvmrund-1.log"; then
	ok "the daemon's log names HAProxy's connection, not the client's"
else
	not_ok "the daemon's log names HAProxy's connection, not the client's"
	tail -n 5 "$test_dir/kvmrund-1.log" | sed 's/^/# /'
fi

# --- pipelining ------------------------------------------------------------------
# 300 requests on one connection, pings, stats and bad requests, each with
# its own id: the answers come back in order.
"$PYTHON3" -c '
for i in range(1, 301):
    op = ("ping", "stats", "no-such-op")[i % 3]
    print("{\"id\":%d,\"op\":\"%s\"}" % (i, op))
' >"$test_dir/pipeline.in"
"$KVMRUN_CLIENT" raw -s "$FRONT" <"$test_dir/pipeline.in" >"$test_dir/pipeline.out" 2>&1
ids=$("$PYTHON3" -c '
import json, sys
print(" ".join(str(json.loads(l)["id"]) for l in open(sys.argv[1])))
' "$test_dir/pipeline.out" 2>&1)
is "$ids" "$(seq -s ' ' 1 300)" "300 pipelined requests through TLS and HAProxy: answers in order"

# libkvmrun: runs, pings and stats through a window of 3, answers checked
# against their ids by the library: the same as straight to a daemon.
direct=$("$TOP_BUILDDIR/tests/lib-check" pipeline "$SOCK1" "$HELLO" 10 3 2>&1)
out=$("$TOP_BUILDDIR/tests/lib-check" pipeline "$FRONT" "$HELLO" 10 3 2>&1)
like "$direct" "window full at 3 pending*ping ok*stats ok*" "libkvmrun pipelines on the socket"
is "$out" "$direct" "libkvmrun pipelines through the front the same, \$KVMRUN_CA/CERT/KEY its files"

# --- Python ----------------------------------------------------------------------
out=$(env -u KVMRUN_CA -u KVMRUN_CERT -u KVMRUN_KEY PYTHONPATH="$TOP_SRCDIR/client/python" \
	"$PYTHON3" - "$FRONT" "$tls" <<'EOF' 2>&1
import asyncio, sys
import kvmrun

address, tls = sys.argv[1], sys.argv[2]
files = dict(ca=tls + "/ca.pem", cert=tls + "/client.crt", key=tls + "/client.key")
with kvmrun.Client(address, **files) as c:
    print("sync", c.ping().protocol > 0)
    # 3 MB out through TLS in many records: HLT, then zeros.
    try:
        print("big", c.run(b"\xf4" + bytes(3_000_000), mode="real",
                           memory_size=4 << 20).exit.reason)
    except kvmrun.Unavailable:
        print("big hlt")

async def main() -> None:
    async with kvmrun.AsyncClient(address, **files) as c:
        print("async", (await c.stats()).workers in (1, 2))

asyncio.run(main())
try:
    with kvmrun.Client(address, ca=files["ca"]) as c:
        c.ping()
    print("no certificate: answered")
except kvmrun.KvmrunError as e:
    print("no certificate:", type(e).__name__)
for bad in ("tls://no-port", "tls://host:", "tls://:7878"):
    try:
        kvmrun.Client(bad, **files)
        print(bad, "taken")
    except ValueError:
        pass
try:
    kvmrun.Client(address, ca=files["ca"], cert=files["cert"])
except ValueError as e:
    print("cert without key:", e)
EOF
)
is "$out" "sync True
big hlt
async True
no certificate: Disconnected
cert without key: a client certificate needs its key and a key its certificate: give both or neither" "the Python package: Client and AsyncClient over tls://, refused without a certificate"

# --- runs --------------------------------------------------------------------------
out=$("$KVMRUN_CLIENT" run "$HELLO" --mode real -s "$FRONT" 2>&1)
status=$?
if have_kvm; then
	is "$status" 0 "a run through the front halts"
	like "$out" "*Hello, world!*" "  with the guest's console output"
else
	is "$status" 5 "a run through the front is validated and answered unavailable"
	like "$out" "*unavailable*" "  the daemon's answer"
	skip "a run through the front halts" "$KVM_REASON"
fi

{ printf '\364'; head -c 3000000 /dev/zero; } >"$test_dir/big.bin"
out=$("$KVMRUN_CLIENT" run "$test_dir/big.bin" --mode real --memory 4M -s "$FRONT" 2>&1)
status=$?
if have_kvm; then
	is "$status" 0 "a 3 MB image through the front halts"
else
	is "$status:$(echo "$out" | grep -c unavailable)" "5:1" \
		"a 3 MB image goes through TLS whole: validated, then unavailable"
fi

# --- one daemon gone ---------------------------------------------------------------
DAEMON_PID=$PID2
stop_daemon
is "$?" 0 "the second daemon stops"
# The front finds out within fall x inter (2 x 200 ms); until then a
# connection may still reach the host whose daemon is gone.
"$PYTHON3" -c 'import time; time.sleep(1.5)'
answers=
for i in 1 2 3 4 5 6 7 8 9 10; do
	line=$(echo '{"id":1,"op":"stats"}' | "$KVMRUN_CLIENT" raw -s "$FRONT" 2>&1)
	answers="$answers $(json "$line" "r['stats']['workers']" 2>/dev/null || echo failed)"
done
is "$answers" " 1 1 1 1 1 1 1 1 1 1" "with one daemon stopped, the other serves every connection"
if grep -q 'host2 is DOWN' "$test_dir/haproxy.log"; then
	ok "the front's ping check took the host out"
else
	not_ok "the front's ping check took the host out"
	sed 's/^/# /' "$test_dir/haproxy.log" | tail -n 20
fi

done_testing
