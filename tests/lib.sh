# Helpers for kvmrun's TAP shell tests, sourced by tests/test-*.sh:
# TAP output, a kvmrund on a temporary socket that goes away with the test,
# and a small Python client that sends lines and prints the answers.
#
# make check provides KVMRUND, KVMRUN_CLIENT, GUESTS, TOP_SRCDIR,
# TOP_BUILDDIR and PYTHON3.

: "${PYTHON3:=python3}"

tap_count=0
tap_failed=0

# The plan goes last, so a test need not count its cases up front.
plan() {
	echo "1..$1"
}

ok() {
	tap_count=$((tap_count + 1))
	echo "ok $tap_count - $*"
}

not_ok() {
	tap_count=$((tap_count + 1))
	tap_failed=$((tap_failed + 1))
	echo "not ok $tap_count - $*"
}

skip() {
	tap_count=$((tap_count + 1))
	echo "ok $tap_count - $1 # SKIP $2"
}

diag() {
	printf '%s\n' "$@" | sed 's/^/# /'
}

# is GOT EXPECTED DESCRIPTION
is() {
	if [ "$1" = "$2" ]; then
		ok "$3"
	else
		not_ok "$3"
		diag "got:      $1" "expected: $2"
	fi
}

# like GOT PATTERN DESCRIPTION: GOT matches the shell PATTERN.
like() {
	case $1 in
	$2)
		ok "$3"
		;;
	*)
		not_ok "$3"
		diag "got:      $1" "expected: $2"
		;;
	esac
}

# below GOT LIMIT DESCRIPTION: GOT, a whole number, is less than LIMIT.
below() {
	if [ "$1" -lt "$2" ] 2>/dev/null; then
		ok "$3"
	else
		not_ok "$3"
		diag "got:      $1" "expected: less than $2"
	fi
}

# client ARG...: runs kvmrun-client; sets status, out and err.  The output
# is also in $test_dir/out, byte for byte.
client() {
	"$KVMRUN_CLIENT" "$@" >"$test_dir/out" 2>"$test_dir/err"
	status=$?
	out=$(cat "$test_dir/out")
	err=$(cat "$test_dir/err")
}

# client_tty [--stderr] ARG...: like client, but with the client's standard
# output (with --stderr, its standard error instead) on a terminal, a
# pseudo-terminal in raw mode so that no \r is added.
client_tty() {
	_tty_fd=1
	if [ "${1:-}" = --stderr ]; then
		_tty_fd=2
		shift
	fi
	"$PYTHON3" - "$_tty_fd" "$KVMRUN_CLIENT" "$@" >"$test_dir/out" 2>"$test_dir/err" <<'EOF'
import os, pty, subprocess, sys, tty
fd = int(sys.argv[1])
master, slave = pty.openpty()
tty.setraw(slave)
p = subprocess.Popen(sys.argv[2:], stdin=subprocess.DEVNULL,
                     **{"stdout" if fd == 1 else "stderr": slave})
os.close(slave)
got = b""
while True:
    try:
        data = os.read(master, 65536)
    except OSError:  # EIO once the client has closed the terminal
        break
    if not data:
        break
    got += data
(sys.stdout if fd == 1 else sys.stderr).buffer.write(got)
sys.exit(p.wait(timeout=60))
EOF
	status=$?
	out=$(cat "$test_dir/out")
	err=$(cat "$test_dir/err")
}

# status_is EXPECTED DESCRIPTION: the last client's exit status, with its
# stderr shown when it is not the one expected.
status_is() {
	if [ "$status" = "$1" ]; then
		ok "$2"
	else
		not_ok "$2"
		diag "exit status $status, expected $1" "stderr: $err"
	fi
}

done_testing() {
	daemons_verdict
	plan "$tap_count"
	[ "$tap_failed" -eq 0 ]
}

# Whether guests can run here: KVM_REASON is empty when /dev/kvm opens
# read-write, else says why not.  Only a missing or inaccessible device skips;
# a device that opens but fails is the engine's failure, and tests say so.
KVM_REASON=$("$PYTHON3" -c '
import os
try:
    os.close(os.open("/dev/kvm", os.O_RDWR))
except OSError as e:
    print("/dev/kvm: " + e.strerror)
')

have_kvm() {
	[ -z "$KVM_REASON" ]
}

# kvm_or_skip DESCRIPTION...: true when guests can run here; otherwise records
# each DESCRIPTION as a SKIP that names the reason, and is false:
#   if kvm_or_skip "hello world in real mode"; then ... fi
kvm_or_skip() {
	have_kvm && return 0
	for _what in "$@"; do
		skip "$_what" "needs KVM, $KVM_REASON"
	done
	return 1
}

# need_kvm: skips the whole test when guests cannot run here.  Only before the
# first case, so the plan always matches what ran.
need_kvm() {
	have_kvm && return 0
	if [ "$tap_count" -gt 0 ]; then
		echo "Bail out! need_kvm after $tap_count cases: use kvm_or_skip"
		exit 99
	fi
	echo "1..0 # SKIP needs KVM, $KVM_REASON"
	exit 0
}

# Seconds a daemon gets to exit after a signal before it is killed; tools
# that report at exit (valgrind, the sanitizers) need longer.
daemon_exit_seconds() {
	if [ -n "${KVMRUND_WRAPPER:-}" ]; then echo 120; else echo 30; fi
}

# wait_exit PID [SECONDS]: waits for the child PID to end, killing it after
# SECONDS (default daemon_exit_seconds); returns its exit status (137 when it
# had to be killed, with a diagnostic).
wait_exit() {
	_deadline=$(($(date +%s) + ${2:-$(daemon_exit_seconds)}))
	# A child that ended stays a zombie until waited for: kill -0 still works.
	while [ -e "/proc/$1" ] &&
		[ "$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" != Z ]; do
		if [ "$(date +%s)" -ge "$_deadline" ]; then
			diag "process $1 did not exit in time: killed"
			kill -KILL "$1" 2>/dev/null
			break
		fi
		sleep 0.05
	done
	wait "$1"
}

# track_daemon PID: a daemon a test started itself, checked like the others
# at the end; it becomes DAEMON_PID.
track_daemon() {
	DAEMON_PID=$1
	daemon_pids="$daemon_pids $1"
}

# forget_daemon PID: a daemon the test already reaped or meant to kill.
forget_daemon() {
	reaped_pids="$reaped_pids $1"
}

# Every daemon the test did not stop itself gets SIGTERM and must exit 0
# (valgrind's --error-exitcode, LeakSanitizer and TSan make that fail), and
# no daemon's log may hold a sanitizer report.
daemons_verdict() {
	for _pid in $daemon_pids; do
		case " $reaped_pids " in *" $_pid "*) continue ;; esac
		kill -TERM "$_pid" 2>/dev/null
		wait_exit "$_pid"
		is "$?" 0 "kvmrund $_pid exits 0 on SIGTERM at the end"
		forget_daemon "$_pid"
	done
	[ -n "$test_dir" ] || return 0
	for _log in "$test_dir"/kvmrund-*.log; do
		[ -f "$_log" ] || continue
		if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|WARNING: ThreadSanitizer|runtime error:' "$_log"; then
			not_ok "no sanitizer report in ${_log##*/}"
			sed 's/^/# /' "$_log" | head -n 60
		else
			ok "no sanitizer report in ${_log##*/}"
		fi
	done
}

test_dir=
daemon_pids=
reaped_pids=

# On an early exit: daemons still running get SIGTERM, then SIGKILL.
cleanup() {
	for _pid in $daemon_pids; do
		case " $reaped_pids " in *" $_pid "*) continue ;; esac
		kill -TERM "$_pid" 2>/dev/null && wait_exit "$_pid" 10 >/dev/null
	done
	[ -n "$test_dir" ] && rm -rf "$test_dir"
}

make_test_dir() {
	if [ -z "$test_dir" ]; then
		test_dir=$(mktemp -d "${TMPDIR:-/tmp}/kvmrun-test.XXXXXX") || exit 99
		trap cleanup EXIT
		trap 'exit 99' INT TERM
	fi
}

# wait_socket PATH [SECONDS]: until something accepts on PATH.
wait_socket() {
	"$PYTHON3" - "$1" "${2:-5}" <<'EOF'
import socket, sys, time
deadline = time.monotonic() + float(sys.argv[2])
while True:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(sys.argv[1])
        sys.exit(0)
    except OSError:
        if time.monotonic() > deadline:
            sys.exit(1)
        time.sleep(0.02)
    finally:
        s.close()
EOF
}

# start_daemon [OPTION...]: a kvmrund on a fresh socket; sets SOCK,
# DAEMON_PID and DAEMON_LOG (its stderr).  Exits 99 when it does not come up.
# KVMRUND_WRAPPER, when set, is a command the daemon runs under (valgrind);
# the daemon then gets --no-seccomp, since the filter would stop the tool.
start_daemon() {
	make_test_dir
	_n=$(($(echo $daemon_pids | wc -w) + 1))
	SOCK="$test_dir/kvmrun-$_n.sock"
	DAEMON_LOG="$test_dir/kvmrund-$_n.log"
	_wait=5
	if [ -n "${KVMRUND_WRAPPER:-}" ]; then
		$KVMRUND_WRAPPER "$KVMRUND" --no-seccomp --socket "$SOCK" "$@" \
			2>"$DAEMON_LOG" &
		_wait=60
	else
		"$KVMRUND" --socket "$SOCK" "$@" 2>"$DAEMON_LOG" &
	fi
	track_daemon $!
	if ! wait_socket "$SOCK" "$_wait"; then
		echo "Bail out! kvmrund did not come up on $SOCK"
		sed 's/^/# /' "$DAEMON_LOG"
		exit 99
	fi
}

# stop_daemon [SIGNAL]: signals the last daemon and returns its exit status,
# killing it when it does not exit in time (see wait_exit).
stop_daemon() {
	kill -"${1:-TERM}" "$DAEMON_PID" 2>/dev/null
	wait_exit "$DAEMON_PID"
	_status=$?
	forget_daemon "$DAEMON_PID"
	return $_status
}

# send_lines LINE...: on one connection to $SOCK, sends every line in one
# write, shuts down the writing side and prints the answers until the daemon
# closes.  A reset counts as the close: the daemon resets a connection it
# closes with requests unread (after an overlong line).  SEND_TIMEOUT
# (seconds, default 60) bounds the wait.
send_lines() {
	printf '%s\n' "$@" | send_raw
}

# json LINE EXPR: prints the Python expression EXPR (which may span lines)
# of the JSON value r in LINE, strings bare and everything else as JSON.
json() {
	"$PYTHON3" -c '
import json, sys
r = json.loads(sys.argv[1])
v = eval("(" + sys.argv[2] + ")")
print(v if isinstance(v, str) else json.dumps(v))
' "$1" "$2"
}

# run_request ID GUEST MODE [JSON-FIELDS]: a run request line for the guest
# image GUEST in MODE, with more fields (',"timeout_ms":100') appended; the
# fields may be spread over lines and indented, which is dropped.
run_request() {
	printf '{"id":%s,"op":"run","mode":"%s","image":"%s"%s}' \
		"$1" "$3" "$(base64 -w0 <"$2")" "${4:-}" | tr -d '\n\t'
}

# send_raw: like send_lines, but sends the bytes read from stdin as they are
# (printf '...\n' | send_raw), for lines no argument can carry (NUL bytes).
send_raw() {
	"$PYTHON3" -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(float(sys.argv[1]))
s.connect(sys.argv[2])
s.sendall(sys.stdin.buffer.read())
s.shutdown(socket.SHUT_WR)
answer = b""
while True:
    try:
        data = s.recv(1 << 16)
    except ConnectionResetError:
        break
    if not data:
        break
    answer += data
sys.stdout.write(answer.decode())
' "${SEND_TIMEOUT:-60}" "$SOCK"
}

# Figures of a running daemon (default $DAEMON_PID) from /proc.
# proc_fds [PID]: open descriptors.
proc_fds() {
	ls "/proc/${1:-$DAEMON_PID}/fd" | wc -l
}

# proc_status FIELD [PID]: the number in a /proc/PID/status field (Threads,
# VmRSS and VmPeak in kB, Seccomp).
proc_status() {
	sed -n "s/^$1:[[:space:]]*\([0-9]*\).*/\1/p" "/proc/${2:-$DAEMON_PID}/status"
}

# proc_cpu_ms [PID]: CPU time used so far, user and system, in ms.
proc_cpu_ms() {
	awk -v hz="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); print ($12 + $13) * 1000 / hz }' \
		"/proc/${1:-$DAEMON_PID}/stat"
}

# settle_fds COUNT [SECONDS]: waits (default 5 s) for the daemon to have
# COUNT descriptors open, since a worker tears its VM down after the answer
# is sent; prints the count it ended with.
settle_fds() {
	_deadline=$(($(date +%s) + ${2:-5}))
	while [ "$(proc_fds)" -ne "$1" ] && [ "$(date +%s)" -lt "$_deadline" ]; do
		sleep 0.05
	done
	proc_fds
}

# wait_log PATTERN [SECONDS]: waits (default 5 s) for a line of $DAEMON_LOG
# matching the grep PATTERN; prints it.
wait_log() {
	_deadline=$(($(date +%s) + ${2:-5}))
	until grep -m1 -e "$1" "$DAEMON_LOG"; do
		[ "$(date +%s)" -lt "$_deadline" ] || return 1
		sleep 0.05
	done
}

# filter_off: why the last daemon serves without its seccomp filter, as its
# log says (--no-seccomp, a sanitizer build), or nothing when it has it.
filter_off() {
	wait_log 'seccomp filter' >/dev/null
	sed -n 's/^<6>main: seccomp filter NOT installed (\(.*\))$/\1/p' "$DAEMON_LOG"
}

# wait_runs N [SECONDS]: waits (default 10 s) until the daemon on $SOCK has N
# runs running or queued.
wait_runs() {
	"$PYTHON3" - "$SOCK" "$1" "${2:-10}" <<'EOF'
import json, socket, sys, time
deadline = time.monotonic() + float(sys.argv[3])
while True:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(float(sys.argv[3]))
    s.connect(sys.argv[1])
    s.sendall(b'{"id":0,"op":"stats"}\n')
    stats = json.loads(s.makefile().readline())["stats"]
    s.close()
    if stats["runs_in_flight"] + stats["runs_queued"] >= int(sys.argv[2]):
        sys.exit(0)
    if time.monotonic() > deadline:
        sys.exit(1)
    time.sleep(0.02)
EOF
}

# sanitized: whether kvmrund is built with a sanitizer, whose allocator
# holds freed memory back and maps and unmaps on its own.
sanitized() {
	ldd "$KVMRUND" 2>/dev/null | grep -q -e libasan -e libtsan
}

# TIME_SCALE: what a time bound in a test is multiplied by, so bounds meant
# for a plain build do not flake under valgrind or a sanitizer build.
if [ -n "${KVMRUND_WRAPPER:-}" ]; then
	TIME_SCALE=20
elif [ -n "$(sed -n 's/^SANITIZER_CFLAGS = *//p' "$TOP_BUILDDIR/Makefile" 2>/dev/null)" ]; then
	TIME_SCALE=5
else
	TIME_SCALE=1
fi
