#!/bin/sh
# kvmrun-client against a real kvmrund on a temporary socket: each command
# and option, each exit status, flat images from files and stdin, ELF images
# built here from assembly, and raw pipelining.

. "$TOP_SRCDIR/tests/lib.sh"

need_kvm
start_daemon
KVMRUN_SOCKET=$SOCK
export KVMRUN_SOCKET
unset NO_COLOR

# client ARG...: runs kvmrun-client; sets status, out and err.  The output
# is also in $test_dir/out, byte for byte.
client() {
	"$KVMRUN_CLIENT" "$@" >"$test_dir/out" 2>"$test_dir/err"
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

hello='Hello, world!'
printf '%s\n' "$hello" >"$test_dir/hello.txt"

# --- version, help, ping, stats ---------------------------------------------

client --version
status_is 0 "--version exits 0"
like "$out" "kvmrun-client [0-9]*" "--version names the program and version"

client --help
status_is 0 "--help exits 0"
like "$out" "*Exit status:*4  the daemon could not be reached*" "--help documents the exit status"

client ping
status_is 0 "ping exits 0"
like "$out" "kvmrund *, protocol 2, KVM API 12" "ping shows the daemon's versions"

client ping --json
status_is 0 "ping --json exits 0"
is "$(json "$out" 'r["ok"]')" true "ping --json prints the response line"

client stats
status_is 0 "stats exits 0"
like "$out" "*uptime:*workers:*finished:*errors:*connections:*" "stats shows the counters"

client --json stats
is "$(json "$out" 'r["ok"]')" true "stats --json prints the response line"

# --- hello world in every mode -----------------------------------------------

for mode in real protected paged long; do
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
*rbx=0000000000004b4f*stats: * exits, *.* ms" "hello world in $mode mode shows the exit and registers"
done

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

# --- run options -------------------------------------------------------------

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
like "$out" "exit: exception: #PF (vector 14), error code 0x*, cr2 0x100000000
*" "an exception shows its vector, error code and cr2"

# Under nested KVM or sanitizers filling the console may outlast the run.
client --mode long --timeout 10s "$GUESTS/console-flood-long.bin"
status_is 1 "a console flood exits 1"
case $(grep -a '^exit:' "$test_dir/out") in
"exit: timeout")
	skip "a full console ends as output_limit" "the console did not fill in 10 s"
	;;
*)
	is "$(grep -a -E '^(console|exit):' "$test_dir/out")" "console: truncated
exit: output_limit: console full" "a full console ends as output_limit"
	;;
esac

# --- daemon errors: exit 3 ---------------------------------------------------

client --memory 1G "$GUESTS/hello-real.bin"
status_is 3 "--memory over the daemon's --max-memory exits 3"
like "$err" "kvmrun-client: daemon: too_large: *memory*" "the daemon's error code and message are shown"

client --ring 3 "$GUESTS/hello-real.bin"
status_is 3 "--ring 3 in real mode exits 3"
like "$err" "kvmrun-client: daemon: bad_request: *ring*" "ring 3 in real mode is a bad request"

client --json --ring 3 "$GUESTS/hello-real.bin"
status_is 3 "--json keeps exit status 3"
is "$(json "$out" 'r["ok"]')" false "--json prints an error response as it is"

# --- the daemon out of reach: exit 4 -----------------------------------------

client --socket /nonexistent ping
status_is 4 "--socket /nonexistent exits 4"
is "$err" "kvmrun-client: cannot connect to /nonexistent: No such file or directory (is kvmrund or kvmrund.socket running?)" \
	"an unreachable daemon is named with a hint"

KVMRUN_SOCKET=/nonexistent client ping
status_is 4 "KVMRUN_SOCKET chooses the socket"
KVMRUN_SOCKET=/nonexistent client --socket "$SOCK" --connect-timeout 2s ping
status_is 0 "--socket overrides KVMRUN_SOCKET; --connect-timeout takes a duration"

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
wait "$full_pid" 2>/dev/null

client --response-timeout 200ms --timeout-ms 5000 "$GUESTS/loop-real.bin"
status_is 4 "--response-timeout shorter than the run exits 4"
like "$err" "kvmrun-client: $SOCK: no answer within 200 ms" "a response timeout is reported"

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
	"--region 0x1000" "--timeout 5x" "--load-address -1" "--memory 4T"; do
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

# --- ELF images --------------------------------------------------------------

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
	client "$test_dir/hello16.elf"
	status_is 0 "an ELF image (64-bit, .code16) exits 0"
	is "$(head -n 1 "$test_dir/out")" "Hello from ELF" "an ELF image loads its segments and starts at e_entry"

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
	client -q --mode protected "$test_dir/hello32.elf"
	status_is 0 "a 32-bit ELF image exits 0"
	is "$out" "E" "a 32-bit ELF image runs"

	client -q --mode protected - <"$test_dir/hello32.elf"
	is "$out" "E" "an ELF image on stdin runs"

	# 0x200a is the hlt after the two out instructions.
	client --mode protected --reg rip=0x200a "$test_dir/hello32.elf"
	status_is 0 "--reg rip with an ELF image exits 0"
	like "$out" "exit: hlt
*rip=000000000000200b*" "--reg rip overrides e_entry"

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
	like "$err" "kvmrun-client: $test_dir/high.elf: segment * (0x200000..0x2*) is past guest memory (2097152 bytes)" \
		"the segment past guest memory is named"
	client -q --mode protected --memory 4M "$test_dir/high.elf"
	status_is 0 "the same ELF image fits in more memory"
	is "$out" "E" "an ELF image above 2 MiB runs"

	printf '\t.globl _start\n_start:\thlt\n' >"$test_dir/tiny.s"
	if as -o "$test_dir/tiny.o" "$test_dir/tiny.s" &&
		ld -pie -o "$test_dir/pie.elf" "$test_dir/tiny.o" 2>/dev/null; then
		client "$test_dir/pie.elf"
		status_is 2 "a PIE (ET_DYN) exits 2"
		like "$err" "*not ET_EXEC" "ET_DYN is named"
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
status_is 0 "raw with good requests exits 0"
is "$(wc -l <"$test_dir/out" | tr -d ' ')" 4 "raw answers each request line, skipping blank ones"
ids=$(while read -r line; do json "$line" 'r["id"]'; done <"$test_dir/out" | tr '\n' ' ')
is "$ids" "1 2 3 4 " "raw prints the answers in request order"

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
client raw <"$test_dir/big.in"
status_is 0 "raw pipelines large requests and answers"
is "$(wc -l <"$test_dir/out" | tr -d ' ')" 224 "raw answers all 224 pipelined requests"

done_testing
