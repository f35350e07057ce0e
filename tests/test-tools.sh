#!/bin/sh
# kvmrun-once and kvmrun-bench: their usage errors and help everywhere, a
# run and a short benchmark's JSON where guests can run, and a clear
# refusal where they cannot.
. "${TOP_SRCDIR:-.}/tests/lib.sh"

make_test_dir
KVMRUN_BENCH=$TOP_BUILDDIR/kvmrun-bench

# --- kvmrun-once ------------------------------------------------------------
out=$("$KVMRUN_ONCE" 2>&1)
like "$?:$out" "2:usage: kvmrun-once *" "kvmrun-once without an image: usage, exit 2"
out=$("$KVMRUN_ONCE" --mode warp "$GUESTS/hello-real.bin" 2>&1)
like "$?:$out" "2:*warp*" "kvmrun-once --mode warp: exit 2 naming the mode"
out=$("$KVMRUN_ONCE" "$test_dir/none.bin" 2>&1)
like "$?:$out" "2:*none.bin*" "kvmrun-once on a missing file: exit 2 naming it"
if have_kvm; then
	out=$("$KVMRUN_ONCE" --quiet "$GUESTS/hello-real.bin" 2>&1)
	is "$?:$out" "0:Hello, world!" "kvmrun-once runs hello world and exits 0"
	out=$("$KVMRUN_ONCE" --timeout-ms 50 "$GUESTS/loop-real.bin" 2>&1)
	like "$?:$out" "1:*timeout*" "kvmrun-once: a guest that times out exits 1"
else
	out=$("$KVMRUN_ONCE" --quiet "$GUESTS/hello-real.bin" 2>&1)
	is "$?:$out" "3:kvmrun-once: $KVM_REASON" \
		"kvmrun-once without KVM: exit 3 with the reason"
	kvm_or_skip "kvmrun-once: a guest that times out exits 1"
fi

# --- kvmrun-bench -----------------------------------------------------------
out=$("$KVMRUN_BENCH" --help)
like "$?:$out" "0:usage: kvmrun-bench *--json*" "kvmrun-bench --help: exit 0, lists --json"
out=$("$KVMRUN_BENCH" --runs 0 2>&1)
like "$?:$out" "2:*--runs*" "kvmrun-bench --runs 0: exit 2 naming the option"
# The man page lists the options --help lists, no more and no fewer.
help_options=$("$KVMRUN_BENCH" --help | grep -o -- '--[a-z][a-z0-9-]*' | sort -u)
man_options=$(grep -o -- 'Fl \\-[a-z][a-z0-9-]*' "$TOP_SRCDIR/man/kvmrun-bench.1" |
	sed 's/^Fl \\/-/' | sort -u)
is "$man_options" "$help_options" "kvmrun-bench.1 documents exactly the options of --help"
# A short run: the figures are not judged, only that they are all there.
# --no-udevd: a udevd started by the benchmark would apply its rules to
# /dev/kvm (Debian: root:kvm 0660) under the tests running beside this one.
bench="--json --runs 200 --latency-runs 20 --connections 2 --depth 2 --spin 0 \
--spin-ring0 0 --rounds 1 --no-udevd"
if have_kvm; then
	# shellcheck disable=SC2086
	timeout $((300 * TIME_SCALE)) "$KVMRUN_BENCH" $bench >"$test_dir/bench.json" \
		2>"$test_dir/bench.err"
	rc=$?
	r=$("$PYTHON3" -c '
import json, sys
b = json.load(open(sys.argv[1]))
rows = b["rows"].values()
idle = b["rows"]["daemon_idle"]
print(b["runs"], b["latency_runs"], sorted(b)[:4],
      all(r["runs"] > 0 and r["failures"] == 0 and r["runs_per_s"] > 0 and
          r["machine_us_per_run"] > 0 for r in rows),
      0 < idle["overhead_p50_us"] <= idle["p50_us"],
      b["udevd"] == "none (--no-udevd)" or b["udevd"].startswith("the machine\x27s own"),
      b["without_udevd"]["not_measured"] != "",
      [t for t in ("overhead_idle_us", "machine_cpu") if t in b["targets"]])' \
		"$test_dir/bench.json" 2>&1)
	is "$rc:$r" "0:200 20 ['cpus', 'guest', 'kthreads_us_per_run', 'latency_runs'] True \
True True True ['overhead_idle_us', 'machine_cpu']" \
		"kvmrun-bench --json: one valid JSON object, every row measured without failures"
	diag "$(head -c 600 "$test_dir/bench.json")"
else
	# shellcheck disable=SC2086
	out=$(timeout 60 "$KVMRUN_BENCH" $bench 2>&1)
	is "$?:$out" "1:kvmrun-bench: $KVM_REASON" \
		"kvmrun-bench without KVM: exit 1 with the reason, at once"
	kvm_or_skip "kvmrun-bench --json: one valid JSON object, every row measured without failures"
fi

done_testing
