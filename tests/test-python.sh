#!/bin/sh
# The Python package kvmrun (client/python): its unit tests against a fake
# daemon, and against real daemons set up for each error code; mypy over the
# package; an install by make into a DESTDIR.  The Python tests print TAP
# lines without numbers, counted here.  Runs that need a guest SKIP without
# KVM.

. "${TOP_SRCDIR:-.}/tests/lib.sh"

PYDIR="$TOP_SRCDIR/client/python"
export PYTHONDONTWRITEBYTECODE=1 KVM_REASON GUESTS

# A user that is not us, for --allow-uid.
other_uid=$(($(id -u) + 1))

start_daemon --workers 2
KVMRUN_TEST_SOCKET=$SOCK
start_daemon --workers 1 --kvm /nonexistent
KVMRUN_TEST_NOKVM_SOCKET=$SOCK
start_daemon --workers 1 --allow-uid "$other_uid"
KVMRUN_TEST_FORBIDDEN_SOCKET=$SOCK
start_daemon --workers 1 --max-connections 1
KVMRUN_TEST_BUSY_SOCKET=$SOCK
start_daemon --workers 1 --max-line 4K
KVMRUN_TEST_LIMITS_SOCKET=$SOCK
export KVMRUN_TEST_SOCKET KVMRUN_TEST_NOKVM_SOCKET KVMRUN_TEST_FORBIDDEN_SOCKET \
	KVMRUN_TEST_BUSY_SOCKET KVMRUN_TEST_LIMITS_SOCKET
if have_kvm; then
	# "internal": KVM_CREATE_VM failing with EMFILE, as in test-hostile.sh.
	KVMRUN_TEST_NOFILE_LIMIT=40
	KVMRUN_TEST_NOFILE_SOCKET="$test_dir/nofile.sock"
	prlimit --nofile=$KVMRUN_TEST_NOFILE_LIMIT "$KVMRUND" \
		--socket "$KVMRUN_TEST_NOFILE_SOCKET" --workers 1 \
		2>"$test_dir/kvmrund-nofile.log" &
	track_daemon $!
	KVMRUN_TEST_NOFILE_PID=$!
	if ! wait_socket "$KVMRUN_TEST_NOFILE_SOCKET"; then
		echo "Bail out! kvmrund under prlimit did not start"
		exit 99
	fi
	export KVMRUN_TEST_NOFILE_LIMIT KVMRUN_TEST_NOFILE_SOCKET KVMRUN_TEST_NOFILE_PID
fi

# --- the unit tests ----------------------------------------------------------
(cd "$test_dir" && PYTHONPATH="$PYDIR" "$PYTHON3" "$PYDIR/tests/test_client.py") \
	>"$test_dir/python.tap" 2>"$test_dir/python.err"
status=$?
while IFS= read -r line; do
	case $line in
	"ok - "*" # SKIP "*)
		_rest=${line#ok - }
		skip "${_rest%% \# SKIP *}" "${_rest#* \# SKIP }"
		;;
	"ok - "*) ok "${line#ok - }" ;;
	"not ok - "*) not_ok "${line#not ok - }" ;;
	*) printf '%s\n' "$line" | sed 's/^#* *//' | diag "$(cat)" ;;
	esac
done <"$test_dir/python.tap"
if [ "$status" -eq 0 ] && [ ! -s "$test_dir/python.err" ]; then
	ok "the Python tests ran to their end, nothing on stderr"
else
	not_ok "the Python tests ran to their end, nothing on stderr (exit $status)"
	sed 's/^/# /' "$test_dir/python.err" | head -n 60
fi

# --- the types ---------------------------------------------------------------
MYPY=${MYPY:-mypy}
if [ "$MYPY" = no ] || ! command -v "$MYPY" >/dev/null; then
	not_ok "mypy --strict: the package and its tests type-check"
	diag "mypy not found: apt-get install mypy"
elif out=$(cd "$PYDIR" && "$MYPY" --strict --cache-dir "$test_dir/mypy-cache" kvmrun tests 2>&1); then
	ok "mypy --strict: the package and its tests type-check ($out)"
else
	not_ok "mypy --strict: the package and its tests type-check"
	diag "$out"
fi

# --- installed by make -------------------------------------------------------
# The package as make install puts it under a DESTDIR: importable from the
# directory configure chose, and it talks to the daemon.
targets=$(sed -n 's/^\(install-[a-z_]*pkgpython[A-Z]*\):.*/\1/p' \
	"$TOP_BUILDDIR/Makefile" 2>/dev/null | sort -u)
if [ -z "$targets" ]; then
	not_ok "make install: the build does not install the Python package"
else
	dest="$test_dir/destdir"
	# shellcheck disable=SC2086 # the targets, one a word
	if out=$(cd "$TOP_BUILDDIR" && ${MAKE:-make} -s --no-print-directory \
		DESTDIR="$dest" $targets 2>&1); then
		pkg=$(find "$dest" -type d -name kvmrun | head -n 1)
		dir=${pkg%/kvmrun}
		r=$(cd "$test_dir" && PYTHONPATH="$dir" "$PYTHON3" -c '
import sys, kvmrun
print(kvmrun.__file__.startswith(sys.argv[1]), kvmrun.Client(sys.argv[2]).ping().protocol)
' "$dir" "$KVMRUN_TEST_SOCKET" 2>&1)
		is "$r" "True 3" "make install puts kvmrun in ${dir#"$dest"}: it imports and pings"
		is "$(ls "$pkg" | tr '\n' ' ')" \
			"__init__.py __main__.py __pycache__ aio.py client.py errors.py py.typed types.py " \
			"installed: the modules, py.typed, byte-compiled"
	else
		not_ok "make install of the Python package into a DESTDIR"
		diag "$out"
	fi
fi

done_testing
