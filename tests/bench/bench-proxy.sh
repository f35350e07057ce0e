#!/bin/sh
# kvmrun-bench with its daemon rows also measured through HAProxy and TLS,
# in one run: starts kvmrund, HAProxy on 127.0.0.1 with
# systemd/deploy/haproxy-host.cfg in front of it (certificates made here
# with openssl), and runs kvmrun-bench --socket ... --via-proxy ... with the
# options given.  Needs KVM, haproxy and openssl.
#
#   tests/bench/bench-proxy.sh BUILD-DIR [kvmrun-bench options...]
set -eu

if [ $# -lt 1 ] || [ ! -x "$1/kvmrun-bench" ]; then
	echo "usage: $0 BUILD-DIR [kvmrun-bench options...] (BUILD-DIR holds kvmrun-bench)" >&2
	exit 2
fi
build=$(cd "$1" && pwd)
shift
TOP_SRCDIR=$(cd "$(dirname "$0")/../.." && pwd)
: "${PYTHON3:=python3}"
. "$TOP_SRCDIR/tests/lib-proxy.sh"

dir=$(mktemp -d "${TMPDIR:-/tmp}/kvmrun-bench-proxy.XXXXXX")
daemon_pid=
finish() {
	set +e # what was killed exits by its signal
	proxy_stop
	[ -z "$daemon_pid" ] || { kill "$daemon_pid" 2>/dev/null; wait "$daemon_pid" 2>/dev/null; }
	rm -rf "$dir"
}
trap finish EXIT
trap 'exit 1' INT TERM

proxy_certs "$dir"
"$build/kvmrund" --socket "$dir/kvmrun.sock" 2>"$dir/kvmrund.log" &
daemon_pid=$!
port=$(proxy_free_ports 1)
proxy_host_config "$dir/host.cfg" "$dir" 1 "127.0.0.1:$port" "$dir/kvmrun.sock"
if ! proxy_start "$dir/haproxy.log" "$port" -- "$dir/host.cfg"; then
	cat "$dir/haproxy.log" >&2
	exit 1
fi
"$build/kvmrun-bench" --socket "$dir/kvmrun.sock" --daemon-pid "$daemon_pid" \
	--via-proxy "tls://127.0.0.1:$port" --ca "$dir/ca.pem" \
	--cert "$dir/client.crt" --key "$dir/client.key" "$@"
