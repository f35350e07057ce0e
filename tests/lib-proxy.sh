# HAProxy with mutual TLS in front of kvmrund on one machine, for
# tests/test-proxy.sh and tests/bench/bench-proxy.sh: certificates made
# with openssl, and HAProxy configurations generated from the shipped ones
# in systemd/deploy/ (only paths, ports and names changed).
#
# Needs TOP_SRCDIR and PYTHON3.  Failures print why and exit 99.

PROXY_DEPLOY=$TOP_SRCDIR/systemd/deploy

# proxy_ssl DIR NAME [openssl arguments...]: runs openssl, its chatter in DIR.
proxy_ssl() {
	_dir=$1 _name=$2
	shift 2
	openssl "$@" >>"$_dir/openssl.log" 2>&1 || {
		echo "Bail out! openssl failed making $_name"
		sed 's/^/# /' "$_dir/openssl.log"
		exit 99
	}
}

# proxy_ca DIR NAME: a self-signed CA, DIR/NAME.pem and DIR/NAME.key.
proxy_ca() {
	proxy_ssl "$1" "$2" req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-days 2 -subj "/CN=kvmrun test $2" -keyout "$1/$2.key" -out "$1/$2.pem" \
		-addext basicConstraints=critical,CA:TRUE \
		-addext keyUsage=critical,keyCertSign,cRLSign
}

# proxy_cert DIR NAME CA USAGE [SAN]: DIR/NAME.crt and .key signed by CA,
# and DIR/NAME.pem with both (HAProxy's crt).
proxy_cert() {
	printf 'basicConstraints=CA:FALSE\nextendedKeyUsage=%s\n%s\n' "$4" \
		"${5:+subjectAltName=$5}" >"$1/$2.ext"
	proxy_ssl "$1" "$2" req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-subj "/CN=kvmrun test $2" -keyout "$1/$2.key" -out "$1/$2.csr"
	proxy_ssl "$1" "$2" x509 -req -in "$1/$2.csr" -CA "$1/$3.pem" -CAkey "$1/$3.key" \
		-set_serial "0x$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" \
		-days 2 -extfile "$1/$2.ext" -out "$1/$2.crt"
	cat "$1/$2.crt" "$1/$2.key" >"$1/$2.pem"
}

# proxy_certs DIR: the CA ca, a server certificate host for 127.0.0.1 and
# localhost, client certificates client and front-check; and the file
# names the shipped configurations use, all from that one CA.
proxy_certs() {
	proxy_ca "$1" ca
	proxy_cert "$1" host ca serverAuth "IP:127.0.0.1,DNS:localhost"
	proxy_cert "$1" client ca clientAuth
	proxy_cert "$1" front-check ca clientAuth
	cp "$1/ca.pem" "$1/clients-ca.pem" && cp "$1/ca.pem" "$1/hosts-ca.pem" || exit 99
}

# proxy_free_ports N: N TCP ports free on 127.0.0.1 now.
proxy_free_ports() {
	"$PYTHON3" -c '
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
' "$1"
}

# proxy_generate SHIPPED OUT SED-SCRIPT COUNT: OUT is SHIPPED with SED-SCRIPT
# applied, which must change COUNT lines, or the test would run something
# other than what is shipped.
proxy_generate() {
	sed -e "$3" "$1" >"$2"
	_changed=$(diff "$1" "$2" | grep -c '^<')
	[ "$_changed" -eq "$4" ] || {
		echo "Bail out! ${1##*/}: $4 lines to adapt, $_changed adapted: did its layout change?"
		diff "$1" "$2" | sed 's/^/# /'
		exit 99
	}
}

# proxy_host_config OUT TLS-DIR SUFFIX BIND SOCKET: haproxy-host.cfg with
# the certificates in TLS-DIR, listening on BIND (ADDRESS:PORT[,...]) in
# front of SOCKET, its proxies' names ending in SUFFIX.
proxy_host_config() {
	proxy_generate "$PROXY_DEPLOY/haproxy-host.cfg" "$1" "
/^[^#]/s|/etc/kvmrun/tls/|$2/|g
s|^\(	bind \):7878|\1$4|
s|/run/kvmrun/kvmrun.sock|$5|
s|kvmrun_tls\$|kvmrun_tls$3|
s|kvmrund\$|kvmrund$3|" 5
}

# proxy_front_config OUT TLS-DIR PORT HOST1 HOST2: haproxy-front.cfg on
# 127.0.0.1:PORT over HOST1 and HOST2 (ADDRESS:PORT), checked every 200 ms.
proxy_front_config() {
	proxy_generate "$PROXY_DEPLOY/haproxy-front.cfg" "$1" "
/^[^#]/s|/etc/kvmrun/tls/|$2/|g
s|^\(	bind \):7878|\1127.0.0.1:$3|
s| inter 2s | inter 200ms |
s|kvm-host-1.example.net:7878|$4|
s|kvm-host-2.example.net:7878|$5|" 4
}

# proxy_start LOG PORT... -- CONFIG...: HAProxy in the foreground on
# CONFIGs, its output in LOG; sets PROXY_PID.  False, with LOG saying why,
# when it does not listen on every PORT within 10 s.
proxy_start() {
	_log=$1 _ports=
	shift
	while [ "$1" != "--" ]; do
		_ports="$_ports $1"
		shift
	done
	shift
	_configs=
	for _c in "$@"; do
		_configs="$_configs -f $_c"
	done
	haproxy -db $_configs >"$_log" 2>&1 &
	PROXY_PID=$!
	"$PYTHON3" - $_ports <<'PY'
import socket, sys, time
deadline = time.monotonic() + 10
for port in sys.argv[1:]:
    while True:
        try:
            socket.create_connection(("127.0.0.1", int(port)), 1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                sys.exit(1)
            time.sleep(0.05)
PY
}

# proxy_stop: HAProxy ends.
proxy_stop() {
	[ -n "${PROXY_PID:-}" ] || return 0
	kill "$PROXY_PID" 2>/dev/null
	wait "$PROXY_PID" 2>/dev/null
	PROXY_PID=
}
