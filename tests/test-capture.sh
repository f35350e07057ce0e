#!/bin/sh
# kvmrun-client capture and replay.  Without a guest: the encodings and
# their errors, the vector files (capture's, SingleStepTests', .gz) and
# theirs, the daemon's unavailable error, the progress bar only on a
# terminal, and the whole capture -> replay loop against a stand-in daemon
# that answers runs the way the request says.  With KVM: capture on the
# host CPU, replay of its output, and the vectors against the same
# instructions run natively here.

. "$TOP_SRCDIR/tests/lib.sh"

make_test_dir
start_daemon --kvm "$test_dir/nokvm"
NOKVM_SOCK=$SOCK

# --- encodings and options, before any daemon is asked -----------------------

client capture --help
status_is 0 "capture --help exits 0"
like "$out" "*--count N*--seed N*--mode MODE*--array*" "capture --help lists its options"
client replay --help
status_is 0 "replay --help exits 0"
like "$out" "*--metadata FILE*" "replay --help lists --metadata"
client --help
like "$out" "*capture*replay*" "the client's --help names capture and replay"

client capture -s "$NOKVM_SOCK"
status_is 2 "capture without encodings: usage error"
like "$err" "*capture needs encodings*capture --help*" "... which says what it needs"
client capture -s "$NOKVM_SOCK" '48 01 zz'
status_is 2 "a non-hex digit: usage error"
is "$err" "kvmrun-client: encoding 1 \"48 01 zz\": 'z' is not a hex digit" "... naming the digit"
client capture -s "$NOKVM_SOCK" 90 '48 0'
like "$err" 'kvmrun-client: encoding 2 "48 0": *an odd number of hex digits*' \
	"an odd digit count, in the second encoding"
client capture -s "$NOKVM_SOCK" '66666666666666666666666666666690'
like "$err" "*more than 15 bytes*" "more than 15 bytes is no instruction"
client capture -s "$NOKVM_SOCK" '8b 80 00'
status_is 2 "a cut instruction: usage error"
like "$err" "*before the displacement*" "... saying what is missing"
printf '# add\n48 01 d8\n\n  90  # nop\nf3 a4 zz\n' >"$test_dir/encodings"
client capture -s "$NOKVM_SOCK" --file "$test_dir/encodings"
is "$err" "kvmrun-client: $test_dir/encodings:5 \"f3 a4 zz\": 'z' is not a hex digit" \
	"--file: comments and blank lines skipped, a bad line named by its number"
client capture -s "$NOKVM_SOCK" --file "$test_dir/missing"
status_is 2 "--file missing: usage error"
client capture -s "$NOKVM_SOCK" --mode real --ring 3 90
like "$err" "*--ring 3: real mode has no ring 3*" "--ring 3 in real mode"
client capture -s "$NOKVM_SOCK" --mode real --vector-bytes 16 90
like "$err" "*real mode runs without SSE*" "--vector-bytes in real mode"
client capture -s "$NOKVM_SOCK" --mode paged 90
like "$err" "*--mode paged: not long, protected or real*" "--mode paged is not offered"
client capture -s "$NOKVM_SOCK" --count 0 90
like "$err" "*--count 0: not a whole number from 1*" "--count 0"

# --- the daemon's answers --------------------------------------------------------

client capture -s "$NOKVM_SOCK" '48 01 d8'
status_is 5 "capture on a daemon without KVM: exit status 5"
like "$err" "*daemon: unavailable:*" "... with the daemon's unavailable error"
is "$out" "" "... and no vectors"
start_daemon --kvm "$test_dir/nokvm" --max-regions 1
client capture -s "$SOCK" 'f3 a4'
status_is 3 "capture refused by the daemon (rsi's and rdi's slots past --max-regions 1): exit 3"
like "$err" "*daemon: too_large: regions*" "... with the daemon's message"
client capture -s "$test_dir/nothing.sock" 90
status_is 4 "capture with no daemon: exit status 4"

# A SingleStepTests v1 file (two vectors, fields as theirs) and its metadata.
cat >"$test_dir/D4.json" <<'EOF'
[
{"name":"aam 10","bytes":[212,10],"initial":{"regs":{"ax":123,"bx":0,"cx":0,"dx":0,"cs":4096,"ss":8192,"ds":0,"es":0,"sp":256,"bp":0,"si":0,"di":0,"ip":16,"flags":61442},"ram":[[65552,212],[65553,10]],"queue":[]},"final":{"regs":{"ax":4611,"ip":18,"flags":61446},"ram":[[65552,212],[65553,10]],"queue":[]},"cycles":[],"hash":"a","idx":0},
{"name":"aam 10","bytes":[212,10],"initial":{"regs":{"ax":7,"bx":0,"cx":0,"dx":0,"cs":4096,"ss":8192,"ds":0,"es":0,"sp":256,"bp":0,"si":0,"di":0,"ip":16,"flags":61442},"ram":[[65552,212],[65553,10]],"queue":[]},"final":{"regs":{"ax":7,"ip":18,"flags":61442},"ram":[[65552,212],[65553,10]],"queue":[]},"cycles":[],"hash":"b","idx":1}
]
EOF
printf '%s\n' '{"opcodes":{"D4":{"status":"normal","flags-mask":2244}}}' >"$test_dir/metadata.json"
client replay -s "$NOKVM_SOCK" "$test_dir/D4.json"
status_is 5 "replay of SingleStepTests' file on a daemon without KVM: exit status 5"
like "$err" "*daemon: unavailable:*" "... with the daemon's unavailable error"
gzip -c "$test_dir/D4.json" >"$test_dir/D4.json.gz"
client replay -s "$NOKVM_SOCK" "$test_dir/D4.json.gz"
if grep -q '^#define HAVE_ZLIB 1' "$TOP_BUILDDIR/config.h"; then
	status_is 5 "replay reads .json.gz (zlib): it gets as far as the daemon"
else
	like "$err" "*gzip data, and this build has no zlib*" "replay without zlib says to gunzip"
fi
: >"$test_dir/empty.jsonl"
client replay -s "$NOKVM_SOCK" "$test_dir/empty.jsonl"
status_is 2 "replay of a file without vectors: usage error, not a vacuous agreement"
like "$err" "*empty.jsonl: no vectors*" "... saying so"
client replay -s "$NOKVM_SOCK" "$test_dir/missing.json"
status_is 2 "replay of a missing file: usage error"
like "$err" "*missing.json: No such file or directory*" "... naming it"
printf '{"bytes":[144],"initial":{},"final":{}}\nnot json\n' >"$test_dir/bad.jsonl"
client replay -s "$NOKVM_SOCK" "$test_dir/bad.jsonl"
status_is 2 "replay of a file with a line that is no JSON: usage error"
like "$err" "*bad.jsonl:2: not a JSON object*" "... naming the line"
printf '{"bytes":[144],"mode":"long","initial":{"ram":[[65536,144]]},"final":{"regs":{"rax":-1}}}\n' \
	>"$test_dir/bad-vector.jsonl"
client replay -s "$NOKVM_SOCK" "$test_dir/bad-vector.jsonl"
status_is 2 "replay of a vector with a bad field: usage error"
like "$err" "*bad-vector.jsonl: vector 0: final.regs.rax: expected an integer*" \
	"... naming the file, the vector and the field"

# --- capture -> replay against a stand-in daemon ----------------------------------
# It answers each run from its request: the registers and segments it was
# given, exit step_limit, the dumps it asked for from the image and regions,
# and with argv[2] "modify" rax XOR 1 and the code's first byte changed (as
# changes, and xmm0/ymm0 XOR 1); with "echo" nothing changed; with "step"
# only rip 2 further.  Asked for the xstate, it gives back the request's.
cat >"$test_dir/fake.py" <<'EOF'
import base64, json, os, socket, sys
path, behaviour = sys.argv[1:]
s = socket.socket(socket.AF_UNIX)
s.bind(path)
s.listen(4)
names = ["rax","rbx","rcx","rdx","rsi","rdi","rsp","rbp","r8","r9","r10","r11",
         "r12","r13","r14","r15","rip","rflags"]
def num(v):
    return int(v, 16) if isinstance(v, str) else v
def answer(req):
    regs = {n: num(req.get("regs", {}).get(n, 0)) for n in names}
    mem = {}
    blobs = [{"address": req.get("load_address", 0), "data": req["image"]}]
    for b in [blobs[0]] + req.get("regions", []):
        for i, byte in enumerate(base64.b64decode(b["data"])):
            mem[num(b["address"]) + i] = byte
    changes = []
    if behaviour == "step":
        regs["rip"] += 2
    if behaviour == "modify":
        regs["rax"] ^= 1
        a = num(blobs[0]["address"])
        mem[a] ^= 0xff
        changes = [{"address": a, "data": base64.b64encode(bytes([mem[a]])).decode()}]
    segs = req.get("segments", {})
    sregs = {"cr0": 0, "cr2": 0, "cr3": 0, "cr4": 0, "efer": 0}
    for n in ["cs", "ds", "es", "ss", "fs", "gs", "tr", "ldt"]:
        sregs[n] = {"selector": segs.get(n, 0), "base": segs.get(n, 0) * 16}
    dumps = [{"address": num(d["address"]),
              "data": base64.b64encode(bytes(mem.get(num(d["address"]) + i, 0)
                                             for i in range(num(d["length"])))).decode()}
             for d in req.get("dump", [])]
    a = {"id": req.get("id"), "ok": True, "exit": {"reason": "step_limit"}, "regs": regs,
         "sregs": sregs, "console": "", "io_log": [], "dump": dumps,
         "stats": {"exits": 1, "run_ns": 1}}
    if req.get("changes"):
        a["changes"] = changes
    if "xstate" in req.get("return", []):
        a["xstate"] = dict(req.get("xstate", {}))
        if behaviour == "modify" and "xmm0" in a["xstate"]:
            a["xstate"]["xmm0"] = hex(int(a["xstate"]["xmm0"], 16) ^ 1)
        if behaviour == "modify" and "ymm0" in a["xstate"]:
            a["xstate"]["ymm0"] = hex(int(a["xstate"]["ymm0"], 16) ^ 1)
    return a
while True:
    c, _ = s.accept()
    f = c.makefile("rwb")
    for line in f:
        f.write(json.dumps(answer(json.loads(line))).encode() + b"\n")
        f.flush()
    f.close()
    c.close()
EOF
fake() {
	"$PYTHON3" "$test_dir/fake.py" "$test_dir/fake-$1.sock" "$1" &
	fake_pids="$fake_pids $!"
	wait_socket "$test_dir/fake-$1.sock" || echo "Bail out! the stand-in daemon did not start"
}
# drop_final_regs FILE: FILE's vectors as if no register changed.
drop_final_regs() {
	"$PYTHON3" -c '
import json, sys
for line in open(sys.argv[1]):
    v = json.loads(line)
    v["final"]["regs"] = {}
    print(json.dumps(v))' "$1"
}

fake_pids=
fake modify
fake echo
fake step
trap 'kill $fake_pids 2>/dev/null; cleanup' EXIT

client capture -s "$test_dir/fake-modify.sock" --vector-bytes 0 --count 3 --seed 7 \
	'48 01 d8' '66 0f 38 00 00' '50' 'f3 a4'
status_is 0 "capture of 4 encodings x 3 through the stand-in: exit 0"
is "$(printf '%s\n' "$out" | wc -l)" 12 "... 12 vectors, one JSON object per line"
cp "$test_dir/out" "$test_dir/captured.jsonl"
first=$(sed -n 1p "$test_dir/captured.jsonl")
is "$(json "$first" 'r["name"]')" "$(if grep -q '^#define HAVE_CAPSTONE 1' "$TOP_BUILDDIR/config.h"; then
	echo 'add rax, rbx'; else echo '48 01 d8'; fi)" \
	"the name is the disassembly (with capstone) or the hex"
is "$(json "$first" '[r["bytes"], r["mode"], r["ring"], r["initial"]["regs"]["rip"],
	r["initial"]["ram"][:3], r["final"]["ram"], "exit" in r]')" \
	'[[72, 1, 216], "long", 3, 65536, [[65536, 72], [65537, 1], [65538, 216]], [[65536, 183]], false]' \
	"bytes, mode, ring, the code in initial.ram at rip, final.ram what changed, no exit"
is "$(json "$first" 'sorted(r["final"]["regs"]) == ["rax"] and
	r["final"]["regs"]["rax"] == r["initial"]["regs"]["rax"] ^ 1')" true \
	"final.regs holds only the register that changed"
is "$(json "$first" 'r["initial"]["regs"]["rflags"] & ~0x3cd5 == 2 and
	r["initial"]["regs"]["rflags"] & 0x3000 == 0x3000')" true \
	"initial rflags: bit 1, IOPL 3 at ring 3, random arithmetic flags and DF only"
pshufb=$(sed -n 4p "$test_dir/captured.jsonl")
is "$(json "$pshufb" '(lambda a, ram: all(a + i in ram for i in range(16)) and
	0x40800 <= a < 0x40840)(r["initial"]["regs"]["rax"], dict(map(tuple, r["initial"]["ram"])))')" true \
	"pshufb xmm0, [rax]: rax on the memory slot, 16 random bytes there"
push=$(sed -n 7p "$test_dir/captured.jsonl")
is "$(json "$push" '(lambda sp, ram: all(sp - 8 + i in ram for i in range(8)))(
	r["initial"]["regs"]["rsp"], dict(map(tuple, r["initial"]["ram"])))')" true \
	"push rax: rsp on the stack slot, the quadword below it random"
movsb=$(sed -n 10p "$test_dir/captured.jsonl")
is "$(json "$movsb" '(lambda g, ram, d: g["rcx"] < 16 and
	all(g["rsi"] + d * i in ram and g["rdi"] + d * i in ram for i in range(g["rcx"])))(
	r["initial"]["regs"], dict(map(tuple, r["initial"]["ram"])),
	-1 if r["initial"]["regs"]["rflags"] & 0x400 else 1)')" \
	true "rep movsb: rcx below 16, every byte it moves from and to is in initial.ram"
client capture -s "$test_dir/fake-modify.sock" --vector-bytes 0 --count 3 --seed 7 \
	'48 01 d8' '66 0f 38 00 00' '50' 'f3 a4'
is "$out" "$(cat "$test_dir/captured.jsonl")" "the same seed gives the same vectors"
client capture -s "$test_dir/fake-modify.sock" --vector-bytes 0 --count 3 --seed 8 '48 01 d8'
if [ "$(sed -n 1p "$test_dir/out")" != "$first" ]; then
	ok "another seed gives other vectors"
else
	not_ok "another seed gives other vectors"
fi
client capture -s "$test_dir/fake-modify.sock" --ring 0 --vector-bytes 0 --count 1 '48 01 d8'
is "$(json "$out" '(lambda g: [r["ring"], 0x42800 <= g["rsp"] < 0x42840, g["rflags"] & 0x3000])(
	r["initial"]["regs"])')" '[0, true, 0]' \
	"ring 0: rsp always on the stack slot (a fault is delivered there), IOPL 0"
client capture -s "$test_dir/fake-modify.sock" --mode real --count 1 '8b 42 08'
is "$(json "$out" '(lambda g, ram: [r["mode"], sorted(g), g["cs"], g["ds"], g["ss"], g["ip"],
	max(g.values()) < 65536, 0x40000 + ((g["bp"] + g["si"] + 8) & 0xffff) in ram,
	0x10000 in ram, sorted(r["final"]["regs"])])(r["initial"]["regs"],
	dict(map(tuple, r["initial"]["ram"])))')" \
	'["real", ["ax", "bp", "bx", "cs", "cx", "di", "ds", "dx", "es", "flags", "fs", "gs", "ip", "si", "sp", "ss"], 4096, 16384, 16384, 0, true, true, true, ["ax"]]' \
	"real mode: SingleStepTests' 16-bit names, segments, [bp+si+8] among segment 0x4000's random bytes"
cp "$test_dir/out" "$test_dir/real.jsonl"
client replay -s "$test_dir/fake-modify.sock" "$test_dir/real.jsonl"
status_is 0 "replay reads real-mode vectors with 16-bit names back"
printf '# from stdin\n90\nf4\n' | client capture -s "$test_dir/fake-modify.sock" --vector-bytes 0 \
	--count 2 --file - 48,01,d8 -o "$test_dir/stdin.jsonl"
is "$("$PYTHON3" -c 'import json, sys
print([json.loads(l)["bytes"] for l in open(sys.argv[1])])' "$test_dir/stdin.jsonl")" \
	'[[144], [144], [244], [244], [72, 1, 216], [72, 1, 216]]' \
	"--file - reads stdin, its encodings first, then the operands; -o writes the file"
client capture -s "$test_dir/fake-modify.sock" --vector-bytes 0 --count 2 --array 90 --window 1
is "$("$PYTHON3" -c 'import json,sys; v=json.load(open(sys.argv[1])); print(len(v), v[1]["bytes"])' \
	"$test_dir/out")" "2 [144]" "--array writes one JSON array, as SingleStepTests' files are"

client replay -s "$test_dir/fake-modify.sock" "$test_dir/captured.jsonl"
status_is 0 "replay of capture's output, the same answers: exit 0"
like "$out" "*48 01 d8*: 3/3 agree*f3 a4*: 3/3 agree*12 vectors, 12 agree, 0 disagree" \
	"... per encoding: all agree"
client replay -s "$test_dir/fake-echo.sock" "$test_dir/captured.jsonl"
status_is 1 "replay where the run changes nothing: exit 1"
like "$out" "*48 01 d8*: 0/3 agree
  first disagreement: $test_dir/captured.jsonl #0 (*): rax 0x*, expected 0x*" \
	"... per encoding, the first disagreement: the register that differs"
drop_final_regs "$test_dir/captured.jsonl" >"$test_dir/no-regs.jsonl"
client replay -s "$test_dir/fake-echo.sock" "$test_dir/no-regs.jsonl"
like "$out" "*first disagreement: *#0 *: ram\[0x10000\] unchanged, expected 0xb7*" \
	"a byte the vector says changed but did not"

client replay -s "$test_dir/fake-step.sock" "$test_dir/D4.json"
status_is 1 "SingleStepTests' file: the stand-in leaves ax, so vector 0 disagrees"
like "$out" "D4 (aam 10): 1/2 agree
  first disagreement: $test_dir/D4.json #0 (aam 10): rax 0x7b, expected 0x1203*" \
	"... keyed by the file's opcode, 16-bit registers compared"
mkdir "$test_dir/af"
"$PYTHON3" -c '
import json, sys
v = json.load(open(sys.argv[1]))[1:]
v[0]["final"]["regs"]["flags"] = 61442 ^ 0x10
json.dump(v, open(sys.argv[2], "w"))' "$test_dir/D4.json" "$test_dir/af/D4.json"
client replay -s "$test_dir/fake-step.sock" "$test_dir/af/D4.json"
status_is 1 "an AF the vector sets and the run does not: disagrees"
client replay -s "$test_dir/fake-step.sock" --metadata "$test_dir/metadata.json" \
	"$test_dir/af/D4.json"
status_is 0 "... unless metadata.json's flags-mask leaves AF out"
client replay -s "$test_dir/fake-step.sock" --metadata "$test_dir/D4.json" "$test_dir/D4.json"
status_is 2 "--metadata that is no object: usage error"

client capture -s "$test_dir/fake-modify.sock" --vector-bytes 32 --count 2 '0f 58 c1'
status_is 0 "capture with ymm registers through the stand-in"
is "$(json "$(sed -n 1p "$test_dir/out")" '(lambda x, f: [sorted(x) == sorted(["ymm%d" % i
	for i in range(16)] + ["mxcsr"]), all(len(x["ymm%d" % i]) == 66 for i in range(16)),
	x["mxcsr"] & ~0xe040 == 0x1f80, sorted(f)])(r["initial"]["xstate"], r["final"]["xstate"])')" \
	'[true, true, true, ["ymm0"]]' \
	"initial.xstate: ymm0-15 in full, mxcsr masked; final.xstate: only ymm0, which changed"
cp "$test_dir/out" "$test_dir/ymm.jsonl"
client replay -s "$test_dir/fake-modify.sock" "$test_dir/ymm.jsonl"
status_is 0 "replay with the xstate: agrees"
drop_final_regs "$test_dir/ymm.jsonl" >"$test_dir/ymm-regs.jsonl"
client replay -s "$test_dir/fake-echo.sock" "$test_dir/ymm-regs.jsonl"
like "$out" "*first disagreement: *: ymm0 differs*" "... and says which vector register does not"
client capture -s "$test_dir/fake-modify.sock" --mode protected --vector-bytes 16 --count 1 '0f 58 c1'
is "$(json "$out" 'sorted(r["initial"]["xstate"])')" \
	"$(echo '["mxcsr", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7"]')" \
	"protected mode: xmm0-7"

# The progress bar: on a terminal only.
client capture -s "$test_dir/fake-modify.sock" --vector-bytes 0 --count 50 90
case $err in *"$(printf '\r')"*) not_ok "no progress bar when stderr is no terminal" ;;
*) ok "no progress bar when stderr is no terminal" ;; esac
client_tty --stderr capture -s "$test_dir/fake-modify.sock" --vector-bytes 0 --count 50 90
like "$err" "*##########* 50/50 *ETA 0:0*" \
	"a progress bar with count, rate and ETA on a terminal"
client_tty --stderr capture -s "$test_dir/fake-modify.sock" --vector-bytes 0 --no-progress \
	--count 5 90
is "$err" "" "--no-progress: none on a terminal either"

# --- with KVM -----------------------------------------------------------------------
# now_ms: the monotonic-enough wall clock, in milliseconds.
now_ms() {
	echo $(($(date +%s%N) / 1000000))
}

if kvm_or_skip "capture of add, addps, pshufb, push and rep movsb on this CPU" \
	"capture runs at 0.8 times the daemon's plain-run throughput or more" \
	"replay of capture's own output agrees 100%" \
	"captured vectors match the instructions run natively, bit for bit"; then
	start_daemon
	start=$(now_ms)
	client capture -s "$SOCK" --count 1000 '48 01 d8' '0f 58 c1' '66 0f 38 00 00' '50' 'f3 a4'
	capture_ms=$(($(now_ms) - start))
	status_is 0 "capture of add, addps, pshufb, push and rep movsb on this CPU"
	cp "$test_dir/out" "$test_dir/host.jsonl"
	# The same number of plain runs (a hlt at ring 3), pipelined by raw.
	printf '\364' >"$test_dir/hlt.bin"
	line=$(run_request 1 "$test_dir/hlt.bin" long ',"ring":3')
	i=0
	while [ $i -lt 5000 ]; do echo "$line"; i=$((i + 1)); done >"$test_dir/plain.jsonl"
	start=$(now_ms)
	"$KVMRUN_CLIENT" raw -s "$SOCK" <"$test_dir/plain.jsonl" >/dev/null
	plain_ms=$(($(now_ms) - start))
	diag "5000 vectors captured in $capture_ms ms; 5000 plain runs in $plain_ms ms"
	if [ "$TIME_SCALE" -gt 1 ]; then
		skip "capture runs at 0.8 times the daemon's plain-run throughput or more" \
			"timing means nothing in a sanitizer or valgrind build"
	else
		below "$((capture_ms * 8))" "$((plain_ms * 10 + 1))" \
			"capture runs at 0.8 times the daemon's plain-run throughput or more"
	fi
	client replay -s "$SOCK" "$test_dir/host.jsonl"
	status_is 0 "replay of capture's own output agrees 100%"
	diag "$out"
	# tests/capture-native runs each instruction natively from the vector's
	# initial registers and compares rax and the flags.
	client capture -s "$SOCK" --count 100 --vector-bytes 0 '48 01 d8' '48 29 d8' '48 0f af c3' \
		'48 d3 e0' '48 0f bc c3'
	if "$TOP_BUILDDIR/tests/capture-native" <"$test_dir/out" >"$test_dir/native-out" 2>&1; then
		ok "captured vectors match the instructions run natively, bit for bit"
	else
		not_ok "captured vectors match the instructions run natively, bit for bit"
		sed 's/^/# /' "$test_dir/native-out" | head -20
	fi
fi

done_testing
