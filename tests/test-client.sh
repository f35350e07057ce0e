#!/bin/sh
# kvmrun-client against a real kvmrund on a temporary socket: each command
# and option, each exit status, flat images from files and stdin, ELF images
# built here from assembly, and raw pipelining.  What needs no guest to run
# is checked on hosts without /dev/kvm too: usage errors, ELF refusals, the
# daemon's errors (exit 3 and 5), a daemon out of reach or breaking off (4),
# the requests the options make and how recorded answers are shown, both
# through a stand-in daemon.

. "$TOP_SRCDIR/tests/lib.sh"

make_test_dir
# A daemon without KVM on any host, for exit status 5.
start_daemon --kvm "$test_dir/nokvm"
NOKVM_SOCK=$SOCK
start_daemon
KVMRUN_SOCKET=$SOCK
export KVMRUN_SOCKET
unset NO_COLOR

# A stand-in for kvmrund, for answers no daemon gives on demand, on the
# socket argv[1].  For each connection it reads what to do from files in the
# directory argv[2], written before the client starts: it saves the request
# line in "request" (and appends it to "requests"), then per
# "fake.behaviour" sends the line in "fake.answer" (answer; its Nth line to
# the Nth connection, the last to any after it), its first half
# and hangs up (half), hangs up without a word (close), or says nothing
# until the client goes (silent).
# It ends with the test's shell.
cat >"$test_dir/fake.py" <<'EOF'
import os, socket, sys
path, where = sys.argv[1:]
parent = os.getppid()
s = socket.socket(socket.AF_UNIX)
s.bind(path)
s.listen(8)
s.settimeout(1)
open(os.path.join(where, "fake.ready"), "w").close()
while os.getppid() == parent:
    try:
        c, _ = s.accept()
    except socket.timeout:
        continue
    with open(os.path.join(where, "fake.behaviour")) as f:
        behaviour = f.read().strip()
    with open(os.path.join(where, "fake.answer"), "rb") as f:
        answers = f.read().splitlines(keepends=True)
    c.settimeout(30)
    try:
        line = c.makefile("rb").readline()
        with open(os.path.join(where, "request"), "wb") as f:
            f.write(line)
        with open(os.path.join(where, "requests"), "ab+") as f:
            f.write(line)
            f.seek(0)
            tries = len(f.read().splitlines())
        # The first connection gets the first line, the next the next...
        answer = answers[min(tries, len(answers)) - 1]
        if behaviour == "answer":
            c.sendall(answer)
        elif behaviour == "half":
            c.sendall(answer[:len(answer) // 2])
        elif behaviour == "silent":
            while c.recv(65536):
                pass
    except OSError as e:
        print("fake kvmrund:", e, file=sys.stderr)
    c.close()
EOF
FAKE_SOCK="$test_dir/fake.sock"
"$PYTHON3" "$test_dir/fake.py" "$FAKE_SOCK" "$test_dir" 2>"$test_dir/fake.log" &
fake_pid=$!
_deadline=$(($(date +%s) + 10 * TIME_SCALE))
until [ -e "$test_dir/fake.ready" ]; do
	if [ "$(date +%s)" -ge "$_deadline" ]; then
		echo "Bail out! the stand-in daemon did not come up"
		exit 99
	fi
	sleep 0.02
done

# fake_next BEHAVIOUR [ANSWER]: what the stand-in does with the next
# connection, ANSWER being the line it has to send.
fake_next() {
	printf '%s\n' "$1" >"$test_dir/fake.behaviour"
	printf '%s\n' "${2:-}" >"$test_dir/fake.answer"
	rm -f "$test_dir/request" "$test_dir/requests"
}

# fake BEHAVIOUR ANSWER ARG...: kvmrun-client ARG... against the stand-in,
# like client.
fake() {
	fake_next "$1" "$2"
	shift 2
	client --socket "$FAKE_SOCK" "$@"
}

# request EXPR: EXPR (see json) of the request line the stand-in got, as r.
request() {
	json "$(cat "$test_dir/request")" "$1"
}

# answer FIELDS: the answer line of a run, as kvmrund sends it: a halt in real
# mode with every field, the JSON object FIELDS merged into it.
answer() {
	"$PYTHON3" -c '
import json, sys
regs = "rax rbx rcx rdx rsi rdi rsp rbp r8 r9 r10 r11 r12 r13 r14 r15 rip rflags"
r = {"id": 1, "ok": True, "exit": {"reason": "hlt"},
     "regs": dict.fromkeys(regs.split(), 0),
     "sregs": {"cr0": 0x60000010, "cr2": 0, "cr3": 0, "cr4": 0, "efer": 0},
     "console": "", "io_log": [], "dump": [], "stats": {"exits": 1, "run_ns": 0}}
for seg in "cs ds es ss fs gs tr ldt".split():
    r["sregs"][seg] = {"selector": 0, "base": 0}
def merge(into, new):
    for k, v in new.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict):
            merge(into[k], v)
        else:
            into[k] = v
merge(r, json.loads(sys.argv[1]))
print(json.dumps(r, separators=(",", ":")))
' "$1"
}

halt=$(answer '{}')
hello='Hello, world!'
printf '%s\n' "$hello" >"$test_dir/hello.txt"
esc=$(printf '\033')

# --- version, help, ping, stats ---------------------------------------------

client --version
status_is 0 "--version exits 0"
like "$out" "kvmrun-client [0-9]*" "--version names the program and version"
like "$out" "kvmrun-client [0-9]*.[0-9]* (protocol 3)" "--version names the protocol version"
version_out=$out
version=${out#kvmrun-client }
version=${version%% *}

client -V
status_is 0 "-V exits 0"
is "$out" "$version_out" "-V is --version"

client --help
status_is 0 "--help exits 0"
like "$out" "*Exit status:*4  the daemon could not be reached*" "--help documents the exit status"
like "$out" "*
  5  the daemon has no usable /dev/kvm*" "--help documents exit status 5"
help_out=$out

# The exit statuses: one table, the same in --help, the man page and the
# README, each status on its line or lines.
cat >"$test_dir/tables.py" <<'EOF'
import re, sys

def norm(text):
    return " ".join(text.replace("\\-", "-").split())

def from_help(text):
    table, status = {}, None
    for line in text.split("\nExit status:\n", 1)[1].splitlines():
        m = re.match(r"  (\d)  (.*)", line)
        if m:
            status = m.group(1)
            table[status] = m.group(2)
        elif line.startswith("     ") and status is not None:
            table[status] += " " + line
        else:
            break
    return table

def from_man(text):
    section = text.split("\n.Sh EXIT STATUS\n", 1)[1].split("\n.Sh ", 1)[0]
    items = section.split("\n.Bl ", 1)[1].split("\n.El", 1)[0]
    table = {}
    for item in items.split("\n.It ")[1:]:
        status, _, rest = item.partition("\n")
        table[status] = rest
    return table

def from_readme(text):
    return {m.group(1): m.group(2) for m in re.finditer(r"^\| (\d) \| (.*) \|$", text, re.M)}

tables = [from_help(open(sys.argv[1]).read()), from_man(open(sys.argv[2]).read()),
          from_readme(open(sys.argv[3]).read())]
for name, table in zip(("--help", "kvmrun-client.1", "README.md"), tables):
    print(name, sorted((k, norm(v)) for k, v in table.items()))
EOF
client --help
printf '%s\n' "$out" >"$test_dir/help"
"$PYTHON3" "$test_dir/tables.py" "$test_dir/help" "$TOP_SRCDIR/man/kvmrun-client.1" \
	"$TOP_SRCDIR/README.md" >"$test_dir/tables" 2>&1
help_table=$(sed -n 's/^--help //p' "$test_dir/tables")
like "$help_table" "*('6', 'the daemon had no room (error busy): try again later, or with --retry')*" \
	"--help's exit status table reads as a table, busy included"
is "$(sed -n 's/^kvmrun-client.1 //p' "$test_dir/tables")" "$help_table" \
	"the man page's exit status table is --help's"
is "$(sed -n 's/^README.md //p' "$test_dir/tables")" "$help_table" \
	"the README's exit status table is --help's"

client -h
status_is 0 "-h exits 0"
is "$out" "$help_out" "-h is --help"

client ping
status_is 0 "ping exits 0"
if have_kvm; then
	# --paged=auto serves paged everywhere, in compatibility mode where
	# KVM keeps no legacy paging (kvm_pvm), which ping marks.
	is "$(head -n 1 "$test_dir/out" | sed 's/ paged (compat) / paged /')" \
		"kvmrund $version, protocol 3, KVM API 12, modes real protected paged long" \
		"ping shows the daemon's versions and KVM's modes"
else
	is "$(head -n 1 "$test_dir/out")" "kvmrund $version, protocol 3, KVM unavailable: $KVM_REASON" \
		"ping shows the daemon's versions and why there is no KVM"
fi
like "$(sed -n 2p "$test_dir/out")" "round trip [0-9]*.[0-9][0-9][0-9] ms" \
	"ping shows the round-trip time"

client ping --json
status_is 0 "ping --json exits 0"
is "$(json "$out" 'r["ok"]')" true "ping --json prints the response line"
is "$(json "$out" 'r["protocol"]')" 3 "ping --json has protocol 3"
if have_kvm; then kvm=true; else kvm=false; fi
is "$(json "$out" 'r["kvm"]["available"]')" "$kvm" "ping --json says whether KVM is available"

client -j ping
status_is 0 "-j exits 0"
is "$(json "$out" 'r["protocol"]')" 3 "-j prints the response line"

client stats
status_is 0 "stats exits 0"
like "$out" "*uptime:*workers:*finished:*errors:*connections:*" "stats shows the counters"
case $out in
*"$esc"*) not_ok "stats has no colour when stdout is no terminal" ;;
*) ok "stats has no colour when stdout is no terminal" ;;
esac

client --json stats
is "$(json "$out" 'r["ok"]')" true "stats --json prints the response line"

# steps_ns: nothing before the daemon timed a run, then each step's mean.
client stats
case $out in
*steps:*) not_ok "stats shows no steps before a run is timed" && diag "$out" ;;
*) ok "stats shows no steps before a run is timed" ;;
esac
client --json stats
fake answer "$(json "$out" 'dict(r, stats=dict(r["stats"], steps_ns=dict(
	r["stats"]["steps_ns"], runs=2, parse=3000, first_entry=81000, write=5000)))')" stats
like "$out" "*
steps:       mean us of 2 runs: loop_to_parser 0.0 parse 1.5 parser_to_loop 0.0 *first_entry 40.5 * write 2.5" \
	"stats shows the mean of each step of the daemon's steps_ns"

# --- colour: only on a terminal, and not with NO_COLOR -----------------------

bold_uptime="${esc}[1muptime:${esc}[0m"
client_tty stats
status_is 0 "stats on a terminal exits 0"
like "$out" "$bold_uptime *" "stats on a terminal is in colour"
NO_COLOR=1 client_tty stats
case $out in
uptime:*"$esc"*) not_ok "NO_COLOR=1 turns the colour off" && diag "$out" ;;
uptime:*) ok "NO_COLOR=1 turns the colour off" ;;
*) not_ok "NO_COLOR=1 turns the colour off" && diag "$out" ;;
esac
NO_COLOR='' client_tty stats
like "$out" "$bold_uptime *" "an empty NO_COLOR leaves the colour on"

fake_next answer "$(answer '{"console":"hi\n"}')"
client_tty --socket "$FAKE_SOCK" "$GUESTS/hello-real.bin"
status_is 0 "a halt shown on a terminal exits 0"
like "$out" "hi
${esc}[2m-- end of console --${esc}[0m
${esc}[1mexit:${esc}[0m ${esc}[32mhlt${esc}[0m
${esc}[2max=${esc}[0m0000 *" "a halt on a terminal is green, the registers' names dim"
fake_next answer "$(answer '{"exit":{"reason":"shutdown"}}')"
client_tty --socket "$FAKE_SOCK" "$GUESTS/hello-real.bin"
status_is 1 "a shutdown shown on a terminal exits 1"
like "$out" "${esc}[1mexit:${esc}[0m ${esc}[31mshutdown${esc}[0m
*" "another exit on a terminal is red"
fake_next answer "$halt"
NO_COLOR=yes client_tty --socket "$FAKE_SOCK" "$GUESTS/hello-real.bin"
like "$out" "exit: hlt
ax=0000 *" "NO_COLOR takes the colour off a run's summary"

# --- terminal safety: control bytes shown on a terminal, sent through a pipe --

# The console with ESC, BEL, CR, DEL and a C1 CSI (c2 9b) among text.
ctl_answer=$(answer '{"console": "a\u001b[2Jb\tc\u0007\r\u007f\u009bd\n"}')
fake_next answer "$ctl_answer"
NO_COLOR=1 client_tty --socket "$FAKE_SOCK" "$GUESTS/hello-real.bin"
status_is 0 "a console with control bytes on a terminal exits 0"
like "$out" 'a\\x1b[2Jb	c\\x07\\x0d\\x7f\\xc2\\x9bd
-- end of console --
exit: hlt*' "on a terminal the console's control bytes are shown, \\n and \\t kept"
fake_next answer "$ctl_answer"
NO_COLOR=1 client_tty --socket "$FAKE_SOCK" --raw-console -q "$GUESTS/hello-real.bin"
if printf 'a\033[2Jb\tc\007\r\177\302\233d\n' | cmp -s "$test_dir/out" -; then
	ok "--raw-console sends the console's bytes to a terminal as they are"
else
	not_ok "--raw-console sends the console's bytes to a terminal as they are"
	diag "$(od -c "$test_dir/out")"
fi
fake answer "$ctl_answer" -q "$GUESTS/hello-real.bin"
if printf 'a\033[2Jb\tc\007\r\177\302\233d\n' | cmp -s "$test_dir/out" -; then
	ok "piped, the console's bytes are exact"
else
	not_ok "piped, the console's bytes are exact"
	diag "$(od -c "$test_dir/out")"
fi
fake answer "$halt" --raw-console ping
status_is 2 "--raw-console is a run option"
ping_ctl='{"id":1,"ok":true,"version":"9\u001b]0;owned\u0007","protocol":3,"kvm":{"available":false,"reason":"no\u001b[5m"}}'
fake_next answer "$ping_ctl"
client_tty --socket "$FAKE_SOCK" ping
is "$(head -n 1 "$test_dir/out")" 'kvmrund 9\x1b]0;owned\x07, protocol 3, KVM unavailable: no\x1b[5m' \
	"on a terminal the daemon's version and reason show their control bytes"
fake answer "$ping_ctl" ping
is "$(head -n 1 "$test_dir/out")" "kvmrund 9${esc}]0;owned$(printf '\007'), protocol 3, KVM unavailable: no${esc}[5m" \
	"piped, the daemon's strings are as they came"

TERM=dumb client_tty stats
case $out in
uptime:*"$esc"*) not_ok "TERM=dumb turns the colour off" && diag "$out" ;;
uptime:*) ok "TERM=dumb turns the colour off" ;;
*) not_ok "TERM=dumb turns the colour off" && diag "$out" ;;
esac
client_tty --color=never stats
case $out in
uptime:*"$esc"*) not_ok "--color=never on a terminal has no colour" && diag "$out" ;;
uptime:*) ok "--color=never on a terminal has no colour" ;;
*) not_ok "--color=never on a terminal has no colour" && diag "$out" ;;
esac
client --color=always stats
like "$out" "$bold_uptime *" "--color=always colours a pipe"
NO_COLOR=1 TERM=dumb client --color always stats
like "$out" "$bold_uptime *" "--color always wins over NO_COLOR and TERM=dumb"
client_tty --color auto stats
like "$out" "$bold_uptime *" "--color auto colours a terminal"

# --- hello world in every mode -----------------------------------------------

for mode in real protected paged long; do
	if ! kvm_or_skip "hello world in $mode mode exits 0" \
		"hello world in $mode mode prints its console" \
		"hello world in $mode mode shows the exit and registers"; then
		# The request passes the daemon's checks; only KVM is missing.
		client --mode "$mode" "$GUESTS/hello-$mode.bin"
		status_is 5 "hello world in $mode mode is answered unavailable (exit 5)"
		continue
	fi
	client --mode "$mode" "$GUESTS/hello-$mode.bin"
	if [ "$mode" = paged ] && [ "$status" = 3 ]; then
		case $err in
		*unsupported*)
			skip "hello world in paged mode" "${err#kvmrun-client: }"
			continue
			;;
		esac
	fi
	status_is 0 "hello world in $mode mode exits 0"
	is "$(head -n 1 "$test_dir/out")" "$hello" "hello world in $mode mode prints its console"
	like "$out" "*
exit: hlt
*bx=*4b4f*stats: * exits, *.* ms" "hello world in $mode mode shows the exit and registers"
done

if kvm_or_skip "--quiet exits 0" "--quiet prints the console bytes and nothing else" \
	"an image on stdin (-) exits 0" "an image on stdin (-) runs" \
	"run --json exits 0 for a halt" "run --json prints the response line" \
	"run --json keeps the console in the line"; then
	client --quiet --mode long "$GUESTS/hello-long.bin"
	status_is 0 "--quiet exits 0"
	if cmp -s "$test_dir/out" "$test_dir/hello.txt"; then
		ok "--quiet prints the console bytes and nothing else"
	else
		not_ok "--quiet prints the console bytes and nothing else"
		diag "$out"
	fi

	client -q - <"$GUESTS/hello-real.bin"
	status_is 0 "an image on stdin (-) exits 0"
	is "$out" "$hello" "an image on stdin (-) runs"

	client run --json "$GUESTS/hello-real.bin"
	status_is 0 "run --json exits 0 for a halt"
	is "$(json "$out" 'r["exit"]["reason"]')" hlt "run --json prints the response line"
	is "$(json "$out" 'r["console"]')" "$hello" "run --json keeps the console in the line"
fi

# --- run options -------------------------------------------------------------

if kvm_or_skip "--dump shows memory in hexdump -C layout" \
	"--dump of the image matches hexdump -C of its file" "--dump is repeatable" \
	"--dump sizes take K and repeated rows squeeze to *"; then
	client --dump 0x400:16 "$GUESTS/hello-real.bin"
	like "$out" "*dump: 0x400, 16 bytes
00000400  2a 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00  |\*...............|
00000410
*" "--dump shows memory in hexdump -C layout"

	size=$(wc -c <"$GUESTS/hello-real.bin" | tr -d ' ')
	client --dump "0:$size" --dump 0x400:1 "$GUESTS/hello-real.bin"
	sed -n "/^dump: 0x0, $size bytes\$/,/^[0-9a-f]*\$/p" "$test_dir/out" | sed 1d >"$test_dir/dump"
	if ! command -v hexdump >/dev/null; then
		skip "--dump of the image matches hexdump -C of its file" "no hexdump (bsdextrautils)"
	elif hexdump -C "$GUESTS/hello-real.bin" | cmp -s "$test_dir/dump" -; then
		ok "--dump of the image matches hexdump -C of its file"
	else
		not_ok "--dump of the image matches hexdump -C of its file"
		diag "$(hexdump -C "$GUESTS/hello-real.bin" | diff - "$test_dir/dump")"
	fi
	like "$out" "*dump: 0x400, 1 byte
00000400  2a  *|\*|
00000401*" "--dump is repeatable"

	client --dump 0x1000:4K --memory 2M "$GUESTS/hello-real.bin"
	like "$out" "*dump: 0x1000, 4096 bytes
00001000  00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00  |................|
\*
00002000*" "--dump sizes take K and repeated rows squeeze to *"
fi

if kvm_or_skip "a guest stopped by its timeout exits 1" \
	"--reg sets registers, hex and decimal" "--reg takes decimal" \
	"--seg sets a real-mode segment" \
	"--load-address with --seg and --reg rip exits 0" "--load-address places the image" \
	"--load-address alone starts the guest there" "--load-address moves rip along" \
	"--memory 4M exits 0" "--memory takes K" "--region exits 0" \
	"--region loads a file's bytes"; then
	client --reg rcx=0x1234 --reg rsi=4096 --reg r15=0xffffffffffffffff \
		--timeout-ms 500 "$GUESTS/loop-long.bin" --mode long
	status_is 1 "a guest stopped by its timeout exits 1"
	like "$out" "*rcx=0000000000001234*r15=ffffffffffffffff*" "--reg sets registers, hex and decimal"
	like "$out" "*rsi=0000000000001000*" "--reg takes decimal"

	client --seg es=0x1234 "$GUESTS/hello-real.bin"
	like "$out" "*es=1234*" "--seg sets a real-mode segment"

	# The real-mode hello guest is linked at 0: at 0x1000 it needs cs = ds = 0x100.
	client --load-address 0x1000 --seg cs=0x100 --seg ds=0x100 --reg rip=0 \
		--dump 0x1400:1 "$GUESTS/hello-real.bin"
	status_is 0 "--load-address with --seg and --reg rip exits 0"
	like "$out" "$hello*00001400  2a *" "--load-address places the image"

	client --mode long --load-address 0x8000 "$GUESTS/hello-long.bin"
	status_is 0 "--load-address alone starts the guest there"
	like "$out" "$hello*rip=00000000000080*" "--load-address moves rip along"

	client --memory 4M --mode long "$GUESTS/hello-long.bin"
	status_is 0 "--memory 4M exits 0"
	client --memory 4096K --mode long "$GUESTS/hello-long.bin"
	status_is 0 "--memory takes K"

	printf 'XYZ' >"$test_dir/region.bin"
	client --region "0x3000:$test_dir/region.bin" --dump 0x3000:3 "$GUESTS/hello-real.bin"
	status_is 0 "--region exits 0"
	like "$out" "*00003000  58 59 5a *|XYZ|*" "--region loads a file's bytes"
fi

if kvm_or_skip "a port the daemon does not serve exits 1" "an io exit shows its details" \
	"--log-port lets the guest go on" "--log-port records the writes" \
	"--timeout-ms 100 on a loop exits 1" "--timeout-ms ends the run as timeout" \
	"--timeout 100ms on a loop exits 1" "--timeout takes a unit" \
	"a triple fault exits 1" "a triple fault ends as shutdown" \
	"an mmio access exits 1" "an mmio exit shows its details" \
	"a page fault exits 1" "an exception shows its vector, error code and cr2" \
	"a console flood exits 1" "a full console ends as output_limit"; then
	client "$GUESTS/out-port-real.bin"
	status_is 1 "a port the daemon does not serve exits 1"
	like "$out" "*exit: io: out port 0x80, size 1, count 1, data 42*" "an io exit shows its details"

	client --log-port 0x80 --log-port 0x81 "$GUESTS/out-port-real.bin"
	status_is 0 "--log-port lets the guest go on"
	like "$out" "*io log: 2 records
  port 0x0080 size 1 value 0x42
  port 0x0080 size 1 value 0x43*" "--log-port records the writes"

	client --timeout-ms 100 "$GUESTS/loop-real.bin"
	status_is 1 "--timeout-ms 100 on a loop exits 1"
	like "$out" "*exit: timeout*" "--timeout-ms ends the run as timeout"

	client --timeout 100ms "$GUESTS/loop-real.bin"
	status_is 1 "--timeout 100ms on a loop exits 1"
	like "$out" "*exit: timeout*" "--timeout takes a unit"

	client --mode protected "$GUESTS/triple-fault-protected.bin"
	status_is 1 "a triple fault exits 1"
	like "$out" "*exit: shutdown*" "a triple fault ends as shutdown"

	client --mode protected "$GUESTS/mmio-protected.bin"
	status_is 1 "an mmio access exits 1"
	like "$out" "*exit: mmio: write 0x10000000, length 4, data 78 56 34 12*" \
		"an mmio exit shows its details"

	client --mode long --reg rdi=3 "$GUESTS/faults-long.bin"
	status_is 1 "a page fault exits 1"
	like "$out" "*exit: exception: #PF (vector 14) at *:0*
      error code 0x* (*present * *), cr2 0x100000000
*" "an exception shows its vector, error code and cr2"

	# The guest fills the console a page per exit, 64 exits: a timeout is a
	# failure, even under nested KVM or a sanitizer (within the daemon's
	# default --max-timeout-ms).
	flood_s=$((10 * TIME_SCALE))
	[ "$flood_s" -le 60 ] || flood_s=60
	client --mode long --timeout "${flood_s}s" "$GUESTS/console-flood-long.bin"
	status_is 1 "a console flood exits 1"
	is "$(grep -a -E '^(console|exit):' "$test_dir/out")" "console: truncated
exit: output_limit: console full" "a full console ends as output_limit"
fi

# --- daemon errors: exit 3 ---------------------------------------------------

client --memory 1G "$GUESTS/hello-real.bin"
status_is 3 "--memory over the daemon's --max-memory exits 3"
is "$err" "kvmrun-client: --memory 1G: more than the daemon allows, at most 256M (its --max-memory)" \
	"--memory past the daemon's limit is said in the client's terms"
client --timeout 2m "$GUESTS/hello-real.bin"
status_is 3 "--timeout over the daemon's --max-timeout-ms exits 3"
is "$err" "kvmrun-client: --timeout 120000ms: longer than the daemon allows, at most 60000ms (its --max-timeout-ms)" \
	"--timeout past the daemon's limit is said in the client's terms"
fake answer '{"id":1,"ok":false,"error":{"code":"too_large","message":"memory_size: 8392704 is over the limit of 8392705 (--max-memory)"}}' \
	"$GUESTS/hello-real.bin"
is "$err" "kvmrun-client: --memory 8196K: more than the daemon allows, at most 0x801001 (its --max-memory)" \
	"a size that is no whole K, M or G is said in hex, as --memory takes it"
fake answer '{"id":1,"ok":false,"error":{"code":"too_large","message":"dump: the lengths add up to more than the limit of 4 bytes (--max-dump-bytes)"}}' \
	"$GUESTS/hello-real.bin"
is "$status/$err" "3/kvmrun-client: daemon: too_large: dump: the lengths add up to more than the limit of 4 bytes (--max-dump-bytes)" \
	"a too_large of another form is shown as it is"

# Only the daemon knows a real-mode rip must fit 16 bits.
client --reg rip=0x12345 "$GUESTS/hello-real.bin"
status_is 3 "a real-mode rip past 0xffff exits 3"
like "$err" "kvmrun-client: daemon: bad_request: *rip*" "a real-mode rip past 0xffff is a bad request"

client --json --reg rip=0x12345 "$GUESTS/hello-real.bin"
status_is 3 "--json keeps exit status 3"
is "$(json "$out" 'r["ok"]')" false "--json prints an error response as it is"

# --- a daemon without KVM: exit 5 --------------------------------------------

nokvm_reason="$test_dir/nokvm: No such file or directory"
client -s "$NOKVM_SOCK" ping
status_is 0 "ping of a daemon without KVM exits 0"
is "$(head -n 1 "$test_dir/out")" "kvmrund $version, protocol 3, KVM unavailable: $nokvm_reason" \
	"ping says why the daemon has no KVM"

client -s "$NOKVM_SOCK" "$GUESTS/hello-real.bin"
status_is 5 "a run on a daemon without KVM exits 5"
is "$err" "kvmrun-client: daemon: unavailable: no usable KVM on this host: $nokvm_reason" \
	"the daemon's unavailable error is shown"
is "$out" "" "an unavailable run prints nothing on stdout"

client -s "$NOKVM_SOCK" --json --mode long "$GUESTS/hello-long.bin"
status_is 5 "--json keeps exit status 5"
is "$(json "$out" 'r["error"]["code"]')" unavailable "--json prints the unavailable answer as it is"

# Requests are checked first: a bad one is a bad one with or without KVM.
client -s "$NOKVM_SOCK" --reg rip=0x12345 "$GUESTS/hello-real.bin"
status_is 3 "a bad request to a daemon without KVM exits 3, not 5"
like "$err" "kvmrun-client: daemon: bad_request: *rip*" "a bad request without KVM is named as such"

client -s "$NOKVM_SOCK" stats
is "$(sed -n 's/^errors: *//p' "$test_dir/out")" "3 (bad_request 1, unavailable 2)" \
	"stats counts the unavailable answers"

# --- the daemon out of reach: exit 4 -----------------------------------------

client --socket /nonexistent ping
status_is 4 "--socket /nonexistent exits 4"
is "$err" "kvmrun-client: cannot connect to /nonexistent: No such file or directory (is kvmrund or kvmrund.socket running?)" \
	"an unreachable daemon is named with a hint"

KVMRUN_SOCKET=/nonexistent client ping
status_is 4 "KVMRUN_SOCKET chooses the socket"
KVMRUN_SOCKET=/nonexistent client --socket "$SOCK" --connect-timeout 2s ping
status_is 0 "--socket overrides KVMRUN_SOCKET; --connect-timeout takes a duration"
KVMRUN_SOCKET=/nonexistent client -s "$SOCK" ping
status_is 0 "-s is --socket"
like "$out" "kvmrund $version, protocol 3, *" "-s reaches the daemon"
client -s /nonexistent ping
status_is 4 "-s /nonexistent exits 4"
like "$err" "kvmrun-client: cannot connect to /nonexistent: *" "-s names the socket it could not reach"
KVMRUN_SOCKET=/nonexistent client --connect-timeout 1m -s "$SOCK" ping
status_is 0 "--connect-timeout takes minutes"

# A listener that never accepts, its backlog filled: connect must give up.
"$PYTHON3" - "$test_dir/full.sock" "$test_dir/full.ready" <<'EOF' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
s.listen(0)
held = []
for _ in range(2):
    c = socket.socket(socket.AF_UNIX)
    c.setblocking(False)
    try:
        c.connect(sys.argv[1])
    except BlockingIOError:
        pass
    held.append(c)
open(sys.argv[2], "w").close()
time.sleep(30)
EOF
full_pid=$!
for _ in $(seq 50); do
	[ -e "$test_dir/full.ready" ] && break
	sleep 0.1
done
client --socket "$test_dir/full.sock" --connect-timeout 300ms ping
status_is 4 "--connect-timeout gives up on a full backlog with exit 4"
is "$err" "kvmrun-client: cannot connect to $test_dir/full.sock: backlog full until the timeout" \
	"a full backlog is reported"
kill "$full_pid"
wait_exit "$full_pid" 5 2>/dev/null

if kvm_or_skip "--response-timeout shorter than the run exits 4" \
	"a response timeout is reported"; then
	client --response-timeout 200ms --timeout-ms 5000 "$GUESTS/loop-real.bin"
	status_is 4 "--response-timeout shorter than the run exits 4"
	like "$err" "kvmrun-client: $SOCK: no answer within 200 ms" "a response timeout is reported"
fi

# --- a daemon that breaks off or answers wrong: exit 4 -------------------------

fake silent "" --response-timeout 1 "$GUESTS/hello-real.bin"
status_is 4 "a daemon that does not answer in --response-timeout exits 4"
is "$err" "kvmrun-client: $FAKE_SOCK: no answer within 1000 ms" \
	"--response-timeout takes bare seconds"

fake close "" "$GUESTS/hello-real.bin"
status_is 4 "a daemon that hangs up without answering exits 4"
is "$err" "kvmrun-client: $FAKE_SOCK: hung up without answering" "a hang-up is reported"

fake half "$(answer '{"console":"cut short"}')" "$GUESTS/hello-real.bin"
status_is 4 "a daemon that hangs up in the middle of an answer exits 4"
is "$err" "kvmrun-client: $FAKE_SOCK: connection closed in the middle of a line" \
	"an answer cut short is reported"
is "$out" "" "nothing of an answer cut short is shown"

fake half '{"id":1,"ok":true,"version":"0.1.0","protocol":3,"kvm":{"available":false,"reason":"x"}}' ping
status_is 4 "ping with an answer cut short exits 4"

fake answer 'not json' "$GUESTS/hello-real.bin"
status_is 4 "an answer that is no JSON exits 4"
like "$err" "kvmrun-client: $FAKE_SOCK: unreadable answer: *" "an unreadable answer is reported"

fake answer "$(answer '{"id":2}')" "$GUESTS/hello-real.bin"
status_is 4 "an answer for another id exits 4"
is "$err" "kvmrun-client: $FAKE_SOCK: answer for id 2, not 1" "an answer for another id is reported"

fake answer '{"id":1,"ok":true,"version":"0.1.0","protocol":3,"kvm":{"available":false,"reason":"x"}}' \
	"$GUESTS/hello-real.bin"
status_is 4 "a ping's answer to a run exits 4"
is "$err" "kvmrun-client: $FAKE_SOCK: answer of the wrong kind for run" "an answer of the wrong kind is reported"

# An error about a line too long to find the id in comes with id null.
fake answer '{"id":null,"ok":false,"error":{"code":"busy","message":"too many connections"}}' ping
status_is 6 "an error answer with id null exits with its code's status (busy: 6)"
is "$err" "kvmrun-client: daemon: busy: too many connections" "an error with id null is shown"

printf '%s\n' '{"id":1,"op":"ping"}' >"$test_dir/raw.in"
fake close "" raw <"$test_dir/raw.in"
status_is 4 "raw with a daemon that hangs up exits 4"
is "$err" "kvmrun-client: $FAKE_SOCK: hung up with 1 request unanswered" "raw reports the requests left unanswered"

# --- usage errors: exit 2 ----------------------------------------------------

cd "$test_dir" || exit 99
client guest.bin
status_is 2 "a missing image exits 2"
is "$err" "kvmrun-client: guest.bin: No such file or directory" "a missing image is named"
cd - >/dev/null || exit 99

client --memory 3000 "$GUESTS/hello-real.bin"
status_is 2 "--memory 3000 exits 2"
is "$err" "kvmrun-client: --memory 3000: not a multiple of 4096
Try 'kvmrun-client --help'." "--memory must be a multiple of 4096"

client --frobnicate "$GUESTS/hello-real.bin"
status_is 2 "an unknown option exits 2"
like "$err" "kvmrun-client: unknown option --frobnicate*" "an unknown option is named"

client --timeout-ms abc "$GUESTS/hello-real.bin"
status_is 2 "a bad number exits 2"
like "$err" "kvmrun-client: --timeout-ms abc: not a number*" "a bad number is named"

for args in "--mode foo" "--ring 2" "--reg foo=1" "--reg rax" "--seg tr=1" \
	"--seg cs=0x10000" "--log-port 65536" "--dump 0x400" "--dump 0x400:0" \
	"--region 0x1000" "--timeout 5x" "--timeout 1h" "--timeout 35792m" \
	"--load-address -1" "--memory 4T"; do
	# shellcheck disable=SC2086 # each case is an option and its value
	client $args "$GUESTS/hello-real.bin"
	status_is 2 "$args exits 2"
done

client --mode
status_is 2 "an option without its value exits 2"
like "$err" "kvmrun-client: option --mode needs a value*" "a missing value is named"

client
status_is 2 "no image exits 2"
client "$GUESTS/hello-real.bin" "$GUESTS/hello-real.bin"
status_is 2 "two images exit 2"
client ping --mode long
status_is 2 "a run option with ping exits 2"
like "$err" "kvmrun-client: --mode applies to run, not ping*" "a run option elsewhere is named"
client stats extra
status_is 2 "an operand after stats exits 2"
client /dev/null
status_is 2 "an empty image exits 2"
client "$test_dir"
status_is 2 "a directory as image exits 2"
like "$err" "kvmrun-client: $test_dir: Is a directory" "a directory is refused as it is"
client --timeout 35792m "$GUESTS/hello-real.bin"
is "$err" "kvmrun-client: --timeout 35792m: too long (at most 2147483647 ms)
Try 'kvmrun-client --help'." "a duration past INT_MAX ms is refused"

# Messages that name the whole value and say what is wrong (issue 20).
while IFS='|' read -r args message; do
	# shellcheck disable=SC2086 # each case is options and their values
	client $args "$GUESTS/hello-real.bin"
	status_is 2 "$args exits 2"
	is "$err" "kvmrun-client: $message
Try 'kvmrun-client --help'." "$args: $message"
done <<'EOF'
--reg rax=-1|--reg rax=-1: not a number (decimal, or hex with 0x)
--dump 0x400:16:3|--dump 0x400:16:3: not a size (a number, then K, M or G)
--reg rax=0x10000000000000000|--reg rax=0x10000000000000000: out of range (0 to 18446744073709551615, or 0xffffffffffffffff)
--seg cs=0x10000|--seg cs=0x10000: out of range (0 to 65535, or 0xffff)
--log-port 99999999999999999999|--log-port 99999999999999999999: out of range (0 to 65535, or 0xffff)
--memory 99999999999999999999|--memory 99999999999999999999: out of range (at most 0xffffffffffffffff bytes)
--dump 0:17179869184G|--dump 0:17179869184G: out of range (at most 0xffffffffffffffff bytes)
--timeout 99999999999999999999|--timeout 99999999999999999999: too long (at most 2147483647 ms)
--json=1|option --json takes no value, not --json=1
--quiet=yes|option --quiet takes no value, not --quiet=yes
--m real|option --m is ambiguous: it may be --mode, --memory or --max-instructions
--ti 5|option --ti is ambiguous: it may be --timeout-ms or --timeout
--color blue|--color blue: not auto, always or never
--region 0x1000:- --region 0x2000:-|stdin (-) can be read only once, but --region 0x1000:- and --region 0x2000:- both name it
EOF

client --region 0x1000:- -
status_is 2 "the image and a region both on stdin exit 2"
is "$err" "kvmrun-client: stdin (-) can be read only once, but the IMAGE and --region 0x1000:- both name it
Try 'kvmrun-client --help'." "stdin named twice is refused with the reason"
client -s "" ping
status_is 2 "an empty --socket exits 2"
like "$err" "kvmrun-client: --socket: an empty path names no socket*" "an empty --socket is refused"
client -s /etc/hostname ping
status_is 4 "a --socket that is no socket exits 4"
is "$err" "kvmrun-client: cannot connect to /etc/hostname: not a socket" "a --socket that is no socket is named so"
client /dev/zero
status_is 2 "an endless image exits 2"
is "$err" "kvmrun-client: /dev/zero: larger than guest memory (0x200000 bytes): give a larger --memory" \
	"an image larger than guest memory is refused once past it"
head -c 2097152 /dev/zero >"$test_dir/2m.bin"
fake answer "$halt" "$test_dir/2m.bin"
status_is 0 "an image of exactly the guest memory is sent"
head -c 4097 /dev/zero >"$test_dir/4k1.bin"
fake answer "$halt" --memory 4K --region "0x0:$test_dir/4k1.bin" "$GUESTS/hello-real.bin"
like "$err" "kvmrun-client: $test_dir/4k1.bin: larger than guest memory (0x1000 bytes)*" \
	"a region larger than guest memory is refused"

# --- what the options send ---------------------------------------------------
# The request line each run makes, as a stand-in daemon receives it.

fake answer "$halt" --mode long --ring 3 --load-address 0x8000 --memory 4096K \
	--reg rcx=0x1234 --reg rsi=4096 --reg r15=0xffffffffffffffff --timeout-ms 500 \
	--log-port 0x80 --log-port 129 --dump 0x400:16 --dump 0x1000:4K "$GUESTS/hello-long.bin"
status_is 0 "a halt from the stand-in daemon exits 0"
is "$(request 'r["image"]')" "$(base64 -w0 "$GUESTS/hello-long.bin")" "the image is sent as it is"
is "$(request 'sorted((k, v) for k, v in r.items() if k != "image")')" \
	'[["dump", [{"address": 1024, "length": 16}, {"address": 4096, "length": 4096}]], ["id", 1], ["load_address", 32768], ["log_ports", [128, 129]], ["memory_size", 4194304], ["mode", "long"], ["regs", {"rcx": 4660, "rsi": 4096, "r15": 18446744073709551615}], ["ring", 3], ["timeout_ms", 500]]' \
	"run options make their request fields"

printf 'XYZ' >"$test_dir/region.bin"
fake answer "$halt" --seg cs=0x100 --seg es=0x1234 --reg rip=0 \
	--region "0x3000:$test_dir/region.bin" --region "0x4000:$test_dir/hello.txt" \
	"$GUESTS/hello-real.bin"
is "$(request 'sorted((k, v) for k, v in r.items() if k != "image")')" \
	'[["id", 1], ["regions", [{"address": 12288, "data": "WFla"}, {"address": 16384, "data": "SGVsbG8sIHdvcmxkIQo="}]], ["regs", {"rip": 0}], ["segments", {"cs": 256, "es": 4660}]]' \
	"--seg, --reg rip=0 and --region make their request fields"

fake answer "$halt" "$GUESTS/hello-real.bin"
is "$(request 'sorted(r)')" '["id", "image"]' "a run without options sends only the id and the image"

# What the client can tell without the daemon it says in its own terms,
# before connecting (exit 2, not 4 for the socket that is not there).
for case in "--timeout 0|--timeout 0: a guest needs at least 1 ms" \
	"--timeout-ms 0|--timeout-ms 0: a guest needs at least 1 ms" \
	"--timeout 0x1.5s|--timeout 0x1.5s: not a duration (500ms, 1.5s, 2s, 1m...)" \
	"--ring 3|--ring 3 needs --mode protected, paged or long: the default, real, mode has no ring 3" \
	"--mode real --ring 3|--ring 3 needs --mode protected, paged or long: real mode has no ring 3" \
	"--mode long --seg cs=0|--seg sets real-mode segment selectors; in long mode the engine sets the segments (leave --seg out)"; do
	# shellcheck disable=SC2086
	client -s "$test_dir/none.sock" ${case%%|*} "$GUESTS/hello-real.bin"
	status_is 2 "${case%%|*}: refused before connecting, exit 2"
	like "$err" "kvmrun-client: ${case#*|}*" "${case%%|*}: the client says why in its terms"
done

for timeout in 100ms:100 2:2000 2s:2000 1.5s:1500 0.25:250 2.5ms:2 0.5m:30000 \
	1m:60000 35791m:2147460000; do
	fake answer "$halt" --timeout "${timeout%%:*}" "$GUESTS/hello-real.bin"
	is "$(request 'r["timeout_ms"]')" "${timeout#*:}" "--timeout ${timeout%%:*} is ${timeout#*:} ms"
done

fake answer "$halt" -q - <"$GUESTS/hello-real.bin"
status_is 0 "an image on stdin (-) with a halt exits 0"
is "$(request 'r["image"]')" "$(base64 -w0 "$GUESTS/hello-real.bin")" "an image on stdin (-) is sent as it is"

# --- a file named like a command ---------------------------------------------
# The first operand is a command when it names one: a file called ping in the
# current directory runs as ./ping or as run ping (kvmrun-client(1)).

cd "$test_dir" || exit 99
cp "$GUESTS/hello-real.bin" ping
client ping
status_is 0 "ping with a file named ping here exits 0"
like "$out" "kvmrund $version, protocol 3, *" "ping with a file named ping here is the command"
fake answer "$halt" ./ping
status_is 0 "./ping exits 0"
is "$(request 'r.get("op", "run") + " " + r["image"]')" "run $(base64 -w0 ping)" \
	"./ping runs the file named ping"
fake answer "$halt" run ping
status_is 0 "run ping exits 0"
is "$(request 'r.get("op", "run") + " " + r["image"]')" "run $(base64 -w0 ping)" \
	"run ping runs the file named ping"
rm ping
cd - >/dev/null || exit 99

# --- recorded answers, as shown ----------------------------------------------
# What the client prints for answers recorded here as kvmrund sends them.

fake answer "$(answer '{"console": "Hello, world!\n",
	"regs": {"rbx": 19279, "rsp": 65534, "rip": 23, "rflags": 514},
	"sregs": {"cr0": 1610612752, "cs": {"selector": 256, "base": 4096}, "tr": {"selector": 0, "base": 2031616}},
	"io_log": [{"port": 128, "size": 1, "value": 66}, {"port": 129, "size": 2, "value": 4660}],
	"dump": [{"address": 1024, "data": "KgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAABBQgA="}],
	"stats": {"exits": 3, "run_ns": 48211}}')" "$GUESTS/hello-real.bin"
status_is 0 "a recorded halt exits 0"
is "$out" "Hello, world!
-- end of console --
exit: hlt
ax=0000  bx=4b4f  cx=0000  dx=0000  si=0000  di=0000  sp=fffe  bp=0000
ip=0017  flags=0202 IF
cr0=60000010  cr2=00000000  cr3=00000000  cr4=00000000
cs=0100  ds=0000  es=0000  ss=0000  fs=0000  gs=0000  tr=0000  ldt=0000
 cs.base=00001000   tr.base=001f0000
io log: 2 records
  port 0x0080 size 1 value 0x42
  port 0x0081 size 2 value 0x1234
dump: 0x400, 35 bytes
00000400  2a 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00  |*...............|
00000410  00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00  |................|
00000420  41 42 00                                          |AB.|
00000423
stats: 3 exits, 0.048 ms" "a recorded halt in real mode is shown in full, 16-bit registers"

# --- the summary: the mode's registers at their width, in 80 columns ---------

# longest_line: the widest line of the last output, in characters.
longest_line() {
	awk '{ if (length($0) > n) n = length($0) } END { print n + 0 }' "$test_dir/out"
}

fake answer "$(answer '{"regs": {"rax": 305419896, "rsp": 28672, "rip": 4112, "rflags": 582},
	"sregs": {"cr0": 17, "cs": {"selector": 8}, "ds": {"selector": 16}, "es": {"selector": 16},
	"ss": {"selector": 16}}}')" "$GUESTS/hello-real.bin"
is "$out" "exit: hlt
eax=12345678  ebx=00000000  ecx=00000000  edx=00000000
esi=00000000  edi=00000000  esp=00007000  ebp=00000000
eip=00001010  eflags=00000246 PF ZF IF
cr0=00000011  cr2=00000000  cr3=00000000  cr4=00000000
cs=0008  ds=0010  es=0010  ss=0010  fs=0000  gs=0000  tr=0000  ldt=0000
stats: 1 exit, 0.000 ms" "a recorded halt in protected mode has 32-bit registers, no efer"

fake answer "$(answer '{"regs": {"rax": 1, "rsp": 28672, "r8": 8, "r15": 18446744073709551615,
	"rip": 8192, "rflags": 12870},
	"sregs": {"cr0": 2147483665, "cr3": 4096, "cr4": 32, "efer": 1280, "cs": {"selector": 8},
	"fs": {"selector": 0, "base": 18446744069414584320}}}')" "$GUESTS/hello-real.bin"
is "$out" "exit: hlt
rax=0000000000000001  rbx=0000000000000000  rcx=0000000000000000
rdx=0000000000000000  rsi=0000000000000000  rdi=0000000000000000
rsp=0000000000007000  rbp=0000000000000000   r8=0000000000000008
 r9=0000000000000000  r10=0000000000000000  r11=0000000000000000
r12=0000000000000000  r13=0000000000000000  r14=0000000000000000
r15=ffffffffffffffff
rip=0000000000002000  rflags=0000000000003246 PF ZF IF IOPL=3
 cr0=0000000080000011   cr2=0000000000000000   cr3=0000000000001000
 cr4=0000000000000020  efer=0000000000000500
cs=0008  ds=0000  es=0000  ss=0000  fs=0000  gs=0000  tr=0000  ldt=0000
 fs.base=ffffffff00000000
stats: 1 exit, 0.000 ms" "a recorded halt in long mode has 64-bit registers, r8..r15 and efer"
is "$(longest_line)" 71 "long mode's register lines fit in 80 columns"

fake answer "$(answer '{"regs": {"rax": 305419896}}')" "$GUESTS/hello-real.bin"
like "$out" "exit: hlt
eax=12345678  ebx=00000000  ecx=00000000  edx=00000000
*eip=00000000  eflags=00000000
*" "real mode shows 32-bit registers when a value needs them: no bit is hidden"

fake answer "$(answer '{"regs": {"rflags": 4194303}, "sregs": {"cr0": 2147483665, "efer": 1280}}')" \
	"$GUESTS/hello-real.bin"
like "$out" "*rflags=00000000003fffff CF PF AF ZF SF TF IF DF OF IOPL=3
                                              NT RF VM AC VIF VIP ID
*" "every flag is named, wrapped under the first"
is "$(longest_line)" 79 "rflags with every flag fits in 80 columns"

# A page fault's error code in words; its details on a line of their own.
while IFS='|' read -r code words; do
	fake answer "$(answer "{\"exit\": {\"reason\": \"exception\", \"vector\": 14, \"name\": \"#PF\",
		\"error_code\": $code, \"rip\": 4660, \"cs\": 8, \"cr2\": 4294967296}}")" "$GUESTS/hello-real.bin"
	is "$(sed -n '/^exit:/,+1p' "$test_dir/out")" "exit: exception: #PF (vector 14) at 0008:1234
      error code $(printf '0x%x' "$code") ($words), cr2 0x100000000" "#PF error code $code reads $words"
done <<'PF'
0|not-present read supervisor
2|not-present write supervisor
7|present write user
17|present fetch supervisor
45|present read user reserved-bit protection-key
PF
fake answer "$(answer '{"exit": {"reason": "exception", "vector": 13, "name": "#GP", "error_code": 16,
	"rip": 16, "cs": 8}, "sregs": {"cr0": 17}}')" "$GUESTS/hello-real.bin"
is "$(sed -n '/^exit:/,/^eax/p' "$test_dir/out")" "exit: exception: #GP (vector 13) at 0008:00000010
      error code 0x10
eax=00000000  ebx=00000000  ecx=00000000  edx=00000000" "another error code is shown in hex, rip at the mode's width"

# An io exit's data: up to the daemon's 64 bytes, and how many more were not sent.
data64=$(printf 'A%.0s' $(seq 64) | base64 -w0)
fake answer "$(answer "{\"exit\": {\"reason\": \"io\", \"port\": 233, \"direction\": \"out\",
	\"size\": 1, \"count\": 100, \"data\": \"$data64\"}}")" "$GUESTS/hello-real.bin"
status_is 1 "an io exit of 100 bytes exits 1"
is "$(sed -n '/^exit:/,/^ax=/p' "$test_dir/out")" "exit: io: out port 0xe9, size 1, count 100
      data 41 41 41 41 41 41 41 41 41 41 41 41 41 41 41 41
           41 41 41 41 41 41 41 41 41 41 41 41 41 41 41 41
           41 41 41 41 41 41 41 41 41 41 41 41 41 41 41 41
           41 41 41 41 41 41 41 41 41 41 41 41 41 41 41 41
           ... (36 more bytes not shown)
ax=0000  bx=0000  cx=0000  dx=0000  si=0000  di=0000  sp=0000  bp=0000" \
	"io data cut at 64 bytes says how many more there were, in rows within 80 columns"
fake answer "$(answer "{\"exit\": {\"reason\": \"io\", \"port\": 233, \"direction\": \"out\",
	\"size\": 4, \"count\": 16, \"data\": \"$data64\"}}")" "$GUESTS/hello-real.bin"
case $out in
*"more bytes"*) not_ok "64 bytes of data that are all of it are not said to be cut" ;;
*) ok "64 bytes of data that are all of it are not said to be cut" ;;
esac

# The summary apart from the console: after a line, or on stderr.
fake answer "$(answer '{"console": "exit: hlt\n"}')" "$GUESTS/hello-real.bin"
like "$out" "exit: hlt
-- end of console --
exit: hlt
*" "a line ends the console before the summary, so a guest cannot pass for it"
fake answer "$(answer '{"console": "exit: hlt\n", "exit": {"reason": "shutdown"}}')" \
	--summary stderr "$GUESTS/hello-real.bin"
status_is 1 "--summary stderr keeps the exit status"
is "$out" "exit: hlt" "--summary stderr leaves the console alone on stdout"
like "$err" "exit: shutdown
ax=0000 *
stats: 1 exit, *" "--summary stderr sends the summary to stderr, without the console's end line"
fake answer "$halt" --summary stdout ping
status_is 2 "--summary is a run option"
fake answer "$halt" --summary both "$GUESTS/hello-real.bin"
is "$status/$err" "2/kvmrun-client: --summary both: not stdout or stderr
Try 'kvmrun-client --help'." "--summary takes stdout or stderr"

# -q: the console only, but a run that failed says why.
fake answer "$(answer '{"console": "x\n", "exit": {"reason": "timeout"}}')" -q "$GUESTS/hello-real.bin"
status_is 1 "-q with a timeout exits 1"
is "$out/$err" "x/kvmrun-client: exit: timeout" "-q still says why a run failed, on stderr"
fake answer "$(answer '{"console": "x\n"}')" -q "$GUESTS/hello-real.bin"
is "$out/$err" "x/" "-q with a halt says nothing more"

fake answer "$(answer '{"console": "no newline", "exit": {"reason": "timeout"},
	"dump": [{"address": 4096, "data": "'"$(head -c 4096 /dev/zero | base64 -w0)"'"}],
	"stats": {"exits": 1, "run_ns": 1500000000}}')" "$GUESTS/hello-real.bin"
status_is 1 "a recorded timeout exits 1"
like "$out" "no newline
-- end of console --
exit: timeout
*dump: 0x1000, 4096 bytes
00001000  00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00  |................|
\*
00002000
stats: 1 exit, 1500.000 ms" "the summary starts on a line of its own; repeated rows squeeze to *"

fake answer "$(answer '{"console": "Hello, world!\n", "dump": [{"address": 0, "data": "KgA="}]}')" \
	-q "$GUESTS/hello-real.bin"
status_is 0 "-q with a recorded halt exits 0"
if cmp -s "$test_dir/out" "$test_dir/hello.txt"; then
	ok "-q shows the recorded console bytes and nothing else"
else
	not_ok "-q shows the recorded console bytes and nothing else"
	diag "$out"
fi

# Bytes that are not UTF-8 come as U+FFFD in console, exactly in console_base64.
fake answer "$(answer '{"console": "a\ufffdb", "console_base64": "YYBi"}')" -q "$GUESTS/hello-real.bin"
if printf 'a\200b' | cmp -s "$test_dir/out" -; then
	ok "-q shows the console's exact bytes from console_base64"
else
	not_ok "-q shows the console's exact bytes from console_base64"
	diag "$(od -c "$test_dir/out")"
fi

fake answer "$(answer '{"console": "x"}')" --json "$GUESTS/hello-real.bin"
status_is 0 "--json with a recorded halt exits 0"
is "$out" "$(answer '{"console": "x"}')" "--json prints the answer line as it is"

while IFS='|' read -r name status_wanted exit_json shown; do
	fake answer "$(answer "{\"exit\": $exit_json}")" "$GUESTS/hello-real.bin"
	status_is "$status_wanted" "a recorded $name exits $status_wanted"
	is "$(grep '^exit:' "$test_dir/out")" "exit: $shown" "a recorded $name is shown with its details"
done <<'EOF'
io exit (out)|1|{"reason": "io", "port": 128, "direction": "out", "size": 1, "count": 1, "data": "Qg=="}|io: out port 0x80, size 1, count 1, data 42
io exit (rep in)|1|{"reason": "io", "port": 1016, "direction": "in", "size": 2, "count": 8, "data": ""}|io: in port 0x3f8, size 2, count 8
mmio write|1|{"reason": "mmio", "address": 268435456, "is_write": true, "length": 4, "data": "eFY0Eg=="}|mmio: write 0x10000000, length 4, data 78 56 34 12
mmio read|1|{"reason": "mmio", "address": 4294967296, "is_write": false, "length": 8, "data": ""}|mmio: read 0x100000000, length 8
page fault|1|{"reason": "exception", "vector": 14, "name": "#PF", "error_code": 2, "rip": 4660, "cs": 8, "cr2": 4294967296}|exception: #PF (vector 14) at 0008:1234
invalid opcode|1|{"reason": "exception", "vector": 6, "name": "#UD", "rip": 16, "cs": 24}|exception: #UD (vector 6) at 0018:0010
exception without a name|1|{"reason": "exception", "vector": 15, "rip": 16, "cs": 24}|exception: exception (vector 15) at 0018:0010
shutdown|1|{"reason": "shutdown"}|shutdown
full io log|1|{"reason": "output_limit", "limit": "io_log"}|output_limit: io log full
fail_entry|1|{"reason": "fail_entry", "hardware_entry_failure_reason": 33}|fail_entry: hardware entry failure reason 0x21
internal_error|1|{"reason": "internal_error", "suberror": 1, "data": [1, 2], "instruction": "66 0f ef c0"}|internal_error: suberror 1, data 0x1 0x2, instruction 66 0f ef c0
cancelled run|1|{"reason": "cancelled"}|cancelled
other exit|1|{"reason": "other", "kvm_exit_reason": 17}|other: KVM exit reason 17
EOF

fake answer "$(answer '{"console": "AAAA", "console_truncated": true,
	"exit": {"reason": "output_limit", "limit": "console"}}')" "$GUESTS/hello-real.bin"
status_is 1 "a recorded full console exits 1"
is "$(grep -E '^(console|exit):' "$test_dir/out")" "console: truncated
exit: output_limit: console full" "a recorded full console is shown truncated"

fake answer "$(answer '{"io_log": [{"port": 128, "size": 4, "value": 305419896}], "io_log_truncated": true}')" \
	"$GUESTS/hello-real.bin"
like "$out" "*
io log: 1 record (truncated)
  port 0x0080 size 4 value 0x12345678
*" "a recorded truncated io log is shown as such"

fake answer '{"id":1,"ok":false,"error":{"code":"unavailable","message":"no usable KVM on this host: /dev/kvm: No such file or directory"}}' \
	"$GUESTS/hello-real.bin"
status_is 5 "a recorded unavailable error exits 5"
fake answer '{"id":1,"ok":false,"error":{"code":"unsupported","message":"paged mode: no"}}' \
	--mode paged "$GUESTS/hello-paged.bin"
status_is 3 "a recorded unsupported error exits 3"
is "$err" "kvmrun-client: daemon: unsupported: paged mode: no" "a recorded error is shown with its code"

# --- the CPU state, stepping, trace and changes --------------------------------
# --state FILE is read by the daemon's own parser; --return's parts are
# checked here; what comes back is shown after the registers.

cat >"$test_dir/state.json" <<'EOF'
{"xstate": {"xmm0": "0x3f800000", "mxcsr": 8064},
 "msrs": {"fs_base": "0x7000"},
 "cpuid": [{"function": 7, "eax": 0, "ebx": 0, "ecx": 0, "edx": 0}],
 "segments": {"ds": {"selector": 0, "base": 1048576, "limit": 4294967295, "attributes": "0x8093"}}}
EOF
fake answer "$halt" -v --state "$test_dir/state.json" --return xstate,msrs,descriptors,cpuid \
	--max-instructions 7 --trace --changes "$GUESTS/hello-real.bin"
status_is 0 "--state, --return, --max-instructions, --trace and --changes exit 0 on a halt"
is "$(request 'sorted((k, v) for k, v in r.items() if k not in ("id", "image"))')" \
	'[["changes", true], ["cpuid", [{"function": 7, "index": 0, "eax": 0, "ebx": 0, "ecx": 0, "edx": 0}]], ["max_instructions", 7], ["msrs", {"fs_base": 28672}], ["return", ["xstate", "msrs", "descriptors", "cpuid"]], ["segments", {"ds": {"selector": 0, "base": 1048576, "limit": 4294967295, "attributes": 32915}}], ["trace", true], ["xstate", {"xmm0": "0x0000000000000000000000003f800000", "mxcsr": 8064}]]' \
	"--state's fields, return, max_instructions, trace and changes are sent"
like "$err" "kvmrun-client: request: {*\"xstate\":{\"xmm0\":*\"return\":\[\"xstate\",\"msrs\",\"descriptors\",\"cpuid\"\]*" \
	"-v shows the request with the state and return"

printf '{"xstate": {"xmm3": "0x1", "ymm3": "0x2"}}' >"$test_dir/both.json"
printf '{"msrs": {"fs_base": 1, "nonsense": 2}}' >"$test_dir/msr.json"
printf '{"regs": {"rax": 1}}' >"$test_dir/regs.json"
printf '{"xstate": ' >"$test_dir/short.json"
for case in "both.json|xstate.ymm3: *" "msr.json|msrs: unknown MSR \"nonsense\" (one of fs_base, *" \
	"regs.json|regs: not a state field (xstate, msrs, cpuid or segments)" \
	"short.json|not JSON: it ends too early"; do
	fake answer "$halt" --state "$test_dir/${case%%|*}" "$GUESTS/hello-real.bin"
	status_is 2 "--state ${case%%|*}: refused, exit 2"
	like "$err" "kvmrun-client: --state $test_dir/${case%%|*}: ${case#*|}" \
		"--state ${case%%|*}: the message names the file and the field"
	if [ -e "$test_dir/requests" ]; then
		not_ok "--state ${case%%|*}: refused before connecting"
	else
		ok "--state ${case%%|*}: refused before connecting"
	fi
done
fake answer "$halt" --mode long --state "$test_dir/state.json" "$GUESTS/hello-long.bin"
is "$status/$err" "2/kvmrun-client: --state $test_dir/state.json: segments.ds: a descriptor cache (an object) is real-mode only, not long mode" \
	"--state's segments are read in the run's mode"
fake answer "$halt" --seg ds=1 --state "$test_dir/state.json" "$GUESTS/hello-real.bin"
is "$status/$err" "2/kvmrun-client: --state $test_dir/state.json: its segments and --seg both set the segments: give them in one place" \
	"--seg and --state's segments are not mixed"
fake answer "$halt" --state - - <"$GUESTS/hello-real.bin"
is "$status/$err" "2/kvmrun-client: stdin (-) can be read only once, but the IMAGE and --state - both name it
Try 'kvmrun-client --help'." \
	"--state - and an IMAGE on stdin are refused"

for case in "xstate,regs|\"regs\" is not xstate, msrs, descriptors or cpuid" \
	"xstate,|\"\" is not xstate, msrs, descriptors or cpuid" \
	"msrs,msrs|msrs is given twice"; do
	fake answer "$halt" --return "${case%%|*}" "$GUESTS/hello-real.bin"
	is "$status/$err" "2/kvmrun-client: --return ${case%%|*}: ${case#*|}
Try 'kvmrun-client --help'." "--return ${case%%|*}: exit 2, said in the option's terms"
done
fake answer "$halt" --trace "$GUESTS/hello-real.bin"
is "$status/$err" "2/kvmrun-client: --trace needs --max-instructions: a run is traced by stepping it" \
	"--trace without --max-instructions is refused"
fake answer "$halt" --max-instructions 0 "$GUESTS/hello-real.bin"
status_is 2 "--max-instructions 0 is refused"

# With "descriptors" every segment has its limit and attributes.
caches=
for seg in ds es ss fs gs tr ldt; do
	caches="$caches\"$seg\": {\"limit\": 65535, \"attributes\": 147}, "
done
fake answer "$(answer '{"regs": {"rip": 4096}, "sregs": {'"$caches"'"cr0": 2147483665, "cr4": 32, "efer": 1280,
	"cs": {"selector": 51, "base": 0, "limit": 4294967295, "attributes": 41211},
	"gdt": {"base": 1052672, "limit": 55}, "idt": {"base": 0, "limit": 0}},
	"xstate": {"xmm0": "0x7fc00000bf800000400000003f800000", "st0": "0x4000c90fdaa22168c235",
	"st7": "0xbfff8000000000000000", "mxcsr": 8064, "fcw": 895, "fsw": 0, "ftw": 65535,
	"fop": 0, "fip": 0, "fdp": 0, "xcr0": 3},
	"msrs": {"fs_base": 28672, "lstar": 18446744071578845184},
	"cpuid": [{"function": 0, "index": 0, "eax": 13, "ebx": 1970169159, "ecx": 1818588270, "edx": 1231384169}]}')" \
	--summary stderr --return xstate,msrs,descriptors,cpuid "$GUESTS/hello-real.bin"
status_is 0 "a recorded answer with the CPU state exits 0"
for line in "xmm0   127:0    7fc00000 bf800000 40000000 3f800000  f32 1 2 -1 nan  f64 2.0000004731118679 *" \
	"st0    0x4000c90fdaa22168c235  3.14159265358979323851" \
	"st7    0xbfff8000000000000000  -1" \
	"mxcsr 0x1f80  fcw 0x037f  fsw 0x0000  ftw 0xffff  fop 0x000  fip 0x0  fdp 0x0  xcr0 0x3" \
	"lstar          0xffffffff81000000" \
	"cs     base 0x0000000000000000 limit 0xffffffff attributes 0xa0fb (type 0xb, S, DPL 3, P, L, G)" \
	"gdt    base 0x0000000000101000 limit 0x0037" \
	"cpuid 0x00000000.0  eax 0x0000000d ebx 0x756e6547 ecx 0x6c65746e edx 0x49656e69"; do
	like "$err" "*
$line
*" "the returned state is shown: ${line%%  *}"
done
like "$err" "*
cs=0033 *
xmm0 *
stats: *" "the state comes after the registers, on the summary's stream (--summary stderr)"
is "$out" "" "with --summary stderr the state leaves stdout alone"
fake answer "$(answer '{"xstate": {"xmm0": "0x1", "xcr0": 3}}')" -q "$GUESTS/hello-real.bin"
is "$out/$err" "/" "-q shows no returned state"
state_answer=$(answer '{"xstate": {"xmm0": "0x1", "xcr0": 3}}')
fake answer "$state_answer" --json "$GUESTS/hello-real.bin"
is "$out" "$state_answer" "--json prints an answer with state as it is"

# A run stepped to its bound: step_limit, status 0, its trace and changes.
step=$(answer '{"exit": {"reason": "step_limit"},
	"trace": [{"rip": 0, "cs": 256}, {"rip": 2, "cs": 256}, {"rip": 5, "cs": 256}],
	"changes": [{"address": 4096, "data": "QUJD"},
		{"address": 8190, "data": "AQIDBAUGBwgJCgsMDQ4PEBES"}]}')
fake answer "$step" --max-instructions 3 --trace --changes "$GUESTS/hello-real.bin"
status_is 0 "a recorded step_limit exits 0: the run ended as asked"
is "$out" "exit: step_limit
ax=0000  bx=0000  cx=0000  dx=0000  si=0000  di=0000  sp=0000  bp=0000
ip=0000  flags=0000
cr0=60000010  cr2=00000000  cr3=00000000  cr4=00000000
cs=0000  ds=0000  es=0000  ss=0000  fs=0000  gs=0000  tr=0000  ldt=0000
trace: 3 instructions
  0100:0000
  0100:0002
  0100:0005
change: 0x1000, 3 bytes
00001000  41 42 43                                          |ABC|
00001003
change: 0x1ffe, 18 bytes
00001ffe  01 02 03 04 05 06 07 08  09 0a 0b 0c 0d 0e 0f 10  |................|
0000200e  11 12                                             |..|
00002010
stats: 1 exit, 0.000 ms" "a recorded step_limit shows its trace (cs:ip in real mode) and changes as dumps"
fake answer "$step" -q --max-instructions 3 "$GUESTS/hello-real.bin"
is "$status/$out/$err" "0//" "-q with step_limit says nothing: it is no failure"
fake answer "$(answer '{"exit": {"reason": "step_limit"}, "regs": {"rip": 4098},
	"sregs": {"cr0": 2147483665, "efer": 1280},
	"trace": [{"rip": 4096, "cs": 51}], "trace_truncated": true, "changes": [],
	"changes_truncated": true}')" --max-instructions 9 --trace --changes "$GUESTS/hello-real.bin"
like "$out" "*
trace: 1 instruction (truncated)
  0000000000001000
changes: truncated
stats: *" "in long mode the trace is rip alone; truncation is said"

# Paged mode in compatibility mode is told; legacy paging is what "paged" says.
fake answer "$(answer '{"paging": "compat"}')" --mode paged "$GUESTS/hello-paged.bin"
like "$out" "*
paging: compat (32-bit code in compatibility mode, long-mode page tables)
stats: 1 exit, *" "a run paged in compatibility mode says so"
fake answer "$(answer '{"paging": "compat", "regs": {"rax": 1},
	"sregs": {"cr0": 2147483665, "cr4": 32, "efer": 1280}}')" --mode paged "$GUESTS/hello-paged.bin"
is "$(sed -n '/^eax/,/^cs=/p' "$test_dir/out")" "eax=00000001  ebx=00000000  ecx=00000000  edx=00000000
esi=00000000  edi=00000000  esp=00000000  ebp=00000000
eip=00000000  eflags=00000000
 cr0=80000011   cr2=00000000   cr3=00000000   cr4=00000020  efer=00000500
cs=0000  ds=0000  es=0000  ss=0000  fs=0000  gs=0000  tr=0000  ldt=0000" \
	"a paged run in compatibility mode has 32-bit registers, efer with them"
fake answer "$(answer '{"paging": "legacy"}')" --mode paged "$GUESTS/hello-paged.bin"
case $out in
*paging:*) not_ok "a run with legacy paging shows no paging line" && diag "$out" ;;
*) ok "a run with legacy paging shows no paging line" ;;
esac
fake answer '{"id":1,"ok":true,"version":"0.1.0","protocol":3,"kvm_api":12,"kvm":{"available":true,"api_version":12,"modes":["real","protected","paged","long"],"paged":"compat"}}' ping
is "$(head -n 1 "$test_dir/out")" "kvmrund 0.1.0, protocol 3, KVM API 12, modes real protected paged (compat) long" \
	"ping marks paged mode run in compatibility mode"

# A newer daemon's exit reasons and error codes (PROTOCOL.md): shown by name.
fake answer "$(answer '{"exit": {"reason": "warp_drive", "speed": 9}}')" "$GUESTS/hello-real.bin"
status_is 1 "an exit reason the client does not know exits 1"
is "$(grep '^exit:' "$test_dir/out")" "exit: warp_drive" "an unknown exit reason is shown by its name"
like "$out" "*ax=0000*stats: 1 exit, *" "the rest of a result with an unknown exit reason is shown"
fake answer "$(answer '{"exit": {"reason": "warp_drive"}}')" --json "$GUESTS/hello-real.bin"
status_is 1 "--json with an unknown exit reason exits 1"
is "$err" "" "--json with an unknown exit reason says nothing on stderr"
fake answer '{"id":1,"ok":false,"error":{"code":"quota_exceeded","message":"10 runs a minute"}}' \
	"$GUESTS/hello-real.bin"
status_is 3 "an error code the client does not know exits 3"
is "$err" "kvmrun-client: daemon: quota_exceeded: 10 runs a minute" "an unknown error code is shown as it is"
fake answer '{"id":1,"ok":false,"error":{"code":"quota_exceeded","message":"x"}}' --json ping
status_is 3 "--json with an unknown error code exits 3"
fake answer '{"id":1,"ok":false,"error":{"code":"\u001b[2J","message":"x"}}' ping
status_is 4 "an error code that is no name is an unreadable answer (exit 4)"
printf '%s\n' '{"id":1,"op":"ping"}' >"$test_dir/raw.in"
fake answer '{"id":1,"ok":false,"error":{"code":"quota_exceeded","message":"x"}}' raw <"$test_dir/raw.in"
status_is 3 "raw with an unknown error code exits 3"

# --- code on the command line, dumps to files, busy, -v, ping ---------------

# b64 HEX: the base64 of the bytes HEX spells.
b64() {
	"$PYTHON3" -c 'import base64, sys; print(base64.b64encode(bytes.fromhex(sys.argv[1])).decode())' "$1"
}

fake answer "$halt" --hex 'b0 41 e6 e9 f4'
status_is 0 "--hex runs without an IMAGE"
is "$(request 'r["image"]')" "$(b64 'b0 41 e6 e9 f4')" "--hex sends its bytes as the image"
fake answer "$halt" --hex '0xb0,0x41 e6e9f4'
is "$(request 'r["image"]')" "$(b64 'b0 41 e6 e9 f4')" "--hex takes 0x prefixes, commas and runs of digits"
while IFS='|' read -r args message; do
	# shellcheck disable=SC2086 # each case is options and their values
	client -s "$test_dir/none.sock" $args
	status_is 2 "$args exits 2"
	is "$(head -n 1 "$test_dir/err")" "kvmrun-client: $message" "$args: $message"
done <<'HEX'
--hex b0_4|--hex: '_' is not a hex digit
--hex b04|--hex: b04: an odd number of hex digits (two make a byte)
--hex ,|--hex: no bytes
--hex f4 guest.bin|--hex gives the image: no IMAGE guest.bin besides
--hex f4 --asm hlt|--asm hlt: one --hex or --asm is the image
HEX

if command -v as >/dev/null && command -v ld >/dev/null; then
	while IFS='|' read -r mode source bytes; do
		fake answer "$halt" --mode "$mode" --asm "$source"
		is "$(request 'r["image"]')" "$(b64 "$bytes")" "--mode $mode --asm '$source' is $bytes"
	done <<'ASM'
real|mov al, 0x41; out 0xe9, al; hlt|b0 41 e6 e9 f4
real|mov eax, 1|66 b8 01 00 00 00
protected|mov eax, 1; hlt|b8 01 00 00 00 f4
paged|mov eax, 1; hlt|b8 01 00 00 00 f4
long|mov rax, 1; hlt|48 c7 c0 01 00 00 00 f4
ASM
	fake answer "$halt" --load-address 0x1000 --asm 'mov si, offset msg; hlt; msg: .ascii "hi"'
	is "$(request 'r["image"]')" "$(b64 'be 04 10 f4 68 69')" "--asm links at --load-address"
	client -s "$test_dir/none.sock" --asm 'frobnicate al'
	status_is 2 "--asm with a bad instruction exits 2"
	is "$err" "kvmrun-client: --asm: line 1: Error: no such instruction: \`frobnicate al'" \
		"--asm shows the assembler's message with its line"
else
	skip "--asm" "no as or ld (binutils)"
fi
# A PATH with the tools the test and libtool's wrapper need, but no binutils.
mkdir "$test_dir/nobinutils"
for tool in cat ls sed; do
	ln -s "$(command -v "$tool")" "$test_dir/nobinutils/$tool"
done
PATH="$test_dir/nobinutils" client -s "$test_dir/none.sock" --asm hlt
status_is 2 "--asm without binutils exits 2"
is "$err" "kvmrun-client: --asm: needs GNU as (binutils), not found in PATH: install binutils, or give the bytes with --hex" \
	"--asm without binutils says what to install"

# --dump-file: that dump as binary in the file, the others in the summary.
fake answer "$(answer '{"dump": [{"address": 1024, "data": "KgBBQg=="}, {"address": 0, "data": "9A=="}]}')" \
	--dump-file "0x400:4:$test_dir/dump.bin" --dump 0:1 "$GUESTS/hello-real.bin"
status_is 0 "--dump-file exits 0"
is "$(request 'r["dump"]')" '[{"address": 1024, "length": 4}, {"address": 0, "length": 1}]' \
	"--dump-file asks for its dump like --dump"
if printf '\052\000\101\102' | cmp -s "$test_dir/dump.bin" -; then
	ok "--dump-file writes the dump's bytes to the file"
else
	not_ok "--dump-file writes the dump's bytes to the file"
	diag "$(od -An -tx1 "$test_dir/dump.bin")"
fi
like "$out" "*dump: 0x0, 1 byte
*" "--dump's dump is shown"
case $out in
*"dump: 0x400"*) not_ok "--dump-file's dump is not shown" ;;
*) ok "--dump-file's dump is not shown" ;;
esac
fake answer "$halt" --dump-file 0x400:4 "$GUESTS/hello-real.bin"
is "$status/$err" "2/kvmrun-client: --dump-file 0x400:4: expected ADDR:LEN:FILE
Try 'kvmrun-client --help'." "--dump-file needs a FILE"
fake answer "$(answer '{"dump": [{"address": 0, "data": "9A=="}]}')" --dump-file "0:1:$test_dir/no/dump.bin" \
	"$GUESTS/hello-real.bin"
is "$status/$err" "2/kvmrun-client: $test_dir/no/dump.bin: No such file or directory" \
	"a --dump-file that cannot be written exits 2"

# busy: exit 6, and --retry tries again with a new connection.
busy='{"id":1,"ok":false,"error":{"code":"busy","message":"the run queue is full (--queue 1)"}}'
fake answer "$busy" "$GUESTS/hello-real.bin"
status_is 6 "a busy daemon exits 6"
is "$err" "kvmrun-client: daemon: busy: the run queue is full (--queue 1)" "busy is shown with its message"
is "$(wc -l <"$test_dir/requests" | tr -d ' ')" 1 "without --retry busy is not tried again"
start_ms=$(($(date +%s%N) / 1000000))
fake answer "$busy" --retry 2 -v "$GUESTS/hello-real.bin"
elapsed_ms=$(($(date +%s%N) / 1000000 - start_ms))
status_is 6 "a daemon busy every time exits 6 after --retry 2"
is "$(wc -l <"$test_dir/requests" | tr -d ' ')" 3 "--retry 2 tries three times"
is "$(grep 'busy' "$test_dir/err")" "kvmrun-client: daemon: busy: the run queue is full (--queue 1); try 2 of 3 in 100 ms
kvmrun-client: daemon: busy: the run queue is full (--queue 1); try 3 of 3 in 200 ms
kvmrun-client: daemon: busy: the run queue is full (--queue 1)" "-v says each try and its wait, doubling"
if [ "$elapsed_ms" -ge 300 ]; then
	ok "--retry waits between tries"
else
	not_ok "--retry waits between tries"
	diag "the three tries took $elapsed_ms ms"
fi
fake answer "$busy
$halt" --retry 3 --json "$GUESTS/hello-real.bin"
status_is 0 "--retry gets the halt after a busy answer"
is "$(wc -l <"$test_dir/requests" | tr -d ' ')/$out" "2/$halt" "--json prints the answer tried for, not the busy one"
fake answer "$busy
{\"id\":1,\"ok\":true,\"version\":\"0.1.0\",\"protocol\":3,\"kvm\":{\"available\":false,\"reason\":\"x\"}}" --retry 1 ping
status_is 0 "ping --retry gets past a busy answer"
printf '%s\n' '{"id":1,"op":"ping"}' >"$test_dir/raw.in"
fake answer "$busy" raw <"$test_dir/raw.in"
status_is 3 "raw with a busy answer exits 3, as for any error answer"
for bad in "--retry x" "--retry 101"; do
	# shellcheck disable=SC2086
	client $bad ping
	status_is 2 "$bad exits 2"
done

# -v shows the request line as it is sent.
fake answer "$halt" -v --hex f4
is "$err" "kvmrun-client: request: $(cat "$test_dir/request")" "-v shows the run's request line as sent"
fake answer '{"id":1,"ok":true,"version":"0.1.0","protocol":3,"kvm":{"available":false,"reason":"x"}}' -v ping
is "$err" 'kvmrun-client: request: {"id":1,"op":"ping"}' "-v shows a ping's request line"

# ping warns of a daemon of another protocol version.
fake answer '{"id":1,"ok":true,"version":"9.0","protocol":4,"kvm":{"available":false,"reason":"x"}}' ping
status_is 0 "ping of a daemon of another protocol version exits 0"
is "$err" "kvmrun-client: warning: the daemon speaks protocol 4, this client 3: its answers may be misread (use a client of its version)" \
	"ping warns when the daemon's protocol version is not the client's"
like "$out" "kvmrund 9.0, protocol 4, KVM unavailable: x
round trip *.* ms" "ping shows the other version and the round trip"

# --- ELF images --------------------------------------------------------------

# elf_expected ELF: what a run of ELF must send, as [[address, base64]...] for
# the file bytes of each PT_LOAD segment at its p_paddr, then e_entry, read
# here independently of the client.
elf_expected() {
	"$PYTHON3" - "$1" <<'EOF'
import base64, json, struct, sys
data = open(sys.argv[1], "rb").read()
is64 = data[4] == 2
if is64:
    entry, phoff = struct.unpack_from("<QQ", data, 24)
    phentsize, phnum = struct.unpack_from("<HH", data, 54)
else:
    entry, phoff = struct.unpack_from("<II", data, 24)
    phentsize, phnum = struct.unpack_from("<HH", data, 42)
segments = []
for i in range(phnum):
    at = phoff + i * phentsize
    if is64:
        ptype, _, offset, _, paddr, filesz = struct.unpack_from("<IIQQQQ", data, at)
    else:
        ptype, offset, _, paddr, filesz = struct.unpack_from("<IIIII", data, at)
    if ptype == 1 and filesz > 0:
        segments.append([paddr, base64.b64encode(data[offset:offset + filesz]).decode()])
print(json.dumps([segments, entry]))
EOF
}

# What the stand-in daemon got, in elf_expected's form.
request_segments='[[[r.get("load_address", 0), r["image"]]] + [[g["address"], g["data"]] for g in r.get("regions", [])], r["regs"]["rip"]]'

# A 32-bit ELF image written here byte by byte, its one segment's physical
# address (p_paddr 0x3000, where it loads and starts) not its virtual one
# (p_vaddr 0xc0003000, as a higher-half kernel has it, past guest memory).
"$PYTHON3" - "$test_dir/paddr.elf" <<'EOF'
import struct, sys
code = bytes.fromhex("66bae900" "b050" "ee" "b00a" "ee" "f4")  # out 'P', '\n' to 0xe9; hlt
ehdr = struct.pack("<16sHHIIIIIHHHHHH", b"\x7fELF\x01\x01\x01", 2, 3, 1, 0x3000, 52, 0, 0,
                   52, 32, 1, 0, 0, 0)
phdr = struct.pack("<IIIIIIII", 1, 84, 0xc0003000, 0x3000, len(code), len(code) + 16, 5, 4)
open(sys.argv[1], "wb").write(ehdr + phdr + code)
EOF
fake answer "$halt" --mode protected "$test_dir/paddr.elf"
status_is 0 "an ELF image with p_paddr apart from p_vaddr exits 0 (stand-in daemon)"
is "$(request 'sorted(r.items())')" \
	'[["id", 1], ["image", "ZrrpALBQ7rAK7vQ="], ["load_address", 12288], ["mode", "protected"], ["regs", {"rip": 12288}]]' \
	"an ELF segment is loaded at its p_paddr, not its p_vaddr"
if kvm_or_skip "an ELF image with p_paddr apart from p_vaddr runs"; then
	client --mode protected --dump 0x3000:4 "$test_dir/paddr.elf"
	like "$out" "P
-- end of console --
exit: hlt
*00003000  66 ba e9 00 *" "an ELF image with p_paddr apart from p_vaddr runs"
fi

if command -v as >/dev/null && command -v ld >/dev/null; then
	# Code, then data in a segment of its own, then bss; the entry point is
	# past the first bytes, so only e_entry gets there.
	cat >"$test_dir/hello16.s" <<'EOF'
	.code16
	.text
	.globl _start
	hlt
	.p2align 4
_start:	mov	$0xe9, %dx
	mov	$msg, %si
1:	lodsb
	test	%al, %al
	jz	2f
	out	%al, %dx
	jmp	1b
2:	movb	$42, scratch
	hlt
	.data
msg:	.asciz	"Hello from ELF\n"
	.bss
scratch: .skip 4096
EOF
	as -o "$test_dir/hello16.o" "$test_dir/hello16.s" &&
		ld -Ttext=0x1000 -o "$test_dir/hello16.elf" "$test_dir/hello16.o"
	if kvm_or_skip "an ELF image (64-bit, .code16) exits 0" \
		"an ELF image loads its segments and starts at e_entry"; then
		# A 64-bit ELF file runs in long mode unless --mode says otherwise.
		client --mode real "$test_dir/hello16.elf"
		status_is 0 "an ELF image (64-bit, .code16) exits 0"
		is "$(head -n 1 "$test_dir/out")" "Hello from ELF" "an ELF image loads its segments and starts at e_entry"
	fi
	fake answer "$halt" "$test_dir/hello16.elf"
	is "$(request "$request_segments")" "$(elf_expected "$test_dir/hello16.elf")" \
		"an ELF image sends each segment's file bytes at its p_paddr and rip = e_entry"

	cat >"$test_dir/hello32.s" <<'EOF'
	.code32
	.globl _start
_start:	mov	$0xe9, %dx
	mov	$'E', %al
	out	%al, %dx
	mov	$'\n', %al
	out	%al, %dx
	hlt
EOF
	as --32 -o "$test_dir/hello32.o" "$test_dir/hello32.s" &&
		ld -m elf_i386 -Ttext=0x2000 -o "$test_dir/hello32.elf" "$test_dir/hello32.o"
	if kvm_or_skip "a 32-bit ELF image exits 0" "a 32-bit ELF image runs" \
		"an ELF image on stdin runs" "--reg rip with an ELF image exits 0" \
		"--reg rip overrides e_entry"; then
		client -q --mode protected "$test_dir/hello32.elf"
		status_is 0 "a 32-bit ELF image exits 0"
		is "$out" "E" "a 32-bit ELF image runs"

		client -q --mode protected - <"$test_dir/hello32.elf"
		is "$out" "E" "an ELF image on stdin runs"

		# 0x200a is the hlt after the two out instructions.
		client --mode protected --reg rip=0x200a "$test_dir/hello32.elf"
		status_is 0 "--reg rip with an ELF image exits 0"
		like "$out" "exit: hlt
*eip=0000200b*" "--reg rip overrides e_entry"
	fi
	fake answer "$halt" --mode protected - <"$test_dir/hello32.elf"
	is "$(request "$request_segments")" "$(elf_expected "$test_dir/hello32.elf")" \
		"a 32-bit ELF image on stdin sends its segments and e_entry"
	fake answer "$halt" --mode protected --reg rip=0x200a "$test_dir/hello32.elf"
	is "$(request 'r["regs"]')" '{"rip": 8202}' "--reg rip is sent instead of e_entry"

	client --load-address 0x1000 "$test_dir/hello16.elf"
	status_is 2 "--load-address with an ELF image exits 2"

	cp "$test_dir/hello32.elf" "$test_dir/arm.elf"
	printf '\050\000' | dd of="$test_dir/arm.elf" bs=1 seek=18 conv=notrunc 2>/dev/null
	client "$test_dir/arm.elf"
	status_is 2 "an ELF image for another machine exits 2"
	is "$err" "kvmrun-client: $test_dir/arm.elf: wrong machine 40 (not EM_386 or EM_X86_64)" \
		"the wrong machine is named"

	cp "$test_dir/hello32.elf" "$test_dir/class.elf"
	printf '\003' | dd of="$test_dir/class.elf" bs=1 seek=4 conv=notrunc 2>/dev/null
	client "$test_dir/class.elf"
	status_is 2 "an ELF image of an unknown class exits 2"
	like "$err" "*wrong ELF class 3*" "the wrong class is named"

	cp "$test_dir/hello32.elf" "$test_dir/be.elf"
	printf '\002' | dd of="$test_dir/be.elf" bs=1 seek=5 conv=notrunc 2>/dev/null
	client "$test_dir/be.elf"
	status_is 2 "a big-endian ELF image exits 2"
	like "$err" "*not a little-endian ELF file" "big-endian is named"

	head -c 60 "$test_dir/hello16.elf" >"$test_dir/short.elf"
	client "$test_dir/short.elf"
	status_is 2 "a truncated ELF image exits 2"
	like "$err" "*truncated file*" "a truncated file is named"

	ld -m elf_i386 -Ttext=0x200000 -o "$test_dir/high.elf" "$test_dir/hello32.o"
	client --mode protected "$test_dir/high.elf"
	status_is 2 "an ELF segment past guest memory exits 2"
	like "$err" "kvmrun-client: $test_dir/high.elf: segment * (0x200000..0x2*) is past guest memory (0x0..0x200000): run it with --memory 3M, or link it at a lower address (ld -Ttext=0x1000)" \
		"the segment past guest memory is named, in hex, with the fixes"
	if kvm_or_skip "the same ELF image fits in more memory" \
		"an ELF image above 2 MiB runs"; then
		client -q --mode protected --memory 4M "$test_dir/high.elf"
		status_is 0 "the same ELF image fits in more memory"
		is "$out" "E" "an ELF image above 2 MiB runs"
	fi
	fake answer "$halt" --mode protected --memory 4M "$test_dir/high.elf"
	is "$(request "$request_segments")" "$(elf_expected "$test_dir/high.elf")" \
		"an ELF image above 2 MiB is sent in more memory"

	# First tries (issue 20): each refusal says the fix.
	client "$test_dir/hello32.o"
	status_is 2 "an object file (ET_REL) exits 2"
	is "$err" "kvmrun-client: $test_dir/hello32.o: an object file (ELF type ET_REL), not an executable (ET_EXEC): link it first, as in ld -Ttext=0x1000 -o guest.elf $test_dir/hello32.o" \
		"an object file is named, with the fix"
	printf '\t.globl _start\n_start:\thlt\n' >"$test_dir/first.s"
	as -o "$test_dir/first.o" "$test_dir/first.s" && ld -o "$test_dir/default.elf" "$test_dir/first.o"
	client "$test_dir/default.elf"
	status_is 2 "an ELF image linked at ld's default address exits 2"
	like "$err" "kvmrun-client: $test_dir/default.elf: segment * (0x40*..0x40*) is past guest memory (0x0..0x200000): run it with --memory 5M, or link it at a lower address (ld -Ttext=0x1000)" \
		"an ELF image at 0x400000 gets --memory 5M or a lower address as fixes"
	fake answer "$halt" --memory 5M "$test_dir/default.elf"
	status_is 0 "the --memory the refusal names is enough"
	if command -v gcc >/dev/null &&
		gcc -nostdlib -o "$test_dir/gcc.elf" "$test_dir/first.s" 2>/dev/null &&
		[ "$(od -An -tu2 -j16 -N2 "$test_dir/gcc.elf" | tr -d ' ')" = 3 ]; then
		client "$test_dir/gcc.elf"
		status_is 2 "gcc -nostdlib's default PIE exits 2"
		like "$err" "*ET_DYN), not ET_EXEC: link it with -no-pie, or -static" \
			"gcc -nostdlib's default PIE is refused with the fix"
	else
		skip "gcc -nostdlib's default PIE" "no gcc that links PIE by default"
	fi

	# The mode from the ELF class: 64-bit code is long mode's.
	fake answer "$halt" "$test_dir/hello16.elf"
	is "$(request 'r.get("mode")')" long "a 64-bit ELF image without --mode runs in long mode"
	fake answer "$halt" -v "$test_dir/hello16.elf"
	is "$(head -n 1 "$test_dir/err")" "kvmrun-client: $test_dir/hello16.elf: a 64-bit ELF image: --mode long (give --mode to choose another)" \
		"-v says the mode came from the ELF class"
	fake answer "$halt" "$test_dir/hello16.elf"
	is "$err" "" "without -v the mode from the ELF class is not mentioned"
	fake answer "$halt" --mode protected --verbose "$test_dir/hello16.elf"
	is "$(request 'r.get("mode")')/$(grep -c '64-bit ELF' "$test_dir/err")" "protected/0" \
		"--mode wins over the ELF class"
	fake answer "$halt" --mode protected "$test_dir/hello32.elf"
	is "$(request 'r.get("mode")')" protected "a 32-bit ELF image keeps the --mode given"
	fake answer "$halt" "$test_dir/hello32.elf"
	is "$(request 'r.get("mode")')" null "a 32-bit ELF image without --mode keeps the default"

	printf '\t.globl _start\n_start:\thlt\n' >"$test_dir/tiny.s"
	if as -o "$test_dir/tiny.o" "$test_dir/tiny.s" &&
		ld -pie -o "$test_dir/pie.elf" "$test_dir/tiny.o" 2>/dev/null; then
		client "$test_dir/pie.elf"
		status_is 2 "a PIE (ET_DYN) exits 2"
		like "$err" "*ET_DYN), not ET_EXEC: link it with -no-pie, or -static" \
			"ET_DYN is named, with the fix"
	else
		skip "a PIE (ET_DYN) exits 2" "ld cannot link -pie"
	fi
else
	skip "ELF images" "no as or ld"
fi

# --- raw ---------------------------------------------------------------------

{
	echo '{"id":1,"op":"ping"}'
	echo
	run_request 2 "$GUESTS/hello-real.bin" real
	echo
	echo '{"id":3,"op":"stats"}'
	run_request 4 "$GUESTS/hello-long.bin" long
	echo
} >"$test_dir/raw.in"
client raw <"$test_dir/raw.in"
if have_kvm; then
	status_is 0 "raw with good requests exits 0"
else
	# raw exits 3 for any error answer, unavailable included.
	status_is 3 "raw with runs on a daemon without KVM exits 3"
fi
is "$(wc -l <"$test_dir/out" | tr -d ' ')" 4 "raw answers each request line, skipping blank ones"
ids=$(while read -r line; do json "$line" 'r["id"]'; done <"$test_dir/out" | tr '\n' ' ')
is "$ids" "1 2 3 4 " "raw prints the answers in request order"
if ! have_kvm; then
	codes=$(while read -r line; do
		json "$line" 'r["error"]["code"] if not r["ok"] else "ok"'
	done <"$test_dir/out" | tr '\n' ' ')
	is "$codes" "ok unavailable ok unavailable " "raw shows unavailable answers to runs without KVM"
fi

# Not a pipeline: client must run in this shell to set status and out.
printf '{"op":"ping"}' >"$test_dir/raw.in"
client raw <"$test_dir/raw.in"
status_is 0 "raw takes a last line without a newline"
is "$(json "$out" 'r["ok"]')" true "raw sends a ping as it is"

{
	echo '{"id":1,"op":"ping"}'
	echo 'not json'
	echo '{"id":3,"op":"ping"}'
} >"$test_dir/raw.in"
client raw <"$test_dir/raw.in"
status_is 3 "raw with an error answer exits 3"
is "$(wc -l <"$test_dir/out" | tr -d ' ')" 3 "raw goes on after an error answer"

client raw </dev/null
status_is 0 "raw with no input exits 0"
is "$out" "" "raw with no input prints nothing"

client raw --socket /nonexistent </dev/null
status_is 4 "raw with the daemon out of reach exits 4"

# Requests of 512 KiB whose answers dump 512 KiB: writing them all before
# reading any answer would fill both sockets' buffers and deadlock.
"$PYTHON3" - "$test_dir/big.in" <<'EOF'
import base64, json, sys
image = base64.b64encode(b"\xf4" + bytes(512 * 1024 - 1)).decode()
with open(sys.argv[1], "w") as f:
    for i in range(24):
        f.write(json.dumps({"id": i, "op": "run", "image": image,
                            "dump": [{"address": 0, "length": 512 * 1024}]}) + "\n")
    for i in range(24, 224):
        f.write(json.dumps({"id": i, "op": "ping"}) + "\n")
EOF
# Without KVM the runs' answers are short errors, but the requests still
# have to go out while answers come in.
client raw <"$test_dir/big.in"
if have_kvm; then
	status_is 0 "raw pipelines large requests and answers"
else
	status_is 3 "raw pipelines large requests to a daemon without KVM (exit 3)"
fi
is "$(wc -l <"$test_dir/out" | tr -d ' ')" 224 "raw answers all 224 pipelined requests"

kill "$fake_pid"
wait_exit "$fake_pid" 5
if [ -s "$test_dir/fake.log" ]; then
	diag "the stand-in daemon said:" "$(cat "$test_dir/fake.log")"
fi

done_testing
