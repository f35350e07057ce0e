#!/bin/sh
# The daemon as a process: SIGTERM with many runs in flight and queued,
# stray signals while runs go on, a soak of requests it refuses (or answers
# unavailable, without KVM) over many connections, and a soak of 10,000
# runs, after each of which its descriptors, threads and memory must be
# where they were.  (test-daemon has the plain SIGTERM and the second
# signal.)  Without KVM what needs a guest running skips.

. "${TOP_SRCDIR:-.}/tests/lib.sh"

SOAK_RUNS=${SOAK_RUNS:-10000}

# --- SIGTERM with runs in flight and queued ---------------------------------
# Four clients with three 300 ms runs each on two workers: 1.8 s of work.
if kvm_or_skip "SIGTERM with 12 runs in flight and queued: exit 0" \
	"it exits in bounded time" "every run queued or running is answered"; then
	start_daemon --workers 2
	slow=$(run_request 0 "$GUESTS/loop-real.bin" real ',"timeout_ms":300')
	clients=
	for i in 1 2 3 4; do
		send_lines "$slow" "$slow" "$slow" >"$test_dir/term.$i" &
		clients="$clients $!"
	done
	wait_runs 12
	started=$(date +%s%N)
	stop_daemon TERM
	rc=$?
	took=$((($(date +%s%N) - started) / 1000000))
	wait $clients
	is "$rc" 0 "SIGTERM with 12 runs in flight and queued: exit 0"
	below "$took" $((5000 * TIME_SCALE)) \
		"it exits in bounded time: $took ms for 1.8 s of work on 2 workers"
	is "$(cat "$test_dir"/term.* | grep -c '"reason":"timeout"')" 12 \
		"every run queued or running is answered"
fi

# --- stray signals ----------------------------------------------------------
# SIGHUP, SIGUSR1 and SIGUSR2 are logged and ignored, SIGPIPE ignored, and a
# stray SIGRTMIN (the engine's vCPU kick) only makes KVM_RUN return early for
# a moment: the 500 ms run in flight meanwhile still runs its full time.
# Without KVM there is no run, but every signal must leave the daemon
# serving all the same.
start_daemon --workers 2
if have_kvm; then
	send_lines "$(run_request 1 "$GUESTS/loop-real.bin" real ',"timeout_ms":500')" \
		>"$test_dir/stray" &
	client=$!
	wait_runs 1
fi
for sig in HUP USR1 USR2 PIPE RTMIN HUP USR1 USR2 PIPE RTMIN; do
	kill -s $sig "$DAEMON_PID" 2>/dev/null || kill -$sig "$DAEMON_PID" 2>/dev/null
	sleep 0.02
done
if kvm_or_skip "a run in flight during stray signals runs its full 500 ms"; then
	wait $client
	is "$(json "$(cat "$test_dir/stray")" 'r["exit"]["reason"], r["stats"]["run_ns"] >= 5e8')" \
		'["timeout", true]' "a run in flight during stray signals runs its full 500 ms"
fi
r=$(send_lines '{"id":1,"op":"ping"}' 2>&1)
is "$(json "$r" 'r["ok"]' 2>/dev/null)" true \
	"stray SIGHUP, SIGUSR1, SIGUSR2, SIGPIPE and SIGRTMIN: still serving"
# A daemon a signal killed is reaped here, and says so.
if [ ! -e "/proc/$DAEMON_PID" ] ||
	[ "$(sed 's/.*) //' "/proc/$DAEMON_PID/stat" 2>/dev/null | cut -d' ' -f1)" = Z ]; then
	wait_exit "$DAEMON_PID"
	rc=$?
	forget_daemon "$DAEMON_PID"
	diag "kvmrund died: exit status $rc$([ $rc -gt 128 ] && echo " (signal $((rc - 128)))")" \
		"$(tail -n 3 "$DAEMON_LOG")"
fi
is "$(grep -c 'ignored' "$DAEMON_LOG")" 6 \
	"each SIGHUP, SIGUSR1 and SIGUSR2 is logged as ignored"

# --- a soak of refusals -----------------------------------------------------
# Requests the daemon answers without a run, pipelined 500 a write over two
# connections, then one each over many short connections, and connections
# that close at once: bad_request from the decoder and from the check of the
# run against guest memory, too_large, and without KVM a valid run
# (unavailable).  A warm-up first, as for the soak of runs below; then every
# answer must be the error its request has, the daemon's descriptors,
# threads and memory must not have moved, and the counters add up.  About
# 13,000 requests: a few seconds.
start_daemon --workers 2 --queue 1024 --max-total-memory 4G
# Each CODE:REQUEST, one of each a turn.
set -- 'bad_request:{"id":1,"op":"run","image":"9A==","bogus":1}' \
	'bad_request:{"id":2,"op":"run","image":"9A==","load_address":2097152}' \
	'too_large:{"id":3,"op":"run","image":"9A==","timeout_ms":60001}'
if ! have_kvm; then
	set -- "$@" 'unavailable:{"id":4,"op":"run","image":"9A=="}'
fi
# refuse TOTAL SHORT CLOSING CODE:REQUEST...: TOTAL requests pipelined, SHORT
# one to a connection, then CLOSING connections closed unused; prints how
# many answers came, how many of them were not the request's CODE, and the
# codes seen.
refuse() {
	"$PYTHON3" - "$SOCK" "$@" <<'EOF'
import collections, json, socket, sys, threading, time
path, total, short, closing = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
kinds = [(c, l.encode() + b"\n") for c, l in (a.split(":", 1) for a in sys.argv[5:])]
BATCH, CONNS = 500, 2
codes = collections.Counter()
wrong = [0]
lock = threading.Lock()

def connect():
    # A full listen backlog fails a connect with a timeout set (EAGAIN): retry.
    deadline = time.monotonic() + 60
    while True:
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(60)
        try:
            s.connect(path)
            return s
        except BlockingIOError:
            s.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)

def check(f, i, seen):
    a = json.loads(f.readline())
    code = a["error"]["code"] if "error" in a else "ok"
    seen[code] += 1
    return code != kinds[i % len(kinds)][0]

def client(k):
    s = connect()
    f = s.makefile("rb")
    seen, bad = collections.Counter(), 0
    for start in range(k * BATCH, total, BATCH * CONNS):
        n = min(BATCH, total - start)
        s.sendall(b"".join(kinds[i % len(kinds)][1] for i in range(start, start + n)))
        for i in range(start, start + n):
            bad += check(f, i, seen)
    s.close()
    with lock:
        codes.update(seen)
        wrong[0] += bad

threads = [threading.Thread(target=client, args=(k,)) for k in range(CONNS)]
for t in threads:
    t.start()
for t in threads:
    t.join()
for i in range(short):
    s = connect()
    s.sendall(kinds[i % len(kinds)][1])
    wrong[0] += check(s.makefile("rb"), i, codes)
    s.close()
for i in range(closing):
    connect().close()
print(sum(codes.values()), "answers,", wrong[0], "not their request's error;",
      sorted(codes.items()))
EOF
}
# snapshot: the daemon's descriptors, threads and VmRSS before a phase.
snapshot() {
	fds=$(proc_fds)
	threads=$(proc_status Threads)
	rss=$(proc_status VmRSS)
}

# unchanged NAME KB: after the phase NAME, descriptors and threads are where
# snapshot found them and VmRSS grew by less than KB.
unchanged() {
	fds_after=$(settle_fds "$fds")
	threads_after=$(proc_status Threads)
	rss_after=$(proc_status VmRSS)
	diag "$1: descriptors $fds -> $fds_after, threads $threads -> $threads_after," \
		"VmRSS $rss kB -> $rss_after kB ($((rss_after - rss)) kB)"
	is "$fds_after" "$fds" "$1: descriptors unchanged ($fds)"
	is "$threads_after" "$threads" "$1: threads unchanged ($threads)"
	if sanitized; then
		skip "$1: VmRSS growth" \
			"a sanitizer holds freed memory back; the plain build and valgrind check it"
	else
		below $((rss_after - rss)) "$2" "$1: VmRSS grew by $((rss_after - rss)) kB (< $2 kB)"
	fi
}

n=$#
refuse $((100 * n)) $((10 * n)) 20 "$@" >/dev/null
snapshot
started=$(date +%s%N)
r=$(refuse $((3000 * n)) $((150 * n)) 300 "$@")
took=$((($(date +%s%N) - started) / 1000000))
diag "refusals: ${r#*; } and 300 unused connections in $took ms"
is "${r%%;*}" "$((3150 * n)) answers, 0 not their request's error" \
	"refusals: all $((3150 * n)) requests answered with their error"
unchanged refusals 2048
# Each kind went out 3260 times, warm-up included.
if have_kvm; then unavailable=0; else unavailable=3260; fi
r=$(send_lines '{"id":1,"op":"stats"}')
is "$(json "$r" '[r["stats"]["errors"][c] for c in ("bad_request", "too_large", "unavailable")] +
	[r["stats"]["connections_open"], sum(r["stats"]["runs"].values())]')" \
	"[6520, 3260, $unavailable, 1, 0]" \
	"refusals: the error counters add up, no run was made, no connection is left open"

# --- a soak -----------------------------------------------------------------
# $SOAK_RUNS runs of hello-real through two connections, 500 pipelined per
# write (with the memory budget to queue them all).  A warm-up first, so
# allocators and prepared VMs reach their steady state before the figures
# are taken.
soak() {
	"$PYTHON3" - "$SOCK" "$1" "$(run_request 0 "$GUESTS/hello-real.bin" real)" <<'EOF'
import socket, sys, threading, time
path, total, line = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode() + b"\n"
BATCH, CONNS = 500, 2
halted = [0] * CONNS

def client(k):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(60)
    s.connect(path)
    f = s.makefile("rb")
    for start in range(k * BATCH, total, BATCH * CONNS):
        n = min(BATCH, total - start)
        s.sendall(line * n)
        for _ in range(n):
            halted[k] += b'"reason":"hlt"' in f.readline()

start = time.monotonic()
threads = [threading.Thread(target=client, args=(k,)) for k in range(CONNS)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(sum(halted), round(time.monotonic() - start, 1))
EOF
}
if kvm_or_skip "soak: all $SOAK_RUNS runs halted" "soak: descriptors unchanged" \
	"soak: threads unchanged" "soak: VmRSS growth" \
	"soak: the counters add up and nothing is left reserved"; then
	soak 1000 >/dev/null
	snapshot
	r=$(soak "$SOAK_RUNS")
	diag "soak: $SOAK_RUNS runs in ${r#* } s"
	is "${r%% *}" "$SOAK_RUNS" "soak: all $SOAK_RUNS runs halted"
	unchanged soak 8192
	r=$(send_lines '{"id":1,"op":"stats"}')
	is "$(json "$r" 'r["stats"]["runs"]["hlt"], r["stats"]["runs_in_flight"],
		r["stats"]["memory_in_use"]')" "[$((SOAK_RUNS + 1000)), 0, 0]" \
		"soak: the counters add up and nothing is left reserved"
fi

done_testing
