#!/bin/bash
# dev.sh: set up a Debian 12 machine for kvmrun, build it, and run it.
#
#   ./dev.sh demo    install what is missing, build, start kvmrund on a
#                    temporary socket and run the hello-world guest in all
#                    four CPU modes through kvmrun-client
#   ./dev.sh check   the same set-up, then the whole suite: make check, the
#                    same under ASan+UBSan, the daemon's tests under TSan,
#                    test-daemon with kvmrund under valgrind, the protocol
#                    fuzzer for a bounded time, and make distcheck
#   ./dev.sh summary the totals of the last check, as CI prints them
#
# Run as root (it installs Debian packages); builds go to build/,
# build-asan/ and build-tsan/ beside this script.
set -euo pipefail

top=$(cd "$(dirname "$0")" && pwd)
build=$top/build
build_asan=$top/build-asan
build_tsan=$top/build-tsan
results=$top/build/check-results
jobs=$(nproc)

packages=(
	build-essential autoconf automake libtool pkg-config binutils
	libev-dev libjson-c-dev libsystemd-dev libseccomp-dev zlib1g-dev libcapstone-dev
	python3 mypy socat valgrind systemd clang bsdextrautils
	libgnutls28-dev haproxy openssl python3-yaml udev
)

say() { printf '\n== %s\n' "$*"; }

install_missing() {
	local missing=()
	for p in "${packages[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
			missing+=("$p")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		say "installing ${missing[*]}"
		if [ "$(id -u)" -ne 0 ]; then
			echo "dev.sh: missing packages (${missing[*]}) and not root: run as root" >&2
			exit 1
		fi
		apt-get update -q
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
	fi
}

bootstrap() {
	if [ ! -x "$top/configure" ] || [ "$top/configure.ac" -nt "$top/configure" ] ||
	   [ "$top/Makefile.am" -nt "$top/Makefile.in" ]; then
		say "autoreconf"
		(cd "$top" && autoreconf -fi)
	fi
}

# configure_in DIR [configure options...]
configure_in() {
	local dir=$1
	shift
	mkdir -p "$dir"
	if [ ! -f "$dir/Makefile" ] || [ "$top/configure" -nt "$dir/Makefile" ]; then
		(cd "$dir" && "$top/configure" -q --enable-werror "$@")
	fi
}

build_main() {
	configure_in "$build"
	say "building in $build"
	make -C "$build" -j"$jobs"
	make -C "$build" -j"$jobs" check TESTS=
}

kvm_status() {
	local out
	if out=$("$build/tests/kvmrun-once" --quiet "$build/tests/guests/hello-real.bin" 2>&1); then
		echo "/dev/kvm: usable (a real-mode guest ran and halted)"
	else
		echo "/dev/kvm: NOT usable here: ${out:-no answer}"
	fi
}

# Explains, after a ping that found no KVM (its answer in $1), why the demo
# cannot run guests on this machine and what would fix it.
explain_no_kvm() {
	local reason=${1#*KVM unavailable: }
	# Only the reason's line: ping goes on with the round trip.
	reason=${reason%%$'\n'*}
	cat >&2 <<EOT

kvmrun cannot run guests on this machine: it has no usable /dev/kvm.
The daemon started and answers (see the ping above), but every run is
answered 'unavailable'. The daemon's reason: $reason
To fix: load the KVM module for this CPU (modprobe kvm_intel or kvm_amd),
enable virtualization (VT-x/AMD-V) in the firmware, or, when this machine
is itself a VM, enable nested virtualization for it; in a container, pass
/dev/kvm in. The user running kvmrund needs read-write access to it (the
kvm group). kvmrund probes again by itself: no restart is needed.
EOT
}

# Globals, so the EXIT trap still sees them after demo returns.
demo_dir=
demo_pid=

demo() {
	local dir sock mode ping rc status=0
	demo_dir=$(mktemp -d)
	dir=$demo_dir
	sock=$dir/kvmrun.sock
	say "starting kvmrund on $sock"
	"$build/kvmrund" --socket "$sock" &
	demo_pid=$!
	trap 'kill "$demo_pid" 2>/dev/null; wait "$demo_pid" 2>/dev/null; rm -rf "$demo_dir"' EXIT
	for _ in $(seq 100); do
		[ -S "$sock" ] && "$build/kvmrun-client" --socket "$sock" ping >/dev/null 2>&1 && break
		sleep 0.05
	done
	say "ping"
	rc=0
	ping=$("$build/kvmrun-client" --socket "$sock" ping) || rc=$?
	echo "$ping"
	if [ $rc -ne 0 ]; then
		return $rc
	fi
	case $ping in
	*"KVM unavailable: "*)
		explain_no_kvm "$ping"
		return 5
		;;
	esac
	# A mode this host's KVM cannot do is answered unsupported (exit 3) with
	# the reason, which is shown; any other failure fails the demo.
	for mode in real protected paged long; do
		say "hello world in $mode mode"
		rc=0
		"$build/kvmrun-client" --socket "$sock" --mode "$mode" --dump 0x400:1 \
			"$build/tests/guests/hello-$mode.bin" 2>"$dir/err" || rc=$?
		cat "$dir/err" >&2
		if [ $rc -ne 0 ] && ! { [ $rc -eq 3 ] && grep -q ': unsupported: ' "$dir/err"; }; then
			status=$rc
		fi
	done
	say "$(kvm_status)"
	return $status
}

# record NAME DIR: keeps DIR's test-suite.log for the summary, with the
# number of checks that skipped for want of KVM.
record() {
	mkdir -p "$results"
	cp "$2/test-suite.log" "$results/$1.log" 2>/dev/null || true
	echo "# KVM-SKIP: $(kvm_skips "$2")" >>"$results/$1.log"
}

# single NAME STATUS [SUITE-LOG]: a check that counts as one test (TSan,
# valgrind, fuzz, distcheck).  With the test-suite.log of the tests it ran, a
# stage whose tests all skipped is a SKIP, not a PASS.
single() {
	local pass
	mkdir -p "$results"
	if [ "$2" -ne 0 ]; then
		printf '# PASS: 0\n# FAIL: 1\n' >"$results/$1.log"
		return
	fi
	pass=1
	if [ -n "${3:-}" ]; then
		pass=$(sed -n 's/^# PASS: *//p' "$3" | head -n1)
	fi
	if [ "${pass:-0}" -gt 0 ]; then
		printf '# PASS: 1\n# FAIL: 0\n' >"$results/$1.log"
	else
		printf '# PASS: 0\n# FAIL: 0\n# SKIP: 1\n' >"$results/$1.log"
		echo "dev.sh: the $1 stage ran no test: every test in it skipped" >&2
	fi
}

# kvm_skips DIR: how many checks the tests of the build in DIR skipped for
# want of KVM (lib.sh and tap.h give those skips the reason "needs KVM").
kvm_skips() {
	cat "$1"/tests/*.log 2>/dev/null | grep -c '^\(ok .*\|1\.\.0\) # SKIP needs KVM' || true
}

# Seconds the fuzzer runs; a crash or a failed property fails the check.
fuzz_seconds=60

check() {
	local status=0 rc start=$SECONDS
	rm -rf "$results"

	say "make check"
	rc=0
	make -C "$build" -j"$jobs" check || rc=$?
	record check "$build"
	[ $rc -eq 0 ] || { status=1; cat "$build/test-suite.log" || true; }

	say "make check under AddressSanitizer and UndefinedBehaviorSanitizer"
	configure_in "$build_asan" --enable-sanitizers
	rc=0
	make -C "$build_asan" -j"$jobs" check || rc=$?
	record asan "$build_asan"
	[ $rc -eq 0 ] || { status=1; cat "$build_asan/test-suite.log" || true; }

	# A race report stops the daemon, so the test that drove it fails.
	say "the daemon's tests under ThreadSanitizer"
	configure_in "$build_tsan" --enable-sanitizers=thread
	rc=0
	TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
		make -C "$build_tsan" -j"$jobs" check TESTS='$(TSAN_TESTS)' || rc=$?
	single tsan $rc "$build_tsan/test-suite.log"
	[ $rc -eq 0 ] || { status=1; cat "$build_tsan/test-suite.log" || true; }

	# lib.sh's start_daemon runs kvmrund under the wrapper (without the
	# seccomp filter, which would stop valgrind); a daemon with errors or
	# definitely lost memory exits 99, which its test counts as a failure.
	say "test-daemon.sh with kvmrund under valgrind"
	rm -rf "$build/valgrind"
	mkdir -p "$build/valgrind"
	rc=0
	KVMRUND_WRAPPER="valgrind --error-exitcode=99 --leak-check=full \
--errors-for-leak-kinds=definite --track-fds=yes --log-file=$build/valgrind/%p.log" \
		make -C "$build" check TESTS=tests/test-daemon.sh || rc=$?
	single valgrind $rc "$build/test-suite.log"
	[ $rc -eq 0 ] || { status=1; cat "$build/test-suite.log" "$build"/valgrind/*.log || true; }

	# New inputs go to a scratch corpus; the seeds and the regressions
	# kept in the tree are read, and run first.
	say "fuzzing the protocol decoder for $fuzz_seconds s"
	rm -rf "$build/fuzz-corpus" "$build/fuzz-crashes"
	mkdir -p "$build/fuzz-corpus" "$build/fuzz-crashes"
	rc=0
	make -C "$build" fuzz >"$build/fuzz.out" 2>&1 &&
		"$build/tests/fuzz/fuzz-request" -max_total_time=$fuzz_seconds -timeout=10 \
			-print_final_stats=1 -artifact_prefix="$build/fuzz-crashes/" \
			"$build/fuzz-corpus" "$top/tests/fuzz/corpus" "$top/tests/fuzz/regressions" \
			>>"$build/fuzz.out" 2>&1 || rc=$?
	single fuzz $rc
	grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)' "$build/fuzz.out" || true
	if [ $rc -ne 0 ]; then
		status=1
		tail -n 60 "$build/fuzz.out"
		echo "dev.sh: the failing input is in $build/fuzz-crashes/;" \
			"fix the bug and keep the input in tests/fuzz/regressions/" >&2
	fi

	say "make distcheck"
	rc=0
	make -C "$build" -j"$jobs" distcheck >"$build/distcheck.out" 2>&1 || rc=$?
	single distcheck $rc
	[ $rc -eq 0 ] || { status=1; tail -n 60 "$build/distcheck.out"; }

	say "check took $((SECONDS - start)) s"
	return $status
}

summary() {
	local pass=0 fail=0 skip=0 kvm_skip=0 f n
	for f in "$results"/*.log; do
		[ -f "$f" ] || continue
		n=$(sed -n 's/^# PASS: *//p' "$f" | head -n1); pass=$((pass + ${n:-0}))
		n=$(sed -n 's/^# XFAIL: *//p' "$f" | head -n1); pass=$((pass + ${n:-0}))
		n=$(sed -n 's/^# SKIP: *//p' "$f" | head -n1); skip=$((skip + ${n:-0}))
		n=$(sed -n 's/^# KVM-SKIP: *//p' "$f" | head -n1); kvm_skip=$((kvm_skip + ${n:-0}))
		for key in FAIL XPASS ERROR; do
			n=$(sed -n "s/^# $key: *//p" "$f" | head -n1); fail=$((fail + ${n:-0}))
		done
	done
	kvm_status
	if [ -e /dev/kvm ] && [ "$kvm_skip" -eq 0 ]; then
		echo "KVM: present; no check skipped for want of it"
	else
		echo "KVM: ABSENT or unusable on this machine: $kvm_skip checks that run" \
			"guests were skipped, so this is NOT a full run"
	fi
	echo "$pass passed, $fail failed, $skip skipped"
}

case "${1:-}" in
demo)
	install_missing
	bootstrap
	build_main
	demo
	;;
check)
	install_missing
	bootstrap
	build_main
	check
	;;
summary)
	summary
	;;
*)
	echo "usage: ./dev.sh demo|check|summary" >&2
	exit 2
	;;
esac
