#!/bin/sh
# The systemd units: they verify, the service's sandbox keeps its security
# score, systemd-socket-activate starts kvmrund on the first connection and
# the next connection reuses it, and make install puts the units where
# systemd looks.  (sd_notify and refused sockets are in test-daemon.sh.)
. "$TOP_SRCDIR/tests/lib.sh"

# The exposure systemd-analyze gave the service when the sandbox was last
# tightened; the test fails if a change raises it.
recorded_exposure=0.6

make_test_dir
units="$test_dir/units"
mkdir -p "$units"
cp "$TOP_SRCDIR/systemd/kvmrund.socket" "$units/"
# The unit as built names the installed daemon; verify this build's one.
sed "s|^ExecStart=[^ ]*|ExecStart=$KVMRUND|" "$TOP_BUILDDIR/systemd/kvmrund.service" \
	>"$units/kvmrund.service"

if [ "$SYSTEMD_ANALYZE" = no ] || [ ! -x "$SYSTEMD_ANALYZE" ]; then
	skip "systemd-analyze verify" "systemd-analyze not found"
	skip "systemd-analyze security" "systemd-analyze not found"
else
	if out=$("$SYSTEMD_ANALYZE" verify --man=no "$units/kvmrund.socket" \
		 "$units/kvmrund.service" 2>&1); then
		ok "systemd-analyze verify accepts kvmrund.socket and kvmrund.service"
	else
		not_ok "systemd-analyze verify accepts kvmrund.socket and kvmrund.service"
		diag "$out"
	fi
	exposure=$("$SYSTEMD_ANALYZE" security --offline=true "$units/kvmrund.service" 2>&1 |
		sed -n 's/.*Overall exposure level for kvmrund.service: \([0-9.]*\).*/\1/p')
	diag "systemd-analyze security: exposure $exposure (recorded $recorded_exposure)"
	if [ -n "$exposure" ] && awk -v e="$exposure" -v r="$recorded_exposure" \
		'BEGIN { exit !(e <= r) }'; then
		ok "the service's exposure $exposure is at most the recorded $recorded_exposure"
	else
		not_ok "the service's exposure '$exposure' is at most the recorded $recorded_exposure"
	fi
fi

# The sbindir the build was configured with, as make spells it.
sbindir=$(MAKEFLAGS= MAKELEVEL= make -s --no-print-directory -C "$TOP_BUILDDIR" \
	--eval='print-sbindir: ; @echo $(sbindir)' print-sbindir)
is "$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$TOP_BUILDDIR/systemd/kvmrund.service")" \
	"$sbindir/kvmrund" "kvmrund.service starts the configured sbindir's kvmrund ($sbindir)"

# make install with DESTDIR puts both units in the unit directory.
dest="$test_dir/dest"
if make -s -C "$TOP_BUILDDIR" install-systemdsystemunitDATA DESTDIR="$dest" \
	>"$test_dir/install.out" 2>&1; then
	# The Makefile's value may name $(prefix) (distcheck): let make expand it.
	# MAKEFLAGS from make check would have it print directories too.
	unitdir=$(MAKEFLAGS= MAKELEVEL= make -s --no-print-directory -C "$TOP_BUILDDIR" \
		--eval='print-unitdir: ; @echo $(systemdsystemunitdir)' print-unitdir)
	if [ -f "$dest$unitdir/kvmrund.socket" ] && [ -f "$dest$unitdir/kvmrund.service" ]; then
		ok "make install DESTDIR= puts the units in $unitdir"
	else
		not_ok "make install DESTDIR= puts the units in $unitdir"
		diag "$(cd "$dest" && find . -type f)"
	fi
else
	not_ok "make install DESTDIR= puts the units where systemd looks"
	diag "$(cat "$test_dir/install.out")"
fi

if [ "$SYSTEMD_SOCKET_ACTIVATE" = no ] || [ ! -x "$SYSTEMD_SOCKET_ACTIVATE" ]; then
	skip "socket activation" "systemd-socket-activate not found"
	done_testing
	exit
fi

# systemd-socket-activate binds the socket and, without --accept, execs
# kvmrund at once with it (systemd proper waits for the first connection;
# this tool cannot show that part), so the connections below are served by
# the daemon it passed the listening socket to.
SOCK="$test_dir/activated.sock"
"$SYSTEMD_SOCKET_ACTIVATE" -l "$SOCK" "$KVMRUND" 2>"$test_dir/activate.log" &
track_daemon $!
wait_socket "$SOCK" 5 || { echo "Bail out! systemd-socket-activate did not listen"; exit 99; }

# Without KVM the daemon still comes up on the passed socket and says why runs
# cannot happen, instead of exiting and being started again on every connection.
out=$("$KVMRUN_CLIENT" --socket "$SOCK" ping 2>&1)
rc=$?
if have_kvm; then
	like "$rc:$out" "0:kvmrund *, protocol 3, KVM API 12, modes real protected*long" \
		"the first connection reaches the activated kvmrund, which has KVM"
else
	like "$rc:$out" "0:kvmrund *, protocol 3, KVM unavailable: /dev/kvm: *" \
		"the first connection reaches the activated kvmrund, which says why it has no KVM"
fi
if kvm_or_skip "the socket-activated kvmrund runs hello world"; then
	out=$("$KVMRUN_CLIENT" --socket "$SOCK" --quiet "$GUESTS/hello-real.bin" 2>&1)
	is "$?:$out" "0:Hello, world!" "the socket-activated kvmrund runs hello world"
fi

first=$(send_lines '{"id":1,"op":"stats"}')
second=$(send_lines '{"id":2,"op":"stats"}')
total_first=$(json "$first" 'r["stats"]["connections_total"]')
total_second=$(json "$second" 'r["stats"]["connections_total"]')
is "$((total_second - total_first))" 1 \
	"a later connection is served by the same kvmrund ($total_first, then $total_second connections)"
is "$(cat /proc/"$DAEMON_PID"/comm)" kvmrund "kvmrund runs in the activator's process"
like "$(cat "$test_dir/activate.log")" "*(from systemd)*" \
	"kvmrund says it serves the socket systemd passed"

stop_daemon TERM
is "$?" 0 "the socket-activated kvmrund stops with 0 on SIGTERM"

done_testing
