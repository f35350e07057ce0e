#!/bin/sh
# The README's "Running a guest" commands, run as written: from a directory
# whose build/ is this build, each kvmrun-client line must end the way its
# exit status says it should on this host (0, or 5 without KVM; 3 for a mode
# the host refuses as unsupported).
. "${TOP_SRCDIR:-.}/tests/lib.sh"

make_test_dir
mkdir "$test_dir/top"
ln -s "$TOP_BUILDDIR" "$test_dir/top/build"
# The block between the heading and the first closing fence after it.
sed -n '/^## Running a guest/,/^## /p' "$TOP_SRCDIR/README.md" |
	awk '/^```sh$/ { inside = 1; next } inside && /^```$/ { exit } inside' >"$test_dir/block.sh"
count=$(grep -c '^kvmrun-client\|| kvmrun-client' "$test_dir/block.sh")
is "$([ "$count" -ge 7 ] && echo many)" many "the README's example block has its $count client lines"

# Each client line reports its exit status; the socket goes to the test dir.
sed "s|/tmp/kvmrun-readme.sock|$test_dir/readme.sock|" "$test_dir/block.sh" >"$test_dir/run.sh"
(
	cd "$test_dir/top" &&
	PATH=$(dirname "$KVMRUN_CLIENT"):$PATH bash -c '
kvmrun-client() { command kvmrun-client "$@"; echo "exit $?" >&3; }
. "$1"' run "$test_dir/run.sh" 3>"$test_dir/statuses" >"$test_dir/out" 2>&1
)
statuses=$(sed 's/exit //' "$test_dir/statuses" | tr '\n' ' ')
diag "statuses: $statuses"
if have_kvm; then
	like "$statuses" "0 0 0 [03] 0 0 0 " \
		"every README command works as written (paged may be unsupported here)"
else
	is "$statuses" "0 5 5 5 5 5 0 " \
		"every README command works as written: ping and raw answer, runs exit 5 without KVM"
fi
like "$(cat "$test_dir/out")" "*kvmrund * protocol 3*" "the ping line shows the daemon"
[ -e "$test_dir/readme.sock" ] && not_ok "the daemon was stopped, its socket removed" ||
	ok "the daemon was stopped, its socket removed"
done_testing
