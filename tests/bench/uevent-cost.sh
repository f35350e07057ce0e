#!/bin/bash
# What systemd-udevd costs per `change` uevent of /dev/kvm.  KVM sends one
# for every VM created and every VM destroyed; kvmrun makes 2000+ VMs a
# second.  KVM's own events cannot be sent at will, so this measures a
# STAND-IN: an existing misc device that no rule touches gets /dev/kvm's
# rule lines copied under its name, and writing "change UUID KEY=VAL..." to
# its sysfs uevent file makes the kernel send a real uevent with KVM's keys.
# A benchmark, not a test (not in TESTS); exits 77 where it cannot run.
# See --help.
set -u

events=10000
rounds=4
rate=1000
configs="a b c d e"
device=cpu_dma_latency
cut_file=

usage() {
	cat <<EOF
usage: $0 [--events N] [--rounds N] [--rate N] [--configs LIST] [--device NAME] [--cut FILE]

Measures the CPU cost per 'change' uevent of a stand-in for /dev/kvm: the
misc device NAME (default $device; one that exists in
/sys/devices/virtual/misc and that no rule mentions) gets the rule lines
that match KERNEL=="kvm" on this machine, copied under its name into
/run/udev/rules.d, so systemd-udevd walks exactly /dev/kvm's rule path.
Events carry KVM's keys (CREATED, COUNT, EVENT=create|destroy, PID); the
kernel prefixes those of synthetic uevents with SYNTH_ARG_.

Configurations, measured in turn in every round (the order rotates):
  a  no udevd: the kernel and the writer only
  b  udevd, /dev/kvm's rule path
  c  as b, plus the candidate rule FILE (default: OPTIONS+="last_rule"
     for KVM's events, which udev ignores); written for /dev/kvm, its
     KERNEL=="kvm" and ENV{EVENT} are rewritten for the stand-in
  d  udevd, no rule matching the stand-in (the distribution's rules only)
  e  udevd with no rules at all: the floor no rule can go below
Each one starts its own systemd-udevd in a private mount namespace (its
/run/udev is a private tmpfs), so nothing of it is left behind.  Where a
systemd-udevd is running already, a and e are left out and the running one
is measured: the rules go to /run/udev/rules.d and are reloaded, and
removed and reloaded at the end.

Per event, the median and range over the rounds: udevd CPU (its main
process, the workers it reaped and those alive), "ours" (a cgroup holding
this script and all it starts, the kernel's work for them included) and
the whole machine's CPU from /proc/stat (user nice system irq softirq
steal); besides, how fast udevd worked the events off and its peak
memory.  /proc counts in ticks (10 ms): keep N large.  The machine's figure
includes everything else running: measure on an idle machine.

  --events N   events per configuration and round (default $events, even)
  --rounds N   rounds (default $rounds)
  --device N   the stand-in misc device (default $device)
  --rate N     events per second, written in batches every 10 ms (default
               $rate; 0: as fast as the writer goes, which queues most)
  --configs L  the configurations to measure (default "$configs")
  --cut FILE   the candidate rule file to measure as c
Needs root, udev and a writable sysfs; exits 77 (skipped) where it lacks one.
EOF
}

die() { echo "uevent-cost: $*" >&2; exit 2; }
skip() { echo "uevent-cost: skipped (exit 77): $*" >&2; exit 77; }

while [ $# -gt 0 ]; do
	case $1 in
	--events) [ $# -ge 2 ] || die "--events needs a number"; events=$2; shift 2 ;;
	--rounds) [ $# -ge 2 ] || die "--rounds needs a number"; rounds=$2; shift 2 ;;
	--device) [ $# -ge 2 ] || die "--device needs a name"; device=$2; shift 2 ;;
	--rate) [ $# -ge 2 ] || die "--rate needs a number"; rate=$2; shift 2 ;;
	--configs) [ $# -ge 2 ] || die "--configs needs a list"; configs=$2; shift 2 ;;
	--cut) [ $# -ge 2 ] || die "--cut needs a file"; cut_file=$2; shift 2 ;;
	-h|--help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
done
case $events in ''|*[!0-9]*) die "--events: '$events' is not a number" ;; esac
case $rounds in ''|*[!0-9]*) die "--rounds: '$rounds' is not a number" ;; esac
case $rate in ''|*[!0-9]*) die "--rate: '$rate' is not a number" ;; esac
for c in $configs; do
	case $c in [abcde]) ;; *) die "--configs: '$c' is none of a b c d e" ;; esac
done
[ -n "$configs" ] || die "--configs: empty"
[ "$events" -ge 2 ] || die "--events: at least 2"
[ "$rounds" -ge 1 ] || die "--rounds: at least 1"
events=$(( (events + 1) / 2 * 2 )) # create and destroy in pairs
case $device in ''|*[!A-Za-z0-9_-]*) die "--device: '$device' is not a misc device name" ;; esac
[ -z "$cut_file" ] || [ -r "$cut_file" ] || die "--cut: cannot read '$cut_file'"

# --- can it run here? ------------------------------------------------------
[ "$(id -u)" -eq 0 ] || skip "needs root: it writes sysfs uevent files and udev rules"
udevd=
for f in /usr/lib/systemd/systemd-udevd /lib/systemd/systemd-udevd; do
	[ -x "$f" ] && { udevd=$f; break; }
done
[ -n "$udevd" ] && command -v udevadm >/dev/null || skip "udev is not installed (Debian: apt-get install udev)"
sysdev=/sys/devices/virtual/misc/$device
uevent=$sysdev/uevent
[ -e "$uevent" ] || skip "no misc device '$device' here (choose one of: $(ls /sys/devices/virtual/misc | tr '\n' ' '))"
sysfs_opts=$(awk '$2 == "/sys" { print $4 }' /proc/mounts)
case ,$sysfs_opts, in *,ro,*) skip "/sys is mounted read-only: the kernel's uevent files cannot be written" ;; esac
[ -w "$uevent" ] || skip "$uevent is not writable"
node=/dev/$device
[ -c "$node" ] || skip "$node is missing: the stand-in needs a device node for the rules' GROUP and MODE"
[ -n "${EPOCHREALTIME:-}" ] || skip "needs bash 5 (EPOCHREALTIME)"
command -v unshare >/dev/null && command -v nsenter >/dev/null || skip "needs unshare and nsenter (util-linux)"
ticks_per_s=$(getconf CLK_TCK)

# The rules files udevd reads, a name in an earlier directory hiding the same
# name in a later one (a link to /dev/null hides it altogether).
rule_dirs="/etc/udev/rules.d /run/udev/rules.d /usr/local/lib/udev/rules.d /usr/lib/udev/rules.d /lib/udev/rules.d"
effective_rules() {
	local d f seen=" "
	for d in $rule_dirs; do
		for f in "$d"/*.rules; do
			[ -e "$f" ] || [ -L "$f" ] || continue
			case $seen in *" ${f##*/} "*) continue ;; esac
			seen="$seen${f##*/} "
			case ${f##*/} in *kvmrun-standin*) continue ;; esac
			[ "$(readlink -f "$f")" = /dev/null ] && continue
			echo "$f"
		done
	done
}
rules=$(effective_rules)
others=$(grep -l -E "KERNEL==\"$device\"|KERNEL==\"${device}[*?]" $rules 2>/dev/null)
[ -z "$others" ] || die "--device $device: rules touch it already ($others); choose another"
kvm_rules=$(grep -l 'KERNEL=="kvm"' $rules 2>/dev/null)
[ -n "$kvm_rules" ] || skip "no udev rule here matches KERNEL==\"kvm\": nothing to stand in for"

work=$(mktemp -d "${TMPDIR:-/tmp}/uevent-cost.XXXXXX") || exit 1
node_state=$(stat -c '%u:%g %a' "$node")
system_udevd=
for p in $(pgrep -x systemd-udevd); do
	[ "$(awk '$1 == "State:" { print $2 }' "/proc/$p/status" 2>/dev/null)" = Z ] || { system_udevd=$p; break; }
done
udevd_pid=
global_rules=
cgroup=

finish() {
	set +e
	if [ -n "$udevd_pid" ]; then
		kill -TERM "$udevd_pid" 2>/dev/null
		wait "$udevd_pid" 2>/dev/null
	fi
	if [ -n "$global_rules" ]; then
		rm -f /run/udev/rules.d/*kvmrun-standin*.rules
		udevadm control --reload
	fi
	if [ -n "$cgroup" ]; then
		echo $$ >"${cgroup%/*}/cgroup.procs"
		rmdir "$cgroup"
	fi
	# The rules' GROUP and MODE changed the stand-in's node: put it back.
	chown "${node_state% *}" "$node"
	chmod "${node_state#* }" "$node"
	rm -rf "$work"
}
trap finish EXIT
trap 'exit 1' INT TERM HUP

# --- the rule sets -----------------------------------------------------------
# /dev/kvm's lines under the stand-in's name, each in a file named after the
# one it comes from, so it sorts where the original does; static_node= is
# for the node udevd makes at start-up, which the stand-in has already.
mkdir "$work/none" "$work/b" "$work/c"
for f in $kvm_rules; do
	base=${f##*/}
	grep 'KERNEL=="kvm"' "$f" |
		sed -e "s/KERNEL==\"kvm\"/KERNEL==\"$device\"/" \
			-e 's/, *OPTIONS+="static_node=kvm"//' \
			>"$work/b/${base%.rules}-kvmrun-standin.rules"
done
cp "$work"/b/*.rules "$work/c/"
cut_name=00-kvmrun-kvm-events.rules
[ -z "$cut_file" ] || cut_name=${cut_file##*/}
if [ -n "$cut_file" ]; then
	cat "$cut_file"
else
	# The built-in candidate: end the processing of KVM's events at once.
	# udev has ignored last_rule since version 148 (systemd 243 and later
	# say so in their log), and a GOTO cannot leave its file: the README's
	# udev section says why kvmrun ships no rule.
	cat <<'EOF'
ACTION=="change", SUBSYSTEM=="misc", KERNEL=="kvm", ENV{EVENT}=="create|destroy", OPTIONS+="last_rule"
EOF
fi | sed -e "s/KERNEL==\"kvm\"/KERNEL==\"$device\"/g" -e 's/ENV{EVENT}/ENV{SYNTH_ARG_EVENT}/g' \
	>"$work/c/${cut_name%.rules}-kvmrun-standin.rules"

# --- measuring -------------------------------------------------------------
# The CPU of this script and what it starts (the writer, udevd and its
# workers, udevadm), the kernel's work in their name included, whatever else
# the machine runs: a cgroup of its own, v1 cpuacct or v2.
if [ -w /sys/fs/cgroup/cpuacct/cgroup.procs ]; then
	cgroup=/sys/fs/cgroup/cpuacct/kvmrun-uevent-cost.$$
	cgroup_usage() { echo $(($(cat "$cgroup/cpuacct.usage") / 1000)); }
elif [ -w /sys/fs/cgroup/cgroup.procs ] && [ -e /sys/fs/cgroup/cgroup.controllers ]; then
	cgroup=/sys/fs/cgroup/kvmrun-uevent-cost.$$
	cgroup_usage() { awk '$1 == "usage_usec" { print $2 }' "$cgroup/cpu.stat"; }
fi
if [ -n "$cgroup" ]; then
	mkdir "$cgroup" && echo $$ >"$cgroup/cgroup.procs" || cgroup=
fi
[ -n "$cgroup" ] || cgroup_usage() { echo 0; }

# busy ticks of the whole machine: user nice system irq softirq steal
machine_ticks() {
	local user nice system irq softirq steal
	read -r _ user nice system _ _ irq softirq steal _ </proc/stat
	echo $((user + nice + system + irq + softirq + steal))
}

# "self children" ticks of a process (fields 14-17 of /proc/PID/stat; the
# name in parentheses may hold spaces)
proc_ticks() {
	local s
	s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo "0 0"; return; }
	set -- ${s##*) }
	echo "$((${12} + ${13})) $((${14} + ${15}))"
}

# "main workers" ticks of udevd: workers are the ones it reaped and the
# ones alive ("(udev-worker)"; "systemd-udevd" before v252)
udevd_ticks() {
	local self reaped live=0 c t
	read -r self reaped < <(proc_ticks "$1")
	for c in $(pgrep -P "$1"); do
		read -r t _ < <(proc_ticks "$c")
		live=$((live + t))
	done
	echo "$self $((reaped + live))"
}

mkfifo "$work/tick"
exec 4<>"$work/tick"
uuid=00000000-0000-4000-8000-00000000$(printf '%04x' $(($$ % 65536)))
# One write per event: the loop's output is the uevent file, opened once,
# and bash's echo flushes once per call.
# With --rate, a batch every 10 ms; read -t on a FIFO nobody writes sleeps
# without a process of its own.
batch=$(( rate / 100 < 2 ? 2 : rate / 100 / 2 * 2 ))
write_events() {
	local i
	for ((i = 1; i <= $1; i += 2)); do
		echo "change $uuid CREATED=$i COUNT=1 EVENT=create PID=$$"
		echo "change $uuid CREATED=$i COUNT=0 EVENT=destroy PID=$$"
		if [ "$rate" -gt 0 ] && [ $(((i + 1) % batch)) -eq 0 ]; then
			read -r -t 0.01 -u 4
		fi
	done >"$uevent"
}

in_udevd_ns() { nsenter --mount --target "$udevd_pid" -- "$@"; }

# Our own udevd, in a mount namespace of its own: a private /run/udev holds
# its rules ($1: a directory of rules files), database and control socket;
# with $2 = norules, every rules directory looks empty to it.
start_own_udevd() {
	unshare --mount --propagation private -- /bin/sh -c '
		set -e
		mount -t tmpfs -o mode=0755 kvmrun-standin /run/udev
		mkdir /run/udev/rules.d
		cp "$1"/. /run/udev/rules.d/ -R
		if [ "$2" = norules ]; then
			for d in /etc/udev/rules.d /usr/local/lib/udev/rules.d /usr/lib/udev/rules.d /lib/udev/rules.d; do
				[ -d "$d" ] && mount --bind "$1" "$d"
			done
		fi
		exec "$3"' sh "$1" "$2" "$udevd" >>"$work/udevd.log" 2>&1 &
	udevd_pid=$!
	local i
	for ((i = 0; i < 100; i++)); do
		in_udevd_ns udevadm control --ping 2>/dev/null && return 0
		kill -0 "$udevd_pid" 2>/dev/null || break
		sleep 0.1
	done
	cat "$work/udevd.log" >&2
	die "systemd-udevd did not start"
}

stop_own_udevd() {
	kill -TERM "$udevd_pid"
	wait "$udevd_pid"
	udevd_pid=
}

use_global_rules() {
	rm -f /run/udev/rules.d/*kvmrun-standin*.rules
	global_rules=1
	mkdir -p /run/udev/rules.d
	cp "$1"/. /run/udev/rules.d/ -R
	udevadm control --reload
}

settle() {
	if [ -n "$system_udevd" ]; then
		udevadm settle --timeout=600
	else
		in_udevd_ns udevadm settle --timeout=600
	fi
}

# measure CONFIG: one line "config udevd_main udevd_workers machine_ticks
# t_start t_written t_settled other_events udevd_peak_rss_kib ours_usec"
measure() {
	local config=$1 pid rules=$work/$1 m0 m1 g0 g1 u0 u1 s0 s1 t0 t1 t2 hwm=0
	[ "$config" = d ] && rules=$work/none
	[ "$config" = e ] && rules=$work/none
	if [ "$config" != a ]; then
		if [ -n "$system_udevd" ]; then
			use_global_rules "$rules"
			pid=$system_udevd
		else
			start_own_udevd "$rules" "$([ "$config" = e ] && echo norules)"
			pid=$udevd_pid
		fi
		# warm up: rules parsed, a worker forked, the database entry made
		write_events 2
		settle
		sleep 0.2
		u0=$(udevd_ticks "$pid")
	fi
	s0=$(cat /sys/kernel/uevent_seqnum)
	m0=$(machine_ticks)
	g0=$(cgroup_usage)
	t0=$EPOCHREALTIME
	write_events "$events"
	t1=$EPOCHREALTIME
	s1=$(cat /sys/kernel/uevent_seqnum)
	[ "$config" = a ] || settle
	t2=$EPOCHREALTIME
	m1=$(machine_ticks)
	g1=$(cgroup_usage)
	if [ "$config" = a ]; then
		u1="0 0" u0="0 0"
	else
		u1=$(udevd_ticks "$pid")
		hwm=$(awk '$1 == "VmHWM:" { print $2 }' "/proc/$pid/status")
		[ -n "$system_udevd" ] || stop_own_udevd
	fi
	[ $((s1 - s0)) -ge "$events" ] || die "$events writes made only $((s1 - s0)) uevents"
	set -- $u0 $u1
	echo "$config $(($3 - $1)) $(($4 - $2)) $((m1 - m0)) $t0 $t1 $t2 $((s1 - s0 - events)) $hwm $((g1 - g0))"
}

if [ -n "$system_udevd" ]; then
	configs=$(echo " $configs " | sed -e 's/ a / /' -e 's/ e / /')
	[ -n "${configs// }" ] || die "--configs: with a running systemd-udevd only b, c and d can be measured"
fi

echo "uevent-cost: CPU per 'change' uevent of $node, a STAND-IN for /dev/kvm"
echo "  (KVM's own uevents come only from creating and destroying VMs; the stand-in"
echo "  gets /dev/kvm's rule lines under its name, so udevd walks /dev/kvm's rule path)"
for f in "$work"/b/*.rules; do
	sed "s|^|  ${f##*/}: |" "$f"
done
sed "s|^|  candidate, c: ${cut_name}: |" "$work/c/${cut_name%.rules}-kvmrun-standin.rules"
echo "  events: change with SYNTH_ARG_CREATED/COUNT/EVENT=create|destroy/PID, $events per configuration and round, $rounds rounds,"
echo "  written $([ "$rate" -gt 0 ] && echo "at $rate/s" || echo "as fast as the writer goes")"
if [ -n "$system_udevd" ]; then
	echo "  udevd: the running one (pid $system_udevd), rules reloaded; a and e left out: they need it stopped"
else
	echo "  udevd: $udevd ($(udevadm --version)), started for each configuration in a mount namespace of its own"
fi
echo "  $(nproc) CPUs, kernel $(uname -r), load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"

for ((r = 0; r < rounds; r++)); do
	# the order rotates, so that the machine's drift touches all alike
	set -- $configs
	shift $((r % $#))
	order="$*"
	for c in $configs; do
		case " $order " in *" $c "*) break ;; esac
		order="$order $c"
	done
	for c in $order; do
		measure "$c" >>"$work/results" || exit
	done
	echo "  round $((r + 1)) of $rounds done, load average $(cut -d' ' -f1 /proc/loadavg)" >&2
done
echo "  load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ -s "$work/udevd.log" ] && grep -q kvmrun-standin "$work/udevd.log"; then
	echo "  what udevd said of the stand-in's rules:"
	grep kvmrun-standin "$work/udevd.log" | sort -u | sed 's/^/    /'
fi
echo

awk -v events="$events" -v hz="$ticks_per_s" -v rate=4000 '
function median(v, n,    i, j, t) {
	for (i = 2; i <= n; i++)
		for (j = i; j > 1 && v[j - 1] > v[j]; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
	return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
}
function lo(v, n,    i, m) { m = v[1]; for (i = 2; i <= n; i++) if (v[i] < m) m = v[i]; return m }
function hi(v, n,    i, m) { m = v[1]; for (i = 2; i <= n; i++) if (v[i] > m) m = v[i]; return m }
function cell(v, n) { return sprintf("%6.1f %5.1f-%-5.1f", median(v, n), lo(v, n), hi(v, n)) }
{
	us = 1e6 / hz / events
	c = $1; n[c]++; k = n[c]
	main[c, k] = $2 * us; work[c, k] = $3 * us; ud[c, k] = ($2 + $3) * us
	mach[c, k] = $4 * us
	drain[c, k] = events / ($7 - $5); wrote[c, k] = events / ($6 - $5)
	other[c] += $8
	rss[c, k] = $9
	ours[c, k] = $10 / events
}
END {
	name["a"] = "a  no udevd"
	name["b"] = "b  udevd, kvm rule path"
	name["c"] = "c  b + candidate rule"
	name["d"] = "d  udevd, no rule matches"
	name["e"] = "e  udevd, no rules at all"
	for (c in n) rounds = n[c]
	printf "us of CPU per event, median and range over %d rounds; events/s: from the first write until udevd is idle;\n", rounds
	print "ours: this script and what it starts (cgroup; 0 where it has none); machine: /proc/stat, all of it;"
	print "udevd KiB: peak resident memory (VmHWM) of the main process, which grows with its queue"
	printf "%-27s %-18s %-18s %-18s %-18s %-18s %9s %9s %9s\n", "configuration", "udevd", "udevd main", "udevd workers", "ours", "machine", "events/s", "written/s", "udevd KiB"
	for (i = 1; i <= 5; i++) {
		c = substr("abcde", i, 1)
		if (!(c in n)) continue
		for (k = 1; k <= n[c]; k++) { a1[k] = ud[c, k]; a2[k] = main[c, k]; a3[k] = work[c, k]; a4[k] = mach[c, k]; a5[k] = drain[c, k]; a6[k] = wrote[c, k]; a7[k] = rss[c, k]; a8[k] = ours[c, k] }
		m[c] = median(a4, n[c]); u[c] = median(a1, n[c]); o[c] = median(a8, n[c])
		printf "%-27s %-18s %-18s %-18s %-18s %-18s %9.0f %9.0f %9s\n", name[c], c == "a" ? "     -" : cell(a1, n[c]), c == "a" ? "     -" : cell(a2, n[c]), c == "a" ? "     -" : cell(a3, n[c]), cell(a8, n[c]), cell(a4, n[c]), median(a5, n[c]), median(a6, n[c]), c == "a" ? "-" : sprintf("%.0f", median(a7, n[c]))
	}
	print ""
	printf "at %d events/s (kvmrun: 2000 VMs/s, an event each for create and destroy), the medians per event times %d\n", rate, rate
	print "(more CPUs than the machine has: udevd falls behind, and its queue grows):"
	for (i = 2; i <= 5; i++) {
		c = substr("abcde", i, 1)
		if (!(c in n)) continue
		line = sprintf("  %-26s udevd %.2f CPUs", name[c], u[c] * rate / 1e6)
		if ("a" in n) line = line sprintf(", ours over a: %.2f CPUs, machine over a: %.2f CPUs", (o[c] - o["a"]) * rate / 1e6, (m[c] - m["a"]) * rate / 1e6)
		print line
	}
	for (c in other) if (other[c] > 0) printf "note: %s: %d uevents of other devices came in the measured windows\n", name[c], other[c]
}' "$work/results"
