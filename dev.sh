#!/bin/bash
# dev.sh: set up a Debian 12 machine for kvmrun, build it, and run it.
#
#   ./dev.sh demo    install what is missing, build, start kvmrund on a
#                    temporary socket and run the hello-world guest in all
#                    four CPU modes through kvmrun-client
#   ./dev.sh check   the same set-up, then the whole suite: make check, the
#                    same under ASan+UBSan, one pass under valgrind, the
#                    fuzzer for a bounded time, and make distcheck
#   ./dev.sh summary the totals of the last check, as CI prints them
#
# Run as root (it installs Debian packages); builds go to build/ and
# build-asan/ beside this script.
set -euo pipefail

top=$(cd "$(dirname "$0")" && pwd)
build=$top/build
build_asan=$top/build-asan
results=$top/build/check-results
jobs=$(nproc)

packages=(
	build-essential autoconf automake libtool pkg-config binutils
	libev-dev libjson-c-dev libsystemd-dev libseccomp-dev
	python3 socat valgrind systemd clang bsdextrautils
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
		echo "/dev/kvm: NOT usable, KVM tests were skipped: ${out:-no answer}"
	fi
}

demo() {
	local dir sock pid mode status=0
	dir=$(mktemp -d)
	sock=$dir/kvmrun.sock
	say "starting kvmrund on $sock"
	"$build/kvmrund" --socket "$sock" &
	pid=$!
	trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
	for _ in $(seq 100); do
		[ -S "$sock" ] && "$build/kvmrun-client" --socket "$sock" ping >/dev/null 2>&1 && break
		sleep 0.05
	done
	for mode in real protected paged long; do
		say "hello world in $mode mode"
		"$build/kvmrun-client" --socket "$sock" --mode "$mode" --dump 0x400:1 \
			"$build/tests/guests/hello-$mode.bin" || status=$?
	done
	say "$(kvm_status)"
	return $status
}

# record NAME LOG: keeps a test-suite.log for the summary.
record() {
	mkdir -p "$results"
	cp "$2" "$results/$1.log" 2>/dev/null || true
}

# single NAME STATUS: a check that counts as one test (valgrind, fuzz, distcheck).
single() {
	mkdir -p "$results"
	if [ "$2" -eq 0 ]; then
		printf '# PASS: 1\n# FAIL: 0\n' >"$results/$1.log"
	else
		printf '# PASS: 0\n# FAIL: 1\n' >"$results/$1.log"
	fi
}

check() {
	local status=0 rc
	rm -rf "$results"

	say "make check"
	rc=0
	make -C "$build" -j"$jobs" check || rc=$?
	record check "$build/test-suite.log"
	[ $rc -eq 0 ] || { status=1; cat "$build/test-suite.log" || true; }

	say "make check under AddressSanitizer and UndefinedBehaviorSanitizer"
	configure_in "$build_asan" --enable-sanitizers
	rc=0
	make -C "$build_asan" -j"$jobs" check || rc=$?
	record asan "$build_asan/test-suite.log"
	[ $rc -eq 0 ] || { status=1; cat "$build_asan/test-suite.log" || true; }

	say "make distcheck"
	rc=0
	make -C "$build" -j"$jobs" distcheck >"$build/distcheck.out" 2>&1 || rc=$?
	single distcheck $rc
	[ $rc -eq 0 ] || { status=1; tail -n 60 "$build/distcheck.out"; }

	return $status
}

summary() {
	local pass=0 fail=0 skip=0 f n
	for f in "$results"/*.log; do
		[ -f "$f" ] || continue
		n=$(sed -n 's/^# PASS: *//p' "$f" | head -n1); pass=$((pass + ${n:-0}))
		n=$(sed -n 's/^# XFAIL: *//p' "$f" | head -n1); pass=$((pass + ${n:-0}))
		n=$(sed -n 's/^# SKIP: *//p' "$f" | head -n1); skip=$((skip + ${n:-0}))
		for key in FAIL XPASS ERROR; do
			n=$(sed -n "s/^# $key: *//p" "$f" | head -n1); fail=$((fail + ${n:-0}))
		done
	done
	kvm_status
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
