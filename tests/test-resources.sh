#!/bin/sh
# Resource limits end to end: a full queue answers busy at once; memory
# sizes and timeouts out of range are refused before any guest memory is
# mapped; console and io log floods stop at --max-console and --max-io-log;
# a KVM device that is missing, not KVM or not permitted leaves the daemon
# serving, with every run answered unavailable and a clear message.
# (Descriptors running out is in test-hostile.)  Without KVM the refusals
# and the KVM device checks run; what needs a guest running skips.

. "${TOP_SRCDIR:-.}/tests/lib.sh"

# error_text LINE: "ID CODE: MESSAGE" of an error answer.
error_text() {
	json "$1" '"%s %s: %s" % (r["id"], r["error"]["code"], r["error"]["message"])'
}

# hello FIELDS: a run request for hello-real with more JSON fields.
hello() {
	run_request 1 "$GUESTS/hello-real.bin" real "$1"
}

# --- memory sizes -----------------------------------------------------------
# A daemon of its own, without prepared VMs: no guest memory comes and goes
# behind the checks' back.
start_daemon --workers 1 --prepared-vms 0 --max-memory 8M --max-total-memory 8M \
	--max-line 64M --max-output 96M --read-timeout-ms 120000

# VmPeak, the high-water mark of the daemon's address space, keeps a mapping
# that came and went while a request was handled, but only one that reaches
# past the mark: the guest memory of earlier runs, or the start-up probes,
# leave room under it.  So first the daemon's address space is brought up to
# its peak: a connection holds an unfinished line longer than that room, and
# the buffer it is read into stays mapped while it is open.  From then on
# VmPeak - VmSize stays 0 unless something was mapped and unmapped again.
# A sanitizer's allocator, or a tool the daemon runs under, maps and unmaps
# on its own (and may free by unmapping as the buffer grows), so there the
# figure means nothing and is not taken.
if [ -n "${KVMRUND_WRAPPER:-}" ]; then
	PEAK_SKIP="the address space is that of $KVMRUND_WRAPPER"
elif sanitized; then
	PEAK_SKIP="a sanitizer's allocator maps and unmaps on its own"
else
	PEAK_SKIP=
fi
if [ -z "$PEAK_SKIP" ]; then
	room=$(($(proc_status VmPeak) - $(proc_status VmSize)))
	"$PYTHON3" - "$SOCK" $(((room + 1024) * 1024)) >/dev/null 2>&1 <<'EOF' &
import signal, socket, sys
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
s = socket.socket(socket.AF_UNIX)
s.settimeout(150)
s.connect(sys.argv[1])
s.sendall(b'{"id":"' + b"x" * int(sys.argv[2]))
s.recv(1)  # until the test ends it, or the daemon or --read-timeout-ms does
EOF
	pin=$!
	_deadline=$(($(date +%s) + 5 * TIME_SCALE))
	while [ "$(proc_status VmPeak)" -ne "$(proc_status VmSize)" ] &&
		[ "$(date +%s)" -lt "$_deadline" ]; do
		sleep 0.05
	done
	is "$(($(proc_status VmPeak) - $(proc_status VmSize)))kB" 0kB \
		"the daemon's address space is held at its peak ($room kB below it before), so a mapping that comes and goes shows"
else
	skip "the daemon's address space is held at its peak" "$PEAK_SKIP"
fi

# peak_after LINE: sends LINE; prints the answer's "CODE: MESSAGE" and by how
# much VmPeak is past VmSize afterwards (+0kB when nothing was mapped and
# unmapped meanwhile), or "+?kB" when that is not measured.
peak_after() {
	_r=$(send_lines "$1")
	if [ -z "$PEAK_SKIP" ]; then
		_grew=$(($(proc_status VmPeak) - $(proc_status VmSize)))
	else
		_grew=?
	fi
	echo "$(json "$_r" '"%s: %s" % (r["error"]["code"], r["error"]["message"])') +${_grew}kB"
}
if [ -z "$PEAK_SKIP" ]; then
	UNMAPPED=+0kB
else
	UNMAPPED="+?kB"
	diag "memory sizes: whether anything was mapped is not measured: $PEAK_SKIP"
fi
for size in 0 4097 2097153; do
	is "$(peak_after "$(hello ',"memory_size":'$size)")" \
		"bad_request: memory_size: $size is not a positive multiple of 4096 $UNMAPPED" \
		"memory_size $size: bad_request, nothing mapped"
done
for size in 1073741824 68719476736; do
	is "$(peak_after "$(hello ',"memory_size":'$size)")" \
		"too_large: memory_size: $size is over the limit of 8388608 (--max-memory) $UNMAPPED" \
		"memory_size $size over --max-memory 8M: too_large, nothing mapped"
done

# Two runs of 6 MiB do not fit --max-total-memory 8M together.  The holder
# runs long enough that its memory is still mapped when the second is
# measured.
if kvm_or_skip "a run past --max-total-memory is busy before its memory is mapped" \
	"the run holding the memory finishes" "and its memory is given back to the budget"; then
	six=$(run_request 0 "$GUESTS/loop-real.bin" real \
		',"timeout_ms":'$((2000 * TIME_SCALE))',"memory_size":6291456')
	send_lines "$six" >"$test_dir/six" &
	holder=$!
	wait_runs 1
	like "$(peak_after "$six")" \
		"busy: guest memory budget exhausted: 6291456 of 8388608 bytes (--max-total-memory)*$UNMAPPED" \
		"a run past --max-total-memory is busy before its memory is mapped"
	wait $holder
	is "$(json "$(cat "$test_dir/six")" 'r["exit"]["reason"]')" timeout \
		"the run holding the memory finishes"
	r=$(send_lines '{"id":1,"op":"stats"}')
	is "$(json "$r" 'r["stats"]["memory_in_use"]')" 0 "and its memory is given back to the budget"
fi
if [ -z "$PEAK_SKIP" ]; then
	kill "$pin" 2>/dev/null
	wait "$pin"
fi

# --- more runs than the queue holds -----------------------------------------
start_daemon --workers 1 --queue 2 --max-memory 8M --max-total-memory 8M \
	--max-timeout-ms 5000 --max-console 4K --max-io-log 100
if kvm_or_skip "a run past a full queue (1 running, 2 waiting) is answered busy naming --queue" \
	"busy comes at once, not after a wait for room" "the runs that were held all finish"; then
	slow=$(run_request 0 "$GUESTS/loop-real.bin" real ',"timeout_ms":1000,"memory_size":65536')
	# One running, then two waiting: sent apart, so the first is surely taken.
	send_lines "$slow" >"$test_dir/held.1" &
	holders=$!
	wait_runs 1
	send_lines "$slow" "$slow" >"$test_dir/held.2" &
	holders="$holders $!"
	wait_runs 3
	r=$("$PYTHON3" - "$SOCK" "$slow" <<'EOF'
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
s.connect(sys.argv[1])
start = time.monotonic()
s.sendall(sys.argv[2].encode() + b"\n")
line = s.makefile().readline().strip()
print(round((time.monotonic() - start) * 1000), line)
EOF
)
	ms=${r%% *}
	is "$(error_text "${r#* }")" "0 busy: run queue full: 2 runs waiting (--queue); retry later" \
		"a run past a full queue (1 running, 2 waiting) is answered busy naming --queue"
	below "$ms" $((100 * TIME_SCALE)) "busy comes at once ($ms ms), not after a wait for room"
	wait $holders
	is "$(cat "$test_dir"/held.* | grep -c '"reason":"timeout"')" 3 \
		"the runs that were held all finish"
fi

# --- timeouts ---------------------------------------------------------------
is "$(error_text "$(send_lines "$(hello ',"timeout_ms":0')")")" \
	"1 bad_request: timeout_ms: 0 is below the minimum of 1" "timeout_ms 0"
is "$(error_text "$(send_lines "$(hello ',"timeout_ms":-5')")")" \
	"1 bad_request: timeout_ms: -5 is negative" "timeout_ms negative"
is "$(error_text "$(send_lines "$(hello ',"timeout_ms":5001')")")" \
	"1 too_large: timeout_ms: 5001 is over the limit of 5000 (--max-timeout-ms)" \
	"timeout_ms one past --max-timeout-ms"
like "$(error_text "$(send_lines "$(hello ',"timeout_ms":18446744073709551615')")")" \
	"1 too_large: timeout_ms: 18446744073709551615 is over the limit of 5000*" \
	"timeout_ms 2^64-1"
r=$(send_lines "$(run_request 1 "$GUESTS/loop-real.bin" real \
	',"timeout_ms":5000,"memory_size":65536')")
if have_kvm; then
	is "$(json "$r" 'r["exit"]["reason"], r["stats"]["run_ns"] >= 5e9')" '["timeout", true]' \
		"timeout_ms exactly at --max-timeout-ms runs its full time"
else
	# Taken, not refused: only the missing KVM stops it.
	is "$(error_text "$r")" "1 unavailable: no usable KVM on this host: $KVM_REASON" \
		"timeout_ms exactly at --max-timeout-ms is within the limit: unavailable without KVM"
fi

# --- output floods ----------------------------------------------------------
if kvm_or_skip "a console flood stops at --max-console 4K: output_limit, console_truncated" \
	"an io log flood stops at --max-io-log 100 (output_limit, io_log_truncated), 100 kept"; then
	r=$(send_lines "$(run_request 1 "$GUESTS/console-flood-long.bin" long)")
	is "$(json "$r" 'r["exit"]["reason"], r["exit"]["limit"], r["console_truncated"],
		len(__import__("base64").b64decode(r["console_base64"]))')" \
		'["output_limit", "console", true, 4096]' \
		"a console flood stops at --max-console 4K: output_limit, console_truncated"
	r=$(send_lines "$(run_request 1 "$GUESTS/io-flood-real.bin" real ',"log_ports":[128]')")
	is "$(json "$r" 'r["exit"]["reason"], r["exit"]["limit"], r["io_log_truncated"],
		[e["value"] for e in r["io_log"]] == list(range(100))')" \
		'["output_limit", "io_log", true, true]' \
		"an io log flood stops at --max-io-log 100 (output_limit, io_log_truncated), 100 kept"
fi

# --- the KVM device ---------------------------------------------------------
# A KVM device that is missing, not KVM or not permitted does not stop the
# daemon: it serves, ping says why it has no KVM, a run is answered
# unavailable naming the reason, and the log says what to do about it.
# no_kvm DESCRIPTION REASON REMEDY: checks the last daemon so (REASON and
# REMEDY are patterns), then stops it with SIGTERM; its exit status and
# whether it left its socket go to $stopped.
stopped=
no_kvm() {
	_r=$(send_lines '{"id":1,"op":"ping"}' "$(hello '')")
	like "$(json "$(printf '%s\n' "$_r" | sed -n 1p)" '"kvm_api %s, available %s, reason %s" % (
		json.dumps(r["kvm_api"]), json.dumps(r["kvm"]["available"]), r["kvm"].get("reason"))') / $(
		error_text "$(printf '%s\n' "$_r" | sed -n 2p)") / $(
		sed -n 's/^<4>host: KVM unavailable: //p' "$DAEMON_LOG")" \
		"kvm_api null, available false, reason $2 / 1 unavailable: no usable KVM on this host: $2 / $2; runs are answered 'unavailable' until it works *. To fix: $3" \
		"$1"
	stop_daemon
	stopped="$stopped $?$([ -e "$SOCK" ] && echo ",socket-left")"
}
start_daemon --kvm "$test_dir/no-kvm"
no_kvm "--kvm missing: serves, naming it, runs unavailable" \
	"$test_dir/no-kvm: No such file or directory" "load kvm_intel or kvm_amd (modprobe)*"
start_daemon --kvm /dev/null
no_kvm "--kvm /dev/null: serves, not a KVM device, runs unavailable" \
	"/dev/null: not a KVM device (KVM_GET_API_VERSION: *)" "check that it is KVM's device*"
echo data >"$test_dir/file"
start_daemon --kvm "$test_dir/file"
no_kvm "--kvm a regular file: serves, not a KVM device, runs unavailable" \
	"$test_dir/file: not a KVM device (KVM_GET_API_VERSION: *)" "check that it is KVM's device*"
start_daemon --kvm "$test_dir"
no_kvm "--kvm a directory: serves, naming it, runs unavailable" \
	"$test_dir: Is a directory" "check that it is KVM's device*"
# Root may open any device; the check needs another user.  The device is
# /dev/kvm itself where others may not open it, else a file only root may.
if command -v setpriv >/dev/null && [ "$(id -u)" = 0 ]; then
	if have_kvm && [ -z "$(find /dev/kvm -perm -006 2>/dev/null)" ]; then
		device=/dev/kvm what=/dev/kvm
	else
		device=$test_dir/root-only what="--kvm a file only root may open"
		echo data >"$device"
		chmod 600 "$device"
	fi
	chmod 755 "$test_dir"
	mkdir "$test_dir/nobody"
	chown 65534:65534 "$test_dir/nobody"
	SOCK=$test_dir/nobody/kvmrun.sock
	DAEMON_LOG=$test_dir/kvmrund-nobody.log
	setpriv --reuid=65534 --regid=65534 --clear-groups \
		"$KVMRUND" --socket "$SOCK" --kvm "$device" 2>"$DAEMON_LOG" &
	track_daemon $!
	if ! wait_socket "$SOCK" 5; then
		echo "Bail out! kvmrund as nobody did not come up on $SOCK"
		sed 's/^/# /' "$DAEMON_LOG"
		exit 99
	fi
	no_kvm "$what not permitted (as nobody): serves, naming it, runs unavailable" \
		"$device: Permission denied" "give kvmrund's user read-write access to the device*"
else
	skip "/dev/kvm not permitted" "needs root to run kvmrund as another user (setpriv)"
fi
is "$stopped" "$(for _x in $stopped; do printf ' 0'; done)" \
	"each of them exits 0 on SIGTERM and leaves no socket"

done_testing
