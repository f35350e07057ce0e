#!/bin/sh
# The daemon as a process: SIGTERM with many runs in flight and queued,
# stray signals while runs go on, and a soak of 10,000 runs after which its
# descriptors, threads and memory must be where they were.
# (test-daemon has the plain SIGTERM and the second signal.)

. "${TOP_SRCDIR:-.}/tests/lib.sh"

need_kvm

SOAK_RUNS=${SOAK_RUNS:-10000}

# --- SIGTERM with runs in flight and queued ---------------------------------
# Four clients with three 300 ms runs each on two workers: 1.8 s of work.
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
below "$took" 5000 "it exits in bounded time: $took ms for 1.8 s of work on 2 workers"
is "$(cat "$test_dir"/term.* | grep -c '"reason":"timeout"')" 12 \
	"every run queued or running is answered"

# --- stray signals ----------------------------------------------------------
# SIGHUP, SIGUSR1 and SIGUSR2 are logged and ignored, SIGPIPE ignored, and a
# stray SIGRTMIN (the engine's vCPU kick) only makes KVM_RUN return early for
# a moment: the 500 ms run in flight meanwhile still runs its full time.
start_daemon --workers 2
send_lines "$(run_request 1 "$GUESTS/loop-real.bin" real ',"timeout_ms":500')" \
	>"$test_dir/stray" &
client=$!
wait_runs 1
for sig in HUP USR1 USR2 PIPE RTMIN HUP USR1 USR2 PIPE RTMIN; do
	kill -s $sig "$DAEMON_PID" 2>/dev/null || kill -$sig "$DAEMON_PID"
	sleep 0.02
done
wait $client
is "$(json "$(cat "$test_dir/stray")" 'r["exit"]["reason"], r["stats"]["run_ns"] >= 5e8')" \
	'["timeout", true]' "a run in flight during stray signals runs its full 500 ms"
r=$(send_lines '{"id":1,"op":"ping"}')
is "$(json "$r" 'r["ok"]')" true \
	"stray SIGHUP, SIGUSR1, SIGUSR2, SIGPIPE and SIGRTMIN: still serving"
is "$(grep -c 'ignored' "$DAEMON_LOG")" 6 \
	"each SIGHUP, SIGUSR1 and SIGUSR2 is logged as ignored"

# --- a soak -----------------------------------------------------------------
# $SOAK_RUNS runs of hello-real through two connections, 500 pipelined per
# write (with the memory budget to queue them all).  A warm-up first, so
# allocators and prepared VMs reach their steady state before the figures
# are taken.
start_daemon --workers 2 --queue 1024 --max-total-memory 4G
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
soak 1000 >/dev/null
fds=$(proc_fds)
threads=$(proc_status Threads)
rss=$(proc_status VmRSS)
r=$(soak "$SOAK_RUNS")
fds_after=$(settle_fds "$fds")
threads_after=$(proc_status Threads)
rss_after=$(proc_status VmRSS)
diag "soak: $SOAK_RUNS runs in ${r#* } s" \
	"descriptors $fds -> $fds_after, threads $threads -> $threads_after," \
	"VmRSS $rss kB -> $rss_after kB ($((rss_after - rss)) kB)"
is "${r%% *}" "$SOAK_RUNS" "soak: all $SOAK_RUNS runs halted"
is "$fds_after" "$fds" "soak: descriptors unchanged ($fds)"
is "$threads_after" "$threads" "soak: threads unchanged ($threads)"
if ldd "$KVMRUND" | grep -q -e libasan -e libtsan; then
	skip "soak: VmRSS growth" \
		"a sanitizer holds freed memory back; the plain build and valgrind check it"
else
	below $((rss_after - rss)) 8192 "soak: VmRSS grew by $((rss_after - rss)) kB (< 8 MiB)"
fi
r=$(send_lines '{"id":1,"op":"stats"}')
is "$(json "$r" 'r["stats"]["runs"]["hlt"], r["stats"]["runs_in_flight"],
	r["stats"]["memory_in_use"]')" "[$((SOAK_RUNS + 1000)), 0, 0]" \
	"soak: the counters add up and nothing is left reserved"

done_testing
