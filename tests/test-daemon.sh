#!/bin/sh
# kvmrund end to end on a real socket: ping and stats, the hello-world guest
# in every mode, each request field, each exit reason, pipelining, parallel
# clients, every error code with its message, clients that leave or stall,
# a host without KVM (and KVM appearing later), startup refusals and usage,
# and a stop by SIGTERM with runs in flight.
#
# Checks that need a guest to run SKIP where /dev/kvm cannot be used (see
# kvm_or_skip); everything else runs on both kinds of host.

. "${TOP_SRCDIR:-.}/tests/lib.sh"

HELLO='Hello, world!\n'
DUMP_400=',"dump":[{"address":1024,"length":1}]'

# now_ms: a monotonic clock in ms (10 ms steps), cheap enough to read
# around what a time bound (times $TIME_SCALE) measures.
now_ms() {
	awk '{ printf "%d\n", $1 * 1000 }' /proc/uptime
}

# wait_path_socket PATH [SECONDS]: until PATH is a socket file (default 5 s).
wait_path_socket() {
	_deadline=$(($(date +%s) + ${2:-5}))
	until [ -S "$1" ]; do
		[ "$(date +%s)" -lt "$_deadline" ] || return 1
		sleep 0.05
	done
}

# refused OPTION...: runs a kvmrund that is to exit at once (a refusal,
# --help), stdout to $test_dir/out and stderr to $test_dir/err; returns its
# exit status, 137 when it had to be killed after 10 s because it served.
refused() {
	"$KVMRUND" "$@" >"$test_dir/out" 2>"$test_dir/err" &
	wait_exit $! 10
}

start_daemon --workers 2
MAIN_SOCK=$SOCK
MAIN_LOG=$DAEMON_LOG
# Everything below runs under the filter, unless a tool or the build forbids it.
if [ -n "$(filter_off)" ]; then
	skip "the daemon serves under its seccomp filter" "$(filter_off)"
else
	like "$(cat "$DAEMON_LOG")" '*<6>main: seccomp filter installed*' \
		"the daemon serves under its seccomp filter"
fi

# --- ping and stats -------------------------------------------------------
version=$("$KVMRUND" --socket "$test_dir/v.sock" --version | sed -n 's/^kvmrund \([^ ]*\).*/\1/p')
if have_kvm; then api=12; else api=null; fi
r=$(send_lines '{"id":"p","op":"ping"}')
is "$(json "$r" 'r["id"], r["ok"], r["version"], r["protocol"], r["kvm_api"]')" \
	"[\"p\", true, \"$version\", 3, $api]" "ping: id, version $version, protocol 3, kvm_api $api"
if have_kvm; then
	is "$(json "$r" 'r["kvm"]["available"], r["kvm"]["api_version"],
		[m for m in ("real", "protected", "long") if m in r["kvm"]["modes"]],
		"reason" in r["kvm"]')" \
		'[true, 12, ["real", "protected", "long"], false]' \
		"ping with KVM: available, api_version 12, modes real protected long"
else
	is "$(json "$r" 'r["kvm"]')" \
		"{\"available\": false, \"reason\": \"$KVM_REASON\"}" \
		"ping without KVM: not available, reason $KVM_REASON"
fi

r=$(send_lines '{"id":2,"op":"stats"}')
is "$(json "$r" 'r["ok"], r["stats"]["workers"], r["stats"]["runs_in_flight"],
	sorted(r["stats"]["runs"]), sorted(r["stats"]["errors"])')" \
	'[true, 2, 0, ["cancelled", "exception", "fail_entry", "hlt", "internal_error", "io", "mmio", "other", "output_limit", "shutdown", "step_limit", "timeout"], ["bad_request", "busy", "forbidden", "internal", "too_large", "unavailable", "unsupported"]]' \
	"stats: workers, runs by exit reason, errors by code"
STEPS='"loop_to_parser", "parse", "parser_to_loop", "dispatch", "loop_to_worker", "vm_get", "image_copy", "vcpu_setup", "first_entry", "run", "collect", "format", "worker_to_loop", "write"'
is "$(json "$r" 'list(r["stats"]["steps_ns"]), sorted(set(r["stats"]["steps_ns"].values()))')" \
	"[[\"runs\", $STEPS], [0]]" "stats: steps_ns has runs and every step, all 0 before any run"

# --- hello world in the four modes --------------------------------------
if kvm_or_skip "hello-real: console, hlt, 42 at 0x400" \
	"hello-protected: console, hlt, 42 at 0x400" \
	"hello-paged: console, hlt, 42 at 0x400" \
	"hello-long: console, hlt, 42 at 0x400"; then
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
fi

# --- every request field ------------------------------------------------
# The real-mode guest moved to 0x1000: cs and ds point there, so its 42 lands
# at 0x1400; a region at 0x8000 comes back unchanged through dump.  Without
# KVM the same request must pass validation and be answered unavailable.
r=$(send_lines "$(run_request 1 "$GUESTS/hello-real.bin" real \
	',"load_address":4096,"segments":{"cs":256,"ds":256},"regs":{"rip":0,"rsp":16384},
	"memory_size":1048576,"timeout_ms":5000,"log_ports":[128],
	"regions":[{"address":32768,"data":"AAECAw=="}],
	"dump":[{"address":5120,"length":1},{"address":32768,"length":4}]')")
if have_kvm; then
	is "$(json "$r" 'r["ok"], r["exit"]["reason"], r["console"], r["dump"], r["sregs"]["cs"]["base"]')" \
		"[true, \"hlt\", \"$HELLO\", [{\"address\": 5120, \"data\": \"Kg==\"}, {\"address\": 32768, \"data\": \"AAECAw==\"}], 4096]" \
		"load_address, segments, regs, memory_size, timeout_ms, regions, dump"
else
	is "$(json "$r" 'r["id"], r["ok"], r["error"]["code"], r["error"]["message"]')" \
		"[1, false, \"unavailable\", \"no usable KVM on this host: $KVM_REASON\"]" \
		"load_address, segments, regs, memory_size, timeout_ms, regions, dump: valid, answered unavailable without KVM"
fi

if kvm_or_skip "regs reach the guest and come back" \
	"log_ports: both writes logged, the read gets 0xff"; then
	r=$(send_lines "$(run_request 1 "$GUESTS/regs-real.bin" real \
		',"regs":{"rax":287454020,"rsi":1234},"dump":[{"address":1536,"length":4}]')")
	is "$(json "$r" 'r["exit"]["reason"], r["regs"]["rax"], r["regs"]["rsi"], r["dump"][0]["data"]')" \
		'["hlt", 287454020, 1234, "RDMiEQ=="]' "regs reach the guest and come back"

	r=$(send_lines "$(run_request 1 "$GUESTS/out-port-real.bin" real ',"log_ports":[128]')")
	is "$(json "$r" 'r["exit"]["reason"], [(e["port"], e["value"]) for e in r["io_log"]],
		r["regs"]["rbx"] & 255')" '["hlt", [[128, 66], [128, 67]], 255]' \
		"log_ports: both writes logged, the read gets 0xff"
fi

# A run whose answer is bulky (formatted on the worker) is counted by how it
# ended: the console flood fills 256 KiB and ends output_limit, not hlt.
if kvm_or_skip "stats count a run with a bulky answer by its exit reason"; then
	start_daemon --workers 1
	send_lines "$(run_request 1 "$GUESTS/console-flood-long.bin" long)" >/dev/null
	# Stats are taken when their line is read: ask once the run is answered.
	r=$(send_lines '{"id":2,"op":"stats"}')
	is "$(printf '%s\n' "$r" | "$PYTHON3" -c '
import json, sys
runs = json.load(sys.stdin)["stats"]["runs"]
print({k: v for k, v in runs.items() if v})')" "{'output_limit': 1}" \
		"stats count a run with a bulky answer by its exit reason"
	SOCK=$MAIN_SOCK
fi

# steps_ns: a few lone runs, one of them a line long enough for the parser
# thread (a 300 KB id), each timed by the client from its send to its answer.
if kvm_or_skip "stats' steps_ns count the runs answered" \
	"steps_ns: every step took time" "steps_ns: the steps add up to no more than the client saw"; then
	start_daemon --workers 1
	run_request '"ID"' "$GUESTS/hello-real.bin" real >"$test_dir/steps.req"
	"$PYTHON3" - "$SOCK" "$test_dir/steps.req" >"$test_dir/steps.out" <<'EOF'
import json, socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(60)
s.connect(sys.argv[1])
f = s.makefile("rb")
request = open(sys.argv[2]).read()
client_ns = 0
for run_id in ("1", "2", "3", "x" * 300000):
    line = request.replace('"ID"', json.dumps(run_id), 1).encode() + b"\n"
    start = time.monotonic_ns()
    s.sendall(line)
    answer = f.readline()
    client_ns += time.monotonic_ns() - start
    assert json.loads(answer)["ok"], answer[:200]
s.sendall(b'{"id":"s","op":"stats"}\n')
print(json.dumps({"client_ns": client_ns,
                  "steps": json.loads(f.readline())["stats"]["steps_ns"]}))
EOF
	r=$(cat "$test_dir/steps.out")
	is "$(json "$r" 'r["steps"]["runs"]')" 4 "stats' steps_ns count the runs answered"
	is "$(json "$r" '[k for k, v in r["steps"].items() if v <= 0]')" "[]" \
		"steps_ns: every step took time"
	is "$(json "$r" 'sum(v for k, v in r["steps"].items() if k != "runs") <= r["client_ns"]')" \
		true "steps_ns: the steps add up to no more than the client saw"
	SOCK=$MAIN_SOCK
fi

# --- exit reasons -------------------------------------------------------
if kvm_or_skip "exit timeout (loop-real, timeout_ms 100)" "exit io (out-port-real)" \
	"exit mmio (mmio-protected)" "exit shutdown (triple-fault-protected)"; then
	r=$(send_lines "$(run_request 1 "$GUESTS/loop-real.bin" real ',"timeout_ms":100')")
	is "$(json "$r" 'r["exit"]["reason"]')" timeout "exit timeout (loop-real, timeout_ms 100)"

	r=$(send_lines "$(run_request 1 "$GUESTS/out-port-real.bin" real)")
	is "$(json "$r" 'r["exit"]["reason"], r["exit"]["port"]')" '["io", 128]' "exit io (out-port-real)"

	r=$(send_lines "$(run_request 1 "$GUESTS/mmio-protected.bin" protected)")
	is "$(json "$r" 'r["exit"]["reason"], r["exit"]["address"]')" '["mmio", 268435456]' \
		"exit mmio (mmio-protected)"

	r=$(send_lines "$(run_request 1 "$GUESTS/triple-fault-protected.bin" protected)")
	is "$(json "$r" 'r["exit"]["reason"]')" shutdown "exit shutdown (triple-fault-protected)"
fi

# --- pipelining and parallel clients -------------------------------------
# Without KVM the runs are answered unavailable at once, between the pings:
# the order of the answers is still the order of the requests.
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
if have_kvm; then
	n=$(cat "$test_dir"/par.* | grep -c '"reason":"hlt"')
else
	n=$(cat "$test_dir"/par.* | grep -c '"code":"unavailable"')
fi
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

if kvm_or_skip "unsupported: paged mode on this host"; then
	if [ "$(json "$(send_lines "$(run_request 1 "$GUESTS/hello-paged.bin" paged)")" \
		'r.get("error", {}).get("code", "")')" = unsupported ]; then
		ok "unsupported: paged mode on this host"
	else
		skip "unsupported" "this host runs every mode"
	fi
fi
# internal: test-hostile.sh makes KVM_CREATE_VM fail by using up descriptors.

# A small daemon for the limits; --max-output holds the longest answer,
# whose returned CPU state alone may take 35K.
start_daemon --workers 1 --queue 1 --max-line 1K --max-connections 2 \
	--read-timeout-ms 300 --max-total-memory 4M --max-memory 4M --max-console 256 \
	--max-io-log 16 --max-dumps 4 --max-dump-bytes 1K --max-trace 16 --max-output 64K --write-timeout-ms 500
LIMIT_SOCK=$SOCK

long=$("$PYTHON3" -c 'print("{\"id\":1,\"pad\":\"" + "x" * 2000 + "\"}")')
r=$(send_lines '{"id":1,"op":"ping"}' "$long" '{"id":3,"op":"ping"}')
is "$(printf '%s\n' "$r" | "$PYTHON3" -c '
import json, sys
print([(json.loads(l)["id"], json.loads(l).get("error", {}).get("code")) for l in sys.stdin])')" \
	"[(1, None), (None, 'too_large')]" \
	"too_large: a line over --max-line is answered after the earlier ones, then closed"
like "$(printf '%s\n' "$r" | tail -n 1)" '*--max-line*' "too_large message names --max-line"

# Both need a run that holds its worker and its memory.
if kvm_or_skip "busy: queue full with --workers 1 --queue 1, naming --queue" \
	"busy: memory over --max-total-memory"; then
	slow=$(run_request 0 "$GUESTS/loop-real.bin" real ',"timeout_ms":1000,"memory_size":65536')
	r=$(send_lines "$slow" "$slow" "$slow" "$slow")
	like "$r" '*"code":"busy"*--queue*' "busy: queue full with --workers 1 --queue 1, naming --queue"

	big=$(run_request 0 "$GUESTS/loop-real.bin" real ',"timeout_ms":500,"memory_size":4194304')
	r=$(send_lines "$big" "$big")
	like "$r" '*"code":"busy"*--max-total-memory*' "busy: memory over --max-total-memory"
fi

# --max-total-memory counts what a run's request holds, not only its guest
# memory: 2 MiB runs carrying a 1.5 MiB region hold 5.5 MiB each (region
# as base64 and decoded), so a third does not fit in 12M.
if kvm_or_skip "busy: request payloads count against --max-total-memory"; then
	start_daemon --workers 1 --prepared-vms 0 --max-total-memory 12M
	payload=$(head -c 1500000 /dev/zero | base64 -w0)
	heavy=$(run_request 0 "$GUESTS/loop-real.bin" real \
		",\"timeout_ms\":2000,\"regions\":[{\"address\":65536,\"data\":\"$payload\"}]")
	send_lines "$heavy" >/dev/null &
	first=$!
	wait_runs 1
	send_lines "$heavy" >/dev/null &
	second=$!
	wait_runs 2
	r=$(send_lines "$heavy")
	like "$r" '*"code":"busy"*(--max-total-memory)*request payloads*' \
		"busy: request payloads count against --max-total-memory"
	wait_exit "$first" 30 >/dev/null
	wait_exit "$second" 30 >/dev/null
fi

SOCK=$LIMIT_SOCK
r=$("$PYTHON3" - "$SOCK" <<'PY'
import socket, sys, time
held = [socket.socket(socket.AF_UNIX) for _ in range(2)]
for s in held:
    s.connect(sys.argv[1])
time.sleep(0.2)
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
s.connect(sys.argv[1])
print(s.makefile().readline().strip())
PY
)
like "$r" '{"id":null,"ok":false,"error":{"code":"busy",*--max-connections*' \
	"busy: a connection past --max-connections gets one line"

# Prints the answers' count, the last answer, and the ms the close took.
r=$("$PYTHON3" - "$SOCK" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
s.connect(sys.argv[1])
s.sendall(b'{"id":1,"op":"ping"}\n{"id":2,')
start = time.monotonic()
lines = s.makefile().read().splitlines()
print(len(lines), lines[-1] if lines else "", round((time.monotonic() - start) * 1000))
PY
)
like "${r% *}" '2 *bad_request*--read-timeout-ms*' \
	"a line left unfinished: bad_request naming --read-timeout-ms, then closed"
below "${r##* }" $((500 * TIME_SCALE)) \
	"--read-timeout-ms 300: closed below $((500 * TIME_SCALE)) ms"

r=$("$PYTHON3" - "$SOCK" <<'PY'
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
PY
)
is "$r" True "a client that reads none of its answers is dropped after --write-timeout-ms"

r=$(SOCK=$LIMIT_SOCK send_lines '{"id":1,"op":"stats"}')
is "$(json "$r" 'r["stats"]["connections_open"]')" 1 "the limited daemon still serves"

# --- clients that leave ---------------------------------------------------
SOCK=$MAIN_SOCK
if kvm_or_skip "a client gone mid-run: the daemon keeps serving" \
	"its run was cancelled, not left to time out"; then
	# The client leaves (killed) once its run is surely running.
	"$PYTHON3" - "$SOCK" "$(run_request 1 "$GUESTS/loop-real.bin" real ',"timeout_ms":5000')" <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\n")
time.sleep(60)
PY
	leaver=$!
	wait_runs 1
	kill $leaver
	wait_exit $leaver 10
	r=$(SEND_TIMEOUT=2 send_lines '{"id":1,"op":"ping"}')
	is "$(json "$r" 'r["ok"]')" true "a client gone mid-run: the daemon keeps serving"
	sleep 0.3
	r=$(send_lines '{"id":1,"op":"stats"}')
	is "$(json "$r" 'r["stats"]["runs"]["cancelled"], r["stats"]["runs_in_flight"]')" '[1, 0]' \
		"its run was cancelled, not left to time out"
fi

# --- the protocol example ---------------------------------------------------
if [ -f "$TOP_SRCDIR/tests/protocol-example.py" ]; then
	out=$("$PYTHON3" "$TOP_SRCDIR/tests/protocol-example.py" "$SOCK" \
		"$GUESTS/hello-real.bin" 2>&1)
	rc=$?
	if have_kvm; then
		if [ "$rc" -eq 0 ]; then
			ok "protocol-example.py"
		else
			not_ok "protocol-example.py"
			diag "$out"
		fi
	else
		is "$rc $out" "1 kvmrund: unavailable: no usable KVM on this host: $KVM_REASON" \
			"protocol-example.py without KVM: exits 1 with the daemon's error"
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

hello=$(run_request 0 "$GUESTS/hello-real.bin" real "$DUMP_400")
if kvm_or_skip "--prepared-vms 2: two VMs made before the daemon answers" \
	"three runs on VMs made ahead: each halts with its own 42 at 0x400" \
	"used VMs torn down, two made ahead again" \
	"a 4M run gets its VM on demand, prepared VMs giving up the room" \
	"then the VMs made ahead come back"; then
	start_daemon --workers 1 --prepared-vms 2 --max-total-memory 6M --max-memory 4M
	send_lines '{"id":1,"op":"ping"}' >/dev/null
	is "$(vm_count)" 2 "--prepared-vms 2: two VMs made before the daemon answers"
	r=$(send_lines "$hello" "$hello" "$hello")
	is "$(printf '%s\n' "$r" | grep -c '"reason":"hlt".*"data":"Kg=="')" 3 \
		"three runs on VMs made ahead: each halts with its own 42 at 0x400"
	is "$(settle_vms 2)" 2 "used VMs torn down, two made ahead again"
	big=$(run_request 0 "$GUESTS/hello-real.bin" real ',"memory_size":4194304')
	is "$(json "$(send_lines "$big")" 'r["exit"]["reason"]')" hlt \
		"a 4M run gets its VM on demand, prepared VMs giving up the room"
	is "$(settle_vms 2)" 2 "then the VMs made ahead come back"
	stop_daemon TERM
fi

start_daemon --workers 1 --prepared-vms 0
send_lines '{"id":1,"op":"ping"}' >/dev/null
is "$(vm_count)" 0 "--prepared-vms 0: no VM before a request"
if kvm_or_skip "and runs still work"; then
	is "$(json "$(send_lines "$hello")" 'r["exit"]["reason"]')" hlt "and runs still work"
fi
stop_daemon TERM

refused --socket "$test_dir/pv.sock" --prepared-vms 65
like "$? $(cat "$test_dir/err")" '2 *--prepared-vms*' "--prepared-vms past 64: exit 2 naming it"

# --- startup refusals and usage -------------------------------------------
refused --socket "$test_dir/w.sock" --workers 0
is "$?" 2 "bad option value: exit 2"
like "$(cat "$test_dir/err")" '*--workers*' "the message names the option"

refused --socket "$test_dir/u.sock" stray
like "$? $(cat "$test_dir/err")" "2 kvmrund: unexpected argument stray*Try 'kvmrund --help'.*" \
	"an unexpected argument: exit 2 naming it"

refused --socket "$test_dir/m.sock" --max-total-memory 4M --max-memory 8M
like "$? $(cat "$test_dir/err")" \
	'2 kvmrund: --max-total-memory 4M is less than --max-memory 8M*' \
	"--max-total-memory below --max-memory: exit 2 saying so"

# Option sets under which an answer or a request line could never get
# through are refused at start, naming the options.
refused --socket "$test_dir/m.sock" --max-dump-bytes 64M
like "$? $(cat "$test_dir/err")" \
	'2 kvmrund: --max-output 64M is less than the longest answer a run may have, * raise --max-output or lower those*' \
	"an answer larger than --max-output (--max-dump-bytes 64M): exit 2 saying so"
refused --socket "$test_dir/m.sock" --max-buffers 64M
like "$? $(cat "$test_dir/err")" \
	'2 kvmrund: --max-buffers 64M cannot hold one request line (--max-line) and one client'"'"'s answers (--max-output)*' \
	"--max-buffers below --max-line + --max-output: exit 2 saying so"

# --max-buffers: three clients hold 1 MiB line buffers each; the fourth,
# whose line outgrows what is left, is answered busy and closed, and the
# daemon serves on.
start_daemon --max-line 1M --max-console 1K --max-io-log 16 --max-dumps 1 \
	--max-dump-bytes 1K --max-trace 16 --max-output 2M --max-buffers 3200K
r=$("$PYTHON3" - "$SOCK" <<'PY'
import socket, sys, time
held = []
for _ in range(3):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sys.argv[1])
    s.sendall(b'{"id":1,"pad":"' + b"x" * 1000000)
    held.append(s)
time.sleep(0.5)
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
s.connect(sys.argv[1])
try:
    s.sendall(b'{"id":1,"pad":"' + b"x" * 1000000)
except OSError:
    pass
print(s.makefile().readline().strip())
PY
)
like "$r" '{"id":null,"ok":false,"error":{"code":"busy","message":"request buffers of all clients full: * (--max-buffers); retry later"}}' \
	"--max-buffers: a line that outgrows the buffers left is answered busy"
is "$(json "$(send_lines '{"id":2,"op":"ping"}')" 'r["ok"]')" true \
	"--max-buffers: the daemon serves on once they are gone"

refused --socket "$test_dir/h.sock" --help
like "$? $(cat "$test_dir/out")" '0 usage: kvmrund *--socket PATH*--read-timeout-ms N*--help*' \
	"--help: exit 0, the options on stdout"
if [ -e "$test_dir/h.sock" ] || [ -s "$test_dir/err" ]; then
	not_ok "--help neither listens nor complains"
	diag "$(cat "$test_dir/err")"
else
	ok "--help neither listens nor complains"
fi

refused --socket "$MAIN_SOCK"
like "$? $(cat "$test_dir/err")" '1 *already in use*' "a socket in use is refused"

echo data >"$test_dir/file"
refused --socket "$test_dir/file"
rc=$?
like "$rc $(cat "$test_dir/file") $(cat "$test_dir/err")" '1 data *not a socket*' \
	"a path that is no socket is refused and left alone"

"$PYTHON3" -c '
import socket, sys
socket.socket(socket.AF_UNIX).bind(sys.argv[1])
' "$test_dir/stale.sock"
"$KVMRUND" --socket "$test_dir/stale.sock" --socket-mode 0600 \
	2>"$test_dir/kvmrund-stale.log" &
track_daemon $!
if wait_socket "$test_dir/stale.sock"; then
	like "$(stat -c %a "$test_dir/stale.sock") $(cat "$test_dir/kvmrund-stale.log")" \
		'600 *removed the stale socket*' "a stale socket is replaced, --socket-mode applied"
else
	not_ok "a stale socket is replaced"
fi
stop_daemon TERM

# The socket's directory is made when missing; SIGINT stops like SIGTERM.
"$KVMRUND" --socket "$test_dir/made/k.sock" 2>"$test_dir/kvmrund-made.log" &
track_daemon $!
if wait_socket "$test_dir/made/k.sock"; then
	like "$([ -d "$test_dir/made" ] && echo dir) $(cat "$test_dir/kvmrund-made.log")" \
		"dir *<6>listen: created $test_dir/made*" \
		"a missing directory for the socket is created"
else
	not_ok "a missing directory for the socket is created"
	diag "$(cat "$test_dir/kvmrund-made.log")"
fi
stop_daemon INT
rc=$?
like "$rc $([ -e "$test_dir/made/k.sock" ] && echo left) $(cat "$test_dir/kvmrund-made.log")" \
	'0  *<6>server: Interrupt: stopping;*<6>main: stopped*' \
	"SIGINT stops the daemon with 0, the socket removed"

# At exit the socket is removed only if it is still the file the daemon
# made: one put in its place meanwhile stays.
start_daemon
mv "$SOCK" "$test_dir/moved.sock"
echo other >"$SOCK"
stop_daemon TERM
is "$?:$(cat "$SOCK" 2>&1):$([ -S "$test_dir/moved.sock" ] && echo socket)" "0:other:socket" \
	"a file put where the socket was is not removed at exit"

# -v logs debug lines; without it, none.
start_daemon -v
send_lines '{"id":1,"op":"ping"}' >/dev/null
like "$(wait_log '^<7>')" '<7>*' "-v: debug lines in the log"
is "$(grep -c '^<7>' "$MAIN_LOG")" 0 "without -v: no debug line in the log"

# --read-timeout-ms 0: a begun line waits for its end as long as it takes.
start_daemon --read-timeout-ms 0
like "$(wait_log ', read-timeout-ms 0,')" '*, read-timeout-ms 0,*' "--read-timeout-ms 0 is accepted"
r=$("$PYTHON3" - "$SOCK" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.settimeout(5)
s.sendall(b'{"id":1,"op":"ping"}\n{"id":2,')
f = s.makefile("rb")
first = f.readline()
s.settimeout(1.5)
try:
    late = s.recv(1 << 16)
    print("answered early:", late)
except socket.timeout:
    s.settimeout(5)
    s.sendall(b'"op":"ping"}\n')
    s.shutdown(socket.SHUT_WR)
    lines = (first + s.makefile("rb").read()).decode().splitlines()
    print(len([l for l in lines if '"ok":true' in l]), "answers")
PY
)
is "$r" "2 answers" "--read-timeout-ms 0: a line begun 1.5 s ago is still read, not timed out"

# --- a host without KVM -----------------------------------------------------
# --kvm names what is not there, as /dev/kvm is missing on a host without
# KVM: the daemon serves all the same, checks requests as ever and answers
# the valid runs 'unavailable', saying why.
start_daemon --kvm "$test_dir/nokvm"
nokvm="$test_dir/nokvm: No such file or directory"
r=$(send_lines '{"id":1,"op":"ping"}')
is "$(json "$r" 'r["ok"], r["protocol"], r["kvm_api"], r["kvm"]')" \
	"[true, 3, null, {\"available\": false, \"reason\": \"$nokvm\"}]" \
	"--kvm missing: ping answers, KVM unavailable, the reason names the path"
r=$(send_lines "$(run_request 2 "$GUESTS/hello-real.bin" real)")
is "$(json "$r" 'r["id"], r["ok"], r["error"]["code"], r["error"]["message"]')" \
	"[2, false, \"unavailable\", \"no usable KVM on this host: $nokvm\"]" \
	"--kvm missing: a valid run is answered unavailable, with the reason"
r=$(send_lines '{"id":3,"image":')
like "$(error_text "$r")" 'None bad_request: *' "--kvm missing: a malformed line is a bad_request"
r=$(send_lines "$(run_request 4 "$GUESTS/hello-real.bin" real ',"memory_size":1073741824')")
like "$(error_text "$r")" '4 too_large: memory_size:*--max-memory*' \
	"--kvm missing: a run over --max-memory is too_large, not unavailable"
r=$(send_lines '{"id":5,"op":"stats"}')
is "$(json "$r" '[r["stats"]["errors"][e] for e in ("unavailable", "bad_request", "too_large")]')" \
	'[1, 1, 1]' "--kvm missing: stats count the unavailable answer"
out=$("$KVMRUN_CLIENT" --socket "$SOCK" "$GUESTS/hello-real.bin" 2>&1)
like "$? $out" "5 *unavailable: no usable KVM on this host: $nokvm*" \
	"--kvm missing: kvmrun-client exits 5 saying unavailable"
# Past the re-probe interval: the device is tried again and fails the same way.
sleep 1.1
r=$(send_lines '{"id":6,"op":"ping"}')
is "$(json "$r" 'r["ok"], r["kvm"]["reason"]')" "[true, \"$nokvm\"]" \
	"--kvm missing: the daemon keeps serving"
is "$(grep -c 'KVM unavailable' "$DAEMON_LOG")" 1 \
	"--kvm missing: the log says it once, not at every probe"
like "$(grep 'KVM unavailable' "$DAEMON_LOG")" \
	"<4>host: KVM unavailable: $nokvm; runs are answered 'unavailable' until it works*. To fix: load kvm_intel or kvm_amd*" \
	"--kvm missing: the log line says what to do"

# The device is probed again, at most once a second, while there is none.
start_daemon --kvm "$test_dir/kvm"
r=$(send_lines '{"id":1,"op":"ping"}')
is "$(json "$r" 'r["kvm"]["reason"]')" "$test_dir/kvm: No such file or directory" \
	"re-probe: at first the device is missing"
: >"$test_dir/kvm"
sleep 1.1
r=$(send_lines '{"id":2,"op":"ping"}')
like "$(json "$r" 'r["kvm"]["available"], r["kvm"]["reason"]')" \
	"\\[false, \"$test_dir/kvm: not a KVM device (KVM_GET_API_VERSION: *)\"\\]" \
	"re-probe: a file appearing there is tried and is not a KVM device"
is "$(grep -c 'KVM unavailable' "$DAEMON_LOG")" 2 "re-probe: a new reason is logged again"
like "$(grep 'KVM unavailable' "$DAEMON_LOG" | tail -n 1)" \
	"<4>host: KVM unavailable: $test_dir/kvm: not a KVM device *To fix: check that it is KVM's device*" \
	"re-probe: the new log line has the new reason and what to do"
if kvm_or_skip "re-probe: once the device works, a run through the client halts with Hello, world!" \
	"re-probe: ping says available" "re-probe: the log says KVM available"; then
	ln -sf /dev/kvm "$test_dir/kvm"
	sleep 1.1
	out=$("$KVMRUN_CLIENT" --socket "$SOCK" "$GUESTS/hello-real.bin" 2>&1)
	like "$? $out" '0 *Hello, world!*' \
		"re-probe: once the device works, a run through the client halts with Hello, world!"
	r=$(send_lines '{"id":3,"op":"ping"}')
	is "$(json "$r" 'r["kvm_api"], r["kvm"]["available"], r["kvm"]["api_version"]')" \
		'[12, true, 12]' "re-probe: ping says available"
	like "$(cat "$DAEMON_LOG")" "*<6>host: KVM available: $test_dir/kvm, API version 12*" \
		"re-probe: the log says KVM available"
fi

# --- stopping with runs in flight ---------------------------------------
start_daemon --workers 2
sock=$SOCK
if kvm_or_skip "SIGTERM with runs in flight: exit 0" "every run in flight answered"; then
	slow=$(run_request 0 "$GUESTS/loop-real.bin" real ',"timeout_ms":700')
	send_lines "$slow" "$slow" "$slow" >"$test_dir/stop.out" &
	client=$!
	wait_runs 3
	stop_daemon TERM
	is "$?" 0 "SIGTERM with runs in flight: exit 0"
	wait $client
	is "$(grep -c '"reason":"timeout"' "$test_dir/stop.out")" 3 "every run in flight answered"
else
	stop_daemon TERM
	is "$?" 0 "SIGTERM with nothing running: exit 0"
fi
if [ -e "$sock" ]; then
	not_ok "the socket file is removed"
else
	ok "the socket file is removed"
fi

# A second signal cancels the runs: the running one ends cancelled, the
# queued one is answered busy, and the daemon exits once those answers are
# out.
if kvm_or_skip "a second signal exits 0, saying so in the log" \
	"a second signal exits at once, once the cancelled runs are answered" \
	"a second signal: the running run ends cancelled, the queued one is answered busy"; then
	start_daemon --workers 1
	slow=$(run_request 0 "$GUESTS/loop-real.bin" real ',"timeout_ms":10000')
	SEND_TIMEOUT=30 send_lines "$slow" "$slow" >"$test_dir/force.out" &
	client=$!
	wait_runs 2
	kill -TERM "$DAEMON_PID"
	wait_log ': stopping;' >/dev/null
	started=$(now_ms)
	stop_daemon INT
	rc=$?
	elapsed=$(($(now_ms) - started))
	like "$rc $(grep 'again:' "$DAEMON_LOG")" \
		'0 <4>server: Interrupt again: cancelling 1 runs queued and 1 running; stopping once their answers are out' \
		"a second signal exits 0, saying so in the log"
	below "$elapsed" $((2000 * TIME_SCALE)) \
		"a second signal exits at once, once the cancelled runs are answered"
	wait_exit "$client" 40
	is "$(json "$(head -n 1 "$test_dir/force.out")" 'r["exit"]["reason"]') $(json "$(tail -n 1 "$test_dir/force.out")" 'r["error"]["code"]')" \
		"cancelled busy" \
		"a second signal: the running run ends cancelled, the queued one is answered busy"
fi

# No run is needed for the stop to wait: a client that leaves its answers
# unread holds it, until --write-timeout-ms drops it.  Meanwhile a new
# connection is told busy.  (hold_stop starts such a client and sends the
# daemon SIGTERM.)
hold_stop() {
	"$PYTHON3" - "$SOCK" "$test_dir/held" <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(sys.argv[1])
s.settimeout(30)
# More than the socket buffers hold: the daemon has read lines whose
# answers cannot all be written.
try:
    s.sendall(b'{"id":1,"op":"ping"}\n' * 20000)
except OSError:
    pass
open(sys.argv[2], "w").close()
time.sleep(60)
PY
	holder=$!
	deadline=$(($(date +%s) + 10 * TIME_SCALE))
	until [ -e "$test_dir/held" ] || [ "$(date +%s)" -ge "$deadline" ]; do
		sleep 0.05
	done
	rm -f "$test_dir/held"
	kill -TERM "$DAEMON_PID"
	wait_log ': stopping;' >/dev/null
}
start_daemon --workers 1 --write-timeout-ms $((3000 * TIME_SCALE))
hold_stop
# It is answered and closed at once: read, do not write (that could race
# the close).
r=$("$PYTHON3" - "$SOCK" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
s.connect(sys.argv[1])
f = s.makefile()
print(f.readline().strip(), repr(f.read()))
PY
)
is "$r" '{"id":null,"ok":false,"error":{"code":"busy","message":"kvmrund is shutting down"}} '"''" \
	"while stopping, a new connection is answered busy and closed"
started=$(now_ms)
wait_exit "$DAEMON_PID"
rc=$?
forget_daemon "$DAEMON_PID"
elapsed=$(($(now_ms) - started))
is "$rc" 0 "a stop held by a client that reads nothing: exit 0"
like "$(cat "$DAEMON_LOG")" "*read none of its * bytes of answers for $((3000 * TIME_SCALE)) ms (--write-timeout-ms); disconnecting*" \
	"that client is dropped after --write-timeout-ms, and the log says so"
below "$elapsed" $((6000 * TIME_SCALE)) \
	"the stop ends by --write-timeout-ms $((3000 * TIME_SCALE)) ($elapsed ms after the new connection)"
kill "$holder" 2>/dev/null
wait_exit "$holder" 10 >/dev/null

# A third signal exits at once, whatever still waits.
start_daemon --workers 1
hold_stop
kill -INT "$DAEMON_PID"
wait_log 'again:' >/dev/null
started=$(now_ms)
stop_daemon INT
rc=$?
elapsed=$(($(now_ms) - started))
like "$rc $(grep 'third time' "$DAEMON_LOG")" \
	'0 <4>server: Interrupt a third time: stopping now' \
	"a third signal while a client holds the stop: exit 0, saying so in the log"
below "$elapsed" $((2000 * TIME_SCALE)) \
	"a third signal exits below $((2000 * TIME_SCALE)) ms"
kill "$holder" 2>/dev/null
wait_exit "$holder" 10 >/dev/null

# --- systemd: notify, watchdog and socket activation -------------------
export NOTIFY_SOCKET="$test_dir/notify" WATCHDOG_USEC=200000
"$PYTHON3" - "$NOTIFY_SOCKET" >"$test_dir/notify.out" <<'PY' &
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
PY
listener=$!
wait_path_socket "$NOTIFY_SOCKET" || diag "the notify listener did not bind"
start_daemon
sleep 0.5
stop_daemon TERM
wait_exit $listener 15
unset NOTIFY_SOCKET WATCHDOG_USEC
notes=$(sort "$test_dir/notify.out" | tr '\n' ' ')
like "$notes" "READY=1 STATUS=serving on $SOCK, * STOPPING=1 WATCHDOG=1 " \
	"sd_notify: READY=1, STATUS=, WATCHDOG=1 at half WATCHDOG_USEC, STOPPING=1"

# Each gets a --socket of its own, which the one systemd passes overrides.
if [ -x "${SYSTEMD_SOCKET_ACTIVATE:-no}" ]; then
	SOCK="$test_dir/activated.sock"
	"$SYSTEMD_SOCKET_ACTIVATE" -l "$SOCK" "$KVMRUND" --socket "$test_dir/not-this.sock" \
		2>"$test_dir/kvmrund-activated.log" &
	track_daemon $!
	wait_socket "$SOCK"
	r=$(send_lines '{"id":1,"op":"ping"}')
	is "$(json "$r" 'r["ok"]')" true "socket activation: serves on the socket systemd passed"
	stop_daemon TERM
	is "$?" 0 "socket activation: stops with 0"

	"$SYSTEMD_SOCKET_ACTIVATE" -l "$test_dir/a.sock" -l "$test_dir/b.sock" "$KVMRUND" \
		--socket "$test_dir/not-this.sock" 2>"$test_dir/err" &
	track_daemon $!
	wait_socket "$test_dir/a.sock"
	wait_exit "$DAEMON_PID" 10
	like "$? $(cat "$test_dir/err")" '1 *expected one socket from systemd, got 2*' \
		"socket activation: two sockets are refused"
	forget_daemon "$DAEMON_PID"

	"$SYSTEMD_SOCKET_ACTIVATE" --datagram -l "$test_dir/d.sock" "$KVMRUND" \
		--socket "$test_dir/not-this.sock" 2>"$test_dir/err" &
	track_daemon $!
	wait_path_socket "$test_dir/d.sock"
	"$PYTHON3" -c '
import socket, sys
socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b"x", sys.argv[1])
' "$test_dir/d.sock"
	wait_exit "$DAEMON_PID" 10
	like "$? $(cat "$test_dir/err")" '1 *not a listening Unix stream socket*' \
		"socket activation: a datagram socket is refused"
	forget_daemon "$DAEMON_PID"
else
	skip "socket activation" "systemd-socket-activate not found"
fi


# --- the request-size limits each have a flag the error names ------------
start_daemon --max-regions 1 --max-dumps 1 --max-dump-bytes 8 --max-log-ports 1 \
	--max-instructions 5 --max-cpuid-entries 1
img=$(base64 -w0 <"$GUESTS/hello-real.bin")
for case in \
	'regions:--max-regions:"regions":[{"address":4096,"data":"AA=="},{"address":8192,"data":"AA=="}]' \
	'dump:--max-dumps:"dump":[{"address":0,"length":1},{"address":8,"length":1}]' \
	'dump:--max-dump-bytes:"dump":[{"address":0,"length":9}]' \
	'log_ports:--max-log-ports:"log_ports":[128,129]' \
	'max_instructions:--max-instructions:"max_instructions":6' \
	'cpuid:--max-cpuid-entries:"cpuid":[{"function":0,"eax":0,"ebx":0,"ecx":0,"edx":0},{"function":1,"eax":0,"ebx":0,"ecx":0,"edx":0}]'; do
	field=${case%%:*}
	rest=${case#*:}
	option=${rest%%:*}
	fields=${rest#*:}
	r=$(send_lines "{\"id\":1,\"image\":\"$img\",$fields}")
	like "$(json "$r" 'r["error"]["code"] + " " + r["error"]["message"]')" \
		"too_large $field*($option)*" "$option: a request past it is too_large naming it"
done
r=$(send_lines "{\"id\":2,\"image\":\"$img\",\"log_ports\":[128],\"dump\":[{\"address\":1024,\"length\":8}]}")
if have_kvm; then
	is "$(json "$r" 'r["exit"]["reason"]')" hlt "a request at those limits runs"
else
	is "$(json "$r" 'r["error"]["code"]')" unavailable \
		"a request at those limits passes them (unavailable without KVM)"
fi
stop_daemon

done_testing
