#!/bin/sh
# Who may use kvmrund, and what it may do itself: peers logged with their
# SO_PEERCRED credentials, the socket's --socket-mode, --allow-uid and
# --allow-group (a peer listed by neither gets one "forbidden" line), and
# the seccomp filter the daemon serves under.  None of it needs KVM but a
# run under the filter, which without KVM must be answered "unavailable".

. "${TOP_SRCDIR:-.}/tests/lib.sh"

# --- peers in the log -------------------------------------------------------
start_daemon --workers 1 --socket-mode 0640
r=$("$PYTHON3" - "$SOCK" <<'EOF'
import json, os, socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
s.connect(sys.argv[1])
s.sendall(b'{"id":1,"op":"ping"}\n')
print(os.getpid(), json.loads(s.makefile().readline())["ok"])
EOF
)
like "$(wait_log "connected: pid ${r% *} ")" \
	"<6>server: client * connected: pid ${r% *} uid $(id -u) gid $(id -g)" \
	"a client is logged with its pid, uid and gid (SO_PEERCRED)"
is "$(stat -c %a "$SOCK")" 640 "--socket-mode 0640: the socket is made with 0640"
start_daemon --workers 1
is "$(stat -c %a "$SOCK")" 660 "no --socket-mode: the socket is made with 0660"

# --- the seccomp filter -----------------------------------------------------
timeout 10 "$KVMRUND" --socket "$test_dir/selftest.sock" --seccomp-selftest \
	2>"$test_dir/err"
is "$?" 159 "--seccomp-selftest: a forbidden call kills the daemon with SIGSYS (status 159)"
# Each call the filter narrows, made the way the daemon never makes it.
for call in socket-inet socket-stream clone-fork clone-namespace connect unlink \
	unlinkat prctl ioctl; do
	timeout 10 "$KVMRUND" --socket "$test_dir/selftest.sock" \
		--seccomp-selftest="$call" 2>"$test_dir/err"
	is "$?" 159 "--seccomp-selftest=$call: killed with SIGSYS"
done
for refused in "clone3:Function not implemented" "open:Permission denied"; do
	out=$(timeout 10 "$KVMRUND" --socket "$test_dir/selftest.sock" \
		--seccomp-selftest="${refused%%:*}" 2>&1)
	is "$?:$out" "0:<6>main: seccomp: ${refused%%:*} was refused with ${refused#*:}" \
		"--seccomp-selftest=${refused%%:*}: refused with ${refused#*:}"
done
start_daemon --workers 2
off=$(filter_off)
if [ -n "$off" ]; then
	skip "the daemon serves under the seccomp filter" "$off"
	skip "/proc/PID/status: Seccomp 2" "$off"
	skip "every thread is under the filter" "$off"
else
	like "$(cat "$DAEMON_LOG")" '*<6>main: seccomp filter installed*' \
		"the daemon says it serves under the seccomp filter"
	is "$(proc_status Seccomp)" 2 "/proc/PID/status: Seccomp 2 (filter mode)"
	modes=$(sed -n 's/^Seccomp:[[:space:]]*//p' /proc/"$DAEMON_PID"/task/*/status |
		sort -u)
	threads=$(ls /proc/"$DAEMON_PID"/task | wc -l)
	is "$modes" 2 "each of its $threads threads (loop, two workers, the parser) is filtered"
fi
r=$(send_lines "$(run_request 1 "$GUESTS/hello-long.bin" long)" '{"id":2,"op":"stats"}')
if have_kvm; then
	is "$(printf '%s\n' "$r" | "$PYTHON3" -c '
import json, sys
print([json.loads(l)["ok"] for l in sys.stdin])')" "[True, True]" \
		"runs and stats work under the filter"
else
	# The daemon opens /dev/kvm again for the run, under the filter.
	is "$(printf '%s\n' "$r" | "$PYTHON3" -c '
import json, sys
print([json.loads(l).get("error", {}).get("code", True) for l in sys.stdin])')" \
		"['unavailable', True]" \
		"without KVM, a run is answered unavailable and stats work under the filter"
fi
start_daemon --workers 1 --no-seccomp
is "$(proc_status Seccomp) $(wait_log 'seccomp filter NOT installed' | wc -l)" "0 1" \
	"--no-seccomp: no filter, and the log says so"

# --- --allow-uid and --allow-group ------------------------------------------
if [ "$(id -u)" != 0 ] || ! command -v setpriv >/dev/null; then
	skip "--allow-uid and --allow-group" "connecting as another user needs root and setpriv"
	done_testing
	exit
fi
chmod 755 "$test_dir"
for f in "$KVMRUN_CLIENT" "$GUESTS/hello-real.bin"; do
	if ! setpriv --reuid=65534 --regid=65534 --clear-groups test -r "$f"; then
		skip "--allow-uid and --allow-group" "nobody cannot read $f"
		done_testing
		exit
	fi
done

# as UID GID GROUPS COMMAND...: runs COMMAND with those credentials
# (GROUPS the supplementary ones, comma-separated, or "-" for none).
as() {
	_uid=$1 _gid=$2 _groups=$3
	shift 3
	if [ "$_groups" = - ]; then
		setpriv --reuid="$_uid" --regid="$_gid" --clear-groups "$@"
	else
		setpriv --reuid="$_uid" --regid="$_gid" --groups="$_groups" "$@"
	fi
}

# ping_as UID GID GROUPS: the answer line to a ping sent by kvmrun-client raw
# with those credentials.
ping_as() {
	printf '%s\n' '{"id":1,"op":"ping"}' |
		as "$1" "$2" "$3" "$KVMRUN_CLIENT" --socket "$SOCK" raw 2>/dev/null
}

FORBIDDEN='{"id":null,"ok":false,"error":{"code":"forbidden","message":"uid * gid *'
FORBIDDEN="$FORBIDDEN"' may not use kvmrund: not in --allow-uid or --allow-group"}}'

start_daemon --workers 1 --socket-mode 0666
like "$(ping_as 65534 65534 -)" '{"id":1,"ok":true,*' \
	"without --allow-uid or --allow-group, whoever reaches the socket is served"

start_daemon --workers 1 --socket-mode 0666 --allow-uid 0
like "$(ping_as 0 0 -)" '{"id":1,"ok":true,*' "--allow-uid 0: root is served"
like "$(ping_as 65534 65534 -)" "$FORBIDDEN" "--allow-uid 0: nobody gets one forbidden line"
as 65534 65534 - "$KVMRUN_CLIENT" --socket "$SOCK" "$GUESTS/hello-real.bin" \
	>/dev/null 2>"$test_dir/err"
like "$? $(cat "$test_dir/err")" "3 kvmrun-client: daemon: forbidden: uid 65534 gid 65534*" \
	"kvmrun-client run as nobody: exit 3 with the daemon's forbidden message"
like "$(wait_log 'refused')" \
	'<4>server: refused a client: pid * uid 65534 gid 65534: not in --allow-uid or*' \
	"a refused peer is logged with its credentials"
r=$(send_lines '{"id":1,"op":"stats"}')
is "$(json "$r" 'r["stats"]["errors"]["forbidden"], r["stats"]["connections_open"]')" \
	'[2, 1]' \
	"stats count the refusals; refused peers hold no connection"

start_daemon --workers 1 --socket-mode 0666 --allow-group nogroup
like "$(ping_as 65534 65534 -)" '{"id":1,"ok":true,*' \
	"--allow-group nogroup (a name): its primary members are served"
like "$(ping_as 0 0 -)" "$FORBIDDEN" "--allow-group nogroup: root is not in it: refused"

start_daemon --workers 1 --socket-mode 0666 --allow-group 4242 --allow-uid 1234
like "$(ping_as 65534 65534 4242)" '{"id":1,"ok":true,*' \
	"--allow-group 4242: a peer with 4242 among its supplementary groups is served"
like "$(ping_as 1234 65534 -)" '{"id":1,"ok":true,*' \
	"--allow-uid and --allow-group together: either admits"
like "$(ping_as 65534 65534 4243)" "$FORBIDDEN" "a peer in neither list is refused"
like "$(ping_as 0 0 -)" "$FORBIDDEN" "root is refused when not listed"

start_daemon --workers 1 --socket-mode 0666 --allow-uid nobody --allow-uid 0
like "$(ping_as 65534 65534 -) $(ping_as 0 0 -)" '{"id":1,"ok":true,* {"id":1,"ok":true,*' \
	"--allow-uid is repeatable and takes user names"

# Bounded, on a socket of their own: a daemon that took these would serve.
timeout 10 "$KVMRUND" --socket "$test_dir/bad-uid.sock" \
	--allow-uid no-such-user-here 2>"$test_dir/err"
like "$? $(cat "$test_dir/err")" '2 kvmrund: --allow-uid no-such-user-here: no such user*' \
	"--allow-uid with an unknown user: exit 2 naming it"
timeout 10 "$KVMRUND" --socket "$test_dir/bad-group.sock" \
	--allow-group no-such-group-here 2>"$test_dir/err"
like "$? $(cat "$test_dir/err")" \
	'2 kvmrund: --allow-group no-such-group-here: no such group*' \
	"--allow-group with an unknown group: exit 2 naming it"

done_testing
