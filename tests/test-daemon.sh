#!/bin/sh
# kvmrund end to end on a real socket: ping and stats, the hello-world guest
# in every mode, each request field, each exit reason, pipelining, parallel
# clients, every error code with its message, clients that leave or stall,
# startup refusals, and a stop by SIGTERM with runs in flight.

. "${TOP_SRCDIR:-.}/tests/lib.sh"

need_kvm

HELLO='Hello, world!\n'
DUMP_400=',"dump":[{"address":1024,"length":1}]'

start_daemon --workers 2
MAIN_SOCK=$SOCK
# Everything below runs under the filter, unless a tool or the build forbids it.
if [ -n "$(filter_off)" ]; then
	skip "the daemon serves under its seccomp filter" "$(filter_off)"
else
	like "$(cat "$DAEMON_LOG")" '*<6>main: seccomp filter installed*' \
		"the daemon serves under its seccomp filter"
fi

# --- ping and stats -------------------------------------------------------
version=$("$KVMRUND" --version | sed -n 's/^kvmrund \([^ ]*\).*/\1/p')
r=$(send_lines '{"id":"p","op":"ping"}')
is "$(json "$r" 'r["id"], r["ok"], r["version"], r["protocol"], r["kvm_api"]')" \
	"[\"p\", true, \"$version\", 2, 12]" "ping: id, version $version, protocol 2, kvm_api 12"

r=$(send_lines '{"id":2,"op":"stats"}')
is "$(json "$r" 'r["ok"], r["stats"]["workers"], r["stats"]["runs_in_flight"],
	sorted(r["stats"]["runs"]), sorted(r["stats"]["errors"])')" \
	'[true, 2, 0, ["cancelled", "exception", "fail_entry", "hlt", "internal_error", "io", "mmio", "other", "output_limit", "shutdown", "timeout"], ["bad_request", "busy", "forbidden", "internal", "too_large", "unsupported"]]' \
	"stats: workers, runs by exit reason, errors by code"

# --- hello world in the four modes --------------------------------------
for mode in real protected paged long; do
	r=$(send_lines "$(run_request "\"$mode\"" "$GUESTS/hello-$mode.bin" $mode "$DUMP_400")")
	if [ "$(json "$r" 'r.get("error", {}).get("code", "")')" = unsupported ]; then
		skip "hello-$mode" "$(json "$r" 'r["error"]["message"]')"
		continue
	fi
	is "$(json "$r" 'r["id"], r["ok"], r["exit"]["reason"], r["console"], r["dump"]')" \
		"[\"$mode\", true, \"hlt\", \"$HELLO\", [{\"address\": 1024, \"data\": \"Kg==\"}]]" \
		"hello-$mode: console, hlt, 42 at 0x400"
done

# --- every request field ------------------------------------------------
# The real-mode guest moved to 0x1000: cs and ds point there, so its 42 lands
# at 0x1400; a region at 0x8000 comes back unchanged through dump.
r=$(send_lines "$(run_request 1 "$GUESTS/hello-real.bin" real \
	',"load_address":4096,"segments":{"cs":256,"ds":256},"regs":{"rip":0,"rsp":16384},
	"memory_size":1048576,"timeout_ms":5000,"log_ports":[128],
	"regions":[{"address":32768,"data":"AAECAw=="}],
	"dump":[{"address":5120,"length":1},{"address":32768,"length":4}]')")
is "$(json "$r" 'r["ok"], r["exit"]["reason"], r["console"], r["dump"], r["sregs"]["cs"]["base"]')" \
	"[true, \"hlt\", \"$HELLO\", [{\"address\": 5120, \"data\": \"Kg==\"}, {\"address\": 32768, \"data\": \"AAECAw==\"}], 4096]" \
	"load_address, segments, regs, memory_size, timeout_ms, regions, dump"

r=$(send_lines "$(run_request 1 "$GUESTS/regs-real.bin" real \
	',"regs":{"rax":287454020,"rsi":1234},"dump":[{"address":1536,"length":4}]')")
is "$(json "$r" 'r["exit"]["reason"], r["regs"]["rax"], r["regs"]["rsi"], r["dump"][0]["data"]')" \
	'["hlt", 287454020, 1234, "RDMiEQ=="]' "regs reach the guest and come back"

r=$(send_lines "$(run_request 1 "$GUESTS/out-port-real.bin" real ',"log_ports":[128]')")
is "$(json "$r" 'r["exit"]["reason"], [(e["port"], e["value"]) for e in r["io_log"]],
	r["regs"]["rbx"] & 255')" '["hlt", [[128, 66], [128, 67]], 255]' \
	"log_ports: both writes logged, the read gets 0xff"

# --- exit reasons -------------------------------------------------------
r=$(send_lines "$(run_request 1 "$GUESTS/loop-real.bin" real ',"timeout_ms":100')")
is "$(json "$r" 'r["exit"]["reason"]')" timeout "exit timeout (loop-real, timeout_ms 100)"

r=$(send_lines "$(run_request 1 "$GUESTS/out-port-real.bin" real)")
is "$(json "$r" 'r["exit"]["reason"], r["exit"]["port"]')" '["io", 128]' "exit io (out-port-real)"

r=$(send_lines "$(run_request 1 "$GUESTS/mmio-protected.bin" protected)")
is "$(json "$r" 'r["exit"]["reason"], r["exit"]["address"]')" '["mmio", 268435456]' \
	"exit mmio (mmio-protected)"

r=$(send_lines "$(run_request 1 "$GUESTS/triple-fault-protected.bin" protected)")
is "$(json "$r" 'r["exit"]["reason"]')" shutdown "exit shutdown (triple-fault-protected)"

# --- pipelining and parallel clients -------------------------------------
set --
for i in $(seq 1 20); do
	if [ $((i % 2)) -eq 0 ]; then
		set -- "$@" "$(run_request $i "$GUESTS/hello-real.bin" real)"
	else
		set -- "$@" "{\"id\":$i,\"op\":\"ping\"}"
	fi
done
r=$(send_lines "$@")
is "$(printf '%s\n' "$r" | "$PYTHON3" -c '
import json, sys
print([json.loads(l)["id"] for l in sys.stdin])')" "$(seq -s ', ' 1 20 | sed 's/.*/[&]/')" \
	"20 pipelined requests in one write answered in order"

pids=
for i in $(seq 1 20); do
	send_lines "$(run_request $i "$GUESTS/hello-real.bin" real)" >"$test_dir/par.$i" &
	pids="$pids $!"
done
wait $pids
n=$(cat "$test_dir"/par.* | grep -c '"reason":"hlt"')
is "$n" 20 "20 clients at once all answered"

# --- errors, each with its code and message ------------------------------

# error_text LINE: "ID CODE: MESSAGE" of an error answer.
error_text() {
	json "$1" '"%s %s: %s" % (r["id"], r["error"]["code"], r["error"]["message"])'
}

r=$(send_lines '{"id":7,"op":"fly"}')
like "$(error_text "$r")" '7 bad_request: op: *fly*' \
	"bad_request: unknown op, the message names the field"
r=$(send_lines "$(run_request 8 "$GUESTS/hello-real.bin" real ',"memory_size":1073741824')")
like "$(error_text "$r")" '8 too_large: memory_size:*--max-memory*' \
	"too_large: memory_size over --max-memory"
r=$(send_lines "$(run_request 9 "$GUESTS/hello-real.bin" real ',"timeout_ms":3600000')")
like "$(error_text "$r")" '9 too_large: timeout_ms:*--max-timeout-ms*' \
	"too_large: timeout_ms over --max-timeout-ms"
r=$(send_lines 'not json')
like "$(error_text "$r")" 'None bad_request: *' "bad_request: not JSON, id null"

if [ "$(json "$(send_lines "$(run_request 1 "$GUESTS/hello-paged.bin" paged)")" \
	'r.get("error", {}).get("code", "")')" = unsupported ]; then
	ok "unsupported: paged mode on this host"
else
	skip "unsupported" "this host runs every mode"
fi
# internal: test-hostile.sh makes KVM_CREATE_VM fail by using up descriptors.

# A small daemon for the limits.
start_daemon --workers 1 --queue 1 --max-line 1K --max-connections 2 \
	--read-timeout-ms 300 --max-total-memory 4M --max-memory 4M --max-output 8K
LIMIT_SOCK=$SOCK

long=$("$PYTHON3" -c 'print("{\"id\":1,\"pad\":\"" + "x" * 2000 + "\"}")')
r=$(send_lines '{"id":1,"op":"ping"}' "$long" '{"id":3,"op":"ping"}')
is "$(printf '%s\n' "$r" | "$PYTHON3" -c '
import json, sys
print([(json.loads(l)["id"], json.loads(l).get("error", {}).get("code")) for l in sys.stdin])')" \
	"[(1, None), (None, 'too_large')]" \
	"too_large: a line over --max-line is answered after the earlier ones, then closed"
like "$(printf '%s\n' "$r" | tail -n 1)" '*--max-line*' "too_large message names --max-line"

slow=$(run_request 0 "$GUESTS/loop-real.bin" real ',"timeout_ms":1000,"memory_size":65536')
r=$(send_lines "$slow" "$slow" "$slow" "$slow")
like "$r" '*"code":"busy"*--queue*' "busy: queue full with --workers 1 --queue 1, naming --queue"

big=$(run_request 0 "$GUESTS/loop-real.bin" real ',"timeout_ms":500,"memory_size":4194304')
r=$(send_lines "$big" "$big")
like "$r" '*"code":"busy"*--max-total-memory*' "busy: memory over --max-total-memory"

r=$("$PYTHON3" - "$SOCK" <<'EOF'
import socket, sys, time
held = [socket.socket(socket.AF_UNIX) for _ in range(2)]
for s in held:
    s.connect(sys.argv[1])
time.sleep(0.2)
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
s.connect(sys.argv[1])
print(s.makefile().readline().strip())
EOF
)
like "$r" '{"id":null,"ok":false,"error":{"code":"busy",*--max-connections*' \
	"busy: a connection past --max-connections gets one line"

r=$("$PYTHON3" - "$SOCK" <<'EOF'
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
s.connect(sys.argv[1])
s.sendall(b'{"id":1,"op":"ping"}\n{"id":2,')
start = time.monotonic()
lines = s.makefile().read().splitlines()
print(len(lines), lines[-1] if lines else "", round(time.monotonic() - start))
EOF
)
like "$r" '2 *bad_request*--read-timeout-ms* 0' \
	"a line left unfinished: bad_request naming --read-timeout-ms, then closed"

r=$("$PYTHON3" - "$SOCK" <<'EOF'
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(sys.argv[1])
try:
    s.sendall(b'{"id":1,"op":"ping"}\n' * 20000)
except OSError:
    pass  # dropped while still sending: what the test wants
time.sleep(0.5)
data = b""
while True:
    try:
        chunk = s.recv(1 << 16)
    except ConnectionResetError:
        break
    if not chunk:
        break
    data += chunk
print(data.count(b"\n") < 20000)
EOF
)
is "$r" True "a client that does not read is dropped past --max-output"

r=$(SOCK=$LIMIT_SOCK send_lines '{"id":1,"op":"stats"}')
is "$(json "$r" 'r["stats"]["connections_open"]')" 1 "the limited daemon still serves"

# --- clients that leave ---------------------------------------------------
SOCK=$MAIN_SOCK
# The client leaves (killed) once its run is surely running.
"$PYTHON3" - "$SOCK" "$(run_request 1 "$GUESTS/loop-real.bin" real ',"timeout_ms":5000')" <<'EOF' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\n")
time.sleep(60)
EOF
leaver=$!
wait_runs 1
kill $leaver
wait $leaver
r=$(SEND_TIMEOUT=2 send_lines '{"id":1,"op":"ping"}')
is "$(json "$r" 'r["ok"]')" true "a client gone mid-run: the daemon keeps serving"
sleep 0.3
r=$(send_lines '{"id":1,"op":"stats"}')
is "$(json "$r" 'r["stats"]["runs"]["cancelled"], r["stats"]["runs_in_flight"]')" '[1, 0]' \
	"its run was cancelled, not left to time out"

# --- the protocol example ---------------------------------------------------
if [ -f "$TOP_SRCDIR/tests/protocol-example.py" ]; then
	if out=$("$PYTHON3" "$TOP_SRCDIR/tests/protocol-example.py" "$SOCK" \
		"$GUESTS/hello-real.bin" 2>&1); then
		ok "protocol-example.py"
	else
		not_ok "protocol-example.py"
		diag "$out"
	fi
else
	skip "protocol-example.py" "not written yet"
fi

# --- VMs made ahead: --prepared-vms ---------------------------------------
# vm_count: the VMs the daemon holds.
vm_count() {
	ls -l "/proc/$DAEMON_PID/fd" | grep -c 'anon_inode:kvm-vm'
}
# settle_vms COUNT: waits up to 5 s for the daemon to hold COUNT VMs, since
# a worker makes its next VM and tears the used one down after answering.
settle_vms() {
	_deadline=$(($(date +%s) + 5))
	while [ "$(vm_count)" -ne "$1" ] && [ "$(date +%s)" -lt "$_deadline" ]; do
		sleep 0.05
	done
	vm_count
}

start_daemon --workers 1 --prepared-vms 2 --max-total-memory 6M --max-memory 4M
send_lines '{"id":1,"op":"ping"}' >/dev/null
is "$(vm_count)" 2 "--prepared-vms 2: two VMs made before the daemon answers"
hello=$(run_request 0 "$GUESTS/hello-real.bin" real "$DUMP_400")
r=$(send_lines "$hello" "$hello" "$hello")
is "$(printf '%s\n' "$r" | grep -c '"reason":"hlt".*"data":"Kg=="')" 3 \
	"three runs on VMs made ahead: each halts with its own 42 at 0x400"
is "$(settle_vms 2)" 2 "used VMs torn down, two made ahead again"
big=$(run_request 0 "$GUESTS/hello-real.bin" real ',"memory_size":4194304')
is "$(json "$(send_lines "$big")" 'r["exit"]["reason"]')" hlt \
	"a 4M run gets its VM on demand, prepared VMs giving up the room"
is "$(settle_vms 2)" 2 "then the VMs made ahead come back"
stop_daemon TERM

start_daemon --workers 1 --prepared-vms 0
send_lines '{"id":1,"op":"ping"}' >/dev/null
is "$(vm_count)" 0 "--prepared-vms 0: no VM before a request"
is "$(json "$(send_lines "$hello")" 'r["exit"]["reason"]')" hlt "and runs still work"
stop_daemon TERM

"$KVMRUND" --prepared-vms 65 >/dev/null 2>"$test_dir/err"
like "$? $(cat "$test_dir/err")" '2 *--prepared-vms*' "--prepared-vms past 64: exit 2 naming it"

# --- startup refusals -------------------------------------------------------
"$KVMRUND" --workers 0 >/dev/null 2>"$test_dir/err"
is "$?" 2 "bad option value: exit 2"
like "$(cat "$test_dir/err")" '*--workers*' "the message names the option"

"$KVMRUND" --socket "$test_dir/k.sock" --kvm "$test_dir/no-kvm" 2>"$test_dir/err"
is "$?" 1 "missing KVM device: exit 1"

"$KVMRUND" --socket "$MAIN_SOCK" 2>"$test_dir/err"
rc=$?
like "$rc $(cat "$test_dir/err")" '1 *already in use*' "a socket in use is refused"

echo data >"$test_dir/file"
"$KVMRUND" --socket "$test_dir/file" 2>"$test_dir/err"
rc=$?
like "$rc $(cat "$test_dir/file") $(cat "$test_dir/err")" '1 data *not a socket*' \
	"a path that is no socket is refused and left alone"

"$PYTHON3" -c '
import socket, sys
socket.socket(socket.AF_UNIX).bind(sys.argv[1])
' "$test_dir/stale.sock"
"$KVMRUND" --socket "$test_dir/stale.sock" --socket-mode 0600 2>"$test_dir/err" &
DAEMON_PID=$!
daemon_pids="$daemon_pids $DAEMON_PID"
if wait_socket "$test_dir/stale.sock"; then
	like "$(stat -c %a "$test_dir/stale.sock") $(cat "$test_dir/err")" \
		'600 *removed the stale socket*' "a stale socket is replaced, --socket-mode applied"
else
	not_ok "a stale socket is replaced"
fi
stop_daemon TERM

# --- stopping with runs in flight ---------------------------------------
start_daemon --workers 2
slow=$(run_request 0 "$GUESTS/loop-real.bin" real ',"timeout_ms":700')
send_lines "$slow" "$slow" "$slow" >"$test_dir/stop.out" &
client=$!
wait_runs 3
sock=$SOCK
stop_daemon TERM
is "$?" 0 "SIGTERM with runs in flight: exit 0"
wait $client
is "$(grep -c '"reason":"timeout"' "$test_dir/stop.out")" 3 "every run in flight answered"
if [ -e "$sock" ]; then
	not_ok "the socket file is removed"
else
	ok "the socket file is removed"
fi

start_daemon --workers 1
slow=$(run_request 0 "$GUESTS/loop-real.bin" real ',"timeout_ms":10000')
SEND_TIMEOUT=30 send_lines "$slow" "$slow" >"$test_dir/force.out" &
client=$!
sleep 0.3
kill -TERM "$DAEMON_PID"
sleep 0.2
started=$(date +%s)
stop_daemon INT
rc=$?
like "$rc $(($(date +%s) - started))" '0 [01]' \
	"a second signal exits at once, cancelling the runs in flight"
wait $client

# --- systemd: notify, watchdog and socket activation -------------------
export NOTIFY_SOCKET="$test_dir/notify" WATCHDOG_USEC=200000
"$PYTHON3" - "$NOTIFY_SOCKET" >"$test_dir/notify.out" <<'EOF' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(10)
seen = set()
try:
    while "STOPPING" not in seen:
        for line in s.recv(4096).decode().splitlines():
            key = line.split("=")[0]
            if key not in seen:
                seen.add(key)
                print(line)
except socket.timeout:
    pass
EOF
listener=$!
while [ ! -S "$NOTIFY_SOCKET" ]; do
	sleep 0.05
done
start_daemon
sleep 0.5
stop_daemon TERM
wait $listener
unset NOTIFY_SOCKET WATCHDOG_USEC
notes=$(sort "$test_dir/notify.out" | tr '\n' ' ')
like "$notes" "READY=1 STATUS=serving on $SOCK, * STOPPING=1 WATCHDOG=1 " \
	"sd_notify: READY=1, STATUS=, WATCHDOG=1 at half WATCHDOG_USEC, STOPPING=1"

if [ -x "${SYSTEMD_SOCKET_ACTIVATE:-no}" ]; then
	SOCK="$test_dir/activated.sock"
	"$SYSTEMD_SOCKET_ACTIVATE" -l "$SOCK" "$KVMRUND" 2>"$test_dir/activated.log" &
	DAEMON_PID=$!
	daemon_pids="$daemon_pids $DAEMON_PID"
	wait_socket "$SOCK"
	r=$(send_lines '{"id":1,"op":"ping"}')
	is "$(json "$r" 'r["ok"]')" true "socket activation: serves on the socket systemd passed"
	stop_daemon TERM
	is "$?" 0 "socket activation: stops with 0"

	"$SYSTEMD_SOCKET_ACTIVATE" -l "$test_dir/a.sock" -l "$test_dir/b.sock" "$KVMRUND" \
		2>"$test_dir/err" &
	DAEMON_PID=$!
	daemon_pids="$daemon_pids $DAEMON_PID"
	wait_socket "$test_dir/a.sock"
	wait "$DAEMON_PID"
	like "$? $(cat "$test_dir/err")" '1 *expected one socket from systemd, got 2*' \
		"socket activation: two sockets are refused"

	"$SYSTEMD_SOCKET_ACTIVATE" --datagram -l "$test_dir/d.sock" "$KVMRUND" \
		2>"$test_dir/err" &
	DAEMON_PID=$!
	daemon_pids="$daemon_pids $DAEMON_PID"
	while [ ! -S "$test_dir/d.sock" ]; do
		sleep 0.05
	done
	"$PYTHON3" -c '
import socket, sys
socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b"x", sys.argv[1])
' "$test_dir/d.sock"
	wait "$DAEMON_PID"
	like "$? $(cat "$test_dir/err")" '1 *not a listening Unix stream socket*' \
		"socket activation: a datagram socket is refused"
else
	skip "socket activation" "systemd-socket-activate not found"
fi


# --- the request-size limits each have a flag the error names ------------
start_daemon --max-regions 1 --max-dumps 1 --max-dump-bytes 8 --max-log-ports 1
img=$(base64 -w0 <"$GUESTS/hello-real.bin")
for case in \
	'regions:--max-regions:"regions":[{"address":4096,"data":"AA=="},{"address":8192,"data":"AA=="}]' \
	'dump:--max-dumps:"dump":[{"address":0,"length":1},{"address":8,"length":1}]' \
	'dump:--max-dump-bytes:"dump":[{"address":0,"length":9}]' \
	'log_ports:--max-log-ports:"log_ports":[128,129]'; do
	field=${case%%:*}
	rest=${case#*:}
	option=${rest%%:*}
	fields=${rest#*:}
	r=$(send_lines "{\"id\":1,\"image\":\"$img\",$fields}")
	like "$(json "$r" 'r["error"]["code"] + " " + r["error"]["message"]')" \
		"too_large $field*($option)*" "$option: a request past it is too_large naming it"
done
r=$(send_lines "{\"id\":2,\"image\":\"$img\",\"log_ports\":[128],\"dump\":[{\"address\":1024,\"length\":8}]}")
is "$(json "$r" 'r["exit"]["reason"]')" hlt "a request at those limits runs"
stop_daemon

done_testing
