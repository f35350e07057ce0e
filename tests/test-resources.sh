#!/bin/sh
# Resource limits end to end: a full queue answers busy at once; memory
# sizes and timeouts out of range are refused before any guest memory is
# mapped; console and io log floods stop at --max-console and --max-io-log;
# a KVM device that is missing, not KVM or not permitted stops the start-up
# with a clear message.  (Descriptors running out is in test-hostile.)

. "${TOP_SRCDIR:-.}/tests/lib.sh"

need_kvm

# error_text LINE: "ID CODE: MESSAGE" of an error answer.
error_text() {
	json "$1" '"%s %s: %s" % (r["id"], r["error"]["code"], r["error"]["message"])'
}

# hello FIELDS: a run request for hello-real with more JSON fields.
hello() {
	run_request 1 "$GUESTS/hello-real.bin" real "$1"
}

# --- more runs than the queue holds -----------------------------------------
start_daemon --workers 1 --queue 2 --max-memory 8M --max-total-memory 8M \
	--max-timeout-ms 5000 --max-console 4K --max-io-log 100
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
below "$ms" 100 "busy comes at once ($ms ms), not after a wait for room"
wait $holders
is "$(cat "$test_dir"/held.* | grep -c '"reason":"timeout"')" 3 \
	"the runs that were held all finish"

# --- memory sizes -----------------------------------------------------------
# peak_after LINE: sends LINE; prints the answer's "CODE: MESSAGE" and how
# much the daemon's VmPeak grew meanwhile (0 when no guest memory was mapped).
peak_after() {
	_peak=$(proc_status VmPeak)
	_r=$(send_lines "$1")
	_grew=$(($(proc_status VmPeak) - _peak))
	echo "$(json "$_r" '"%s: %s" % (r["error"]["code"], r["error"]["message"])') +${_grew}kB"
}
for size in 0 4097 2097153; do
	is "$(peak_after "$(hello ',"memory_size":'$size)")" \
		"bad_request: memory_size: $size is not a positive multiple of 4096 +0kB" \
		"memory_size $size: bad_request, nothing mapped"
done
for size in 1073741824 68719476736; do
	is "$(peak_after "$(hello ',"memory_size":'$size)")" \
		"too_large: memory_size: $size is over the limit of 8388608 (--max-memory) +0kB" \
		"memory_size $size over --max-memory 8M: too_large, nothing mapped"
done

# Two runs of 6 MiB do not fit --max-total-memory 8M together.
six=$(run_request 0 "$GUESTS/loop-real.bin" real ',"timeout_ms":800,"memory_size":6291456')
send_lines "$six" >"$test_dir/six" &
holder=$!
wait_runs 1
like "$(peak_after "$six")" \
	'busy: guest memory budget exhausted: 6291456 of 8388608 bytes (--max-total-memory)*+0kB' \
	"a run past --max-total-memory is busy before its memory is mapped"
wait $holder
is "$(json "$(cat "$test_dir/six")" 'r["exit"]["reason"]')" timeout \
	"the run holding the memory finishes"
r=$(send_lines '{"id":1,"op":"stats"}')
is "$(json "$r" 'r["stats"]["memory_in_use"]')" 0 "and its memory is given back to the budget"

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
is "$(json "$r" 'r["exit"]["reason"], r["stats"]["run_ns"] >= 5e9')" '["timeout", true]' \
	"timeout_ms exactly at --max-timeout-ms runs its full time"

# --- output floods ----------------------------------------------------------
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

# --- the KVM device ---------------------------------------------------------
# start_fails DESCRIPTION PATTERN OPTION...: kvmrund does not start; its exit
# status and message match.
start_fails() {
	_what=$1 _pattern=$2
	shift 2
	"$KVMRUND" --socket "$test_dir/never.sock" "$@" >/dev/null 2>"$test_dir/err"
	like "$? $(cat "$test_dir/err")" "$_pattern" "$_what"
}
start_fails "--kvm missing: exit 1 naming it" \
	"1 <3>main: $test_dir/no-kvm: No such file or directory" --kvm "$test_dir/no-kvm"
start_fails "--kvm /dev/null: exit 1, not a KVM device" \
	"1 <3>main: /dev/null: not a KVM device*" --kvm /dev/null
echo data >"$test_dir/file"
start_fails "--kvm a regular file: exit 1, not a KVM device" \
	"1 <3>main: $test_dir/file: not a KVM device*" --kvm "$test_dir/file"
start_fails "--kvm a directory: exit 1 naming it" \
	"1 <3>main: $test_dir: Is a directory" --kvm "$test_dir"
# Root may open any device; the check needs another user.
if command -v setpriv >/dev/null && [ "$(id -u)" = 0 ]; then
	chmod 755 "$test_dir"
	setpriv --reuid=65534 --regid=65534 --clear-groups \
		"$KVMRUND" --socket "$test_dir/never.sock" >/dev/null 2>"$test_dir/err"
	like "$? $(cat "$test_dir/err")" "1 <3>main: /dev/kvm: Permission denied*" \
		"/dev/kvm not permitted (as nobody): exit 1 naming it"
else
	skip "/dev/kvm not permitted" "needs root to run kvmrund as another user (setpriv)"
fi
if [ -e "$test_dir/never.sock" ]; then
	not_ok "no socket is left by a failed start"
else
	ok "no socket is left by a failed start"
fi

done_testing
