#!/bin/sh
# systemd/deploy/ offline: the Kubernetes manifests' fields that matter and
# the Containerfile's sources (tests/check-deploy.py, with python3-yaml),
# and kubectl's client-side dry run where kubectl works without a cluster.
# Nothing here starts a cluster or builds the image.

. "$TOP_SRCDIR/tests/lib.sh"

if ! "$PYTHON3" -c 'import yaml' 2>/dev/null; then
	echo "1..0 # SKIP python3-yaml is not installed (apt-get install python3-yaml; dev.sh does)"
	exit 0
fi
"$PYTHON3" "$TOP_SRCDIR/tests/check-deploy.py" "$TOP_SRCDIR" >"${TMPDIR:-/tmp}/check-deploy.$$" 2>&1
status=$?
while read -r verdict rest; do
	case $verdict in
	ok) ok "$rest" ;;
	not) not_ok "${rest#ok }" ;;
	*) not_ok "check-deploy.py: $verdict $rest" ;;
	esac
done <"${TMPDIR:-/tmp}/check-deploy.$$"
rm -f "${TMPDIR:-/tmp}/check-deploy.$$"
is "$status" 0 "check-deploy.py ran to the end"

# kubectl's dry run still asks a server for its API groups (discovery);
# without one it cannot say anything, which is a SKIP, not a pass.
if ! command -v kubectl >/dev/null 2>&1; then
	skip "kubectl create --dry-run=client" "kubectl is not installed"
elif out=$(KUBECONFIG=/dev/null timeout 60 kubectl create --dry-run=client --validate=false \
	-f "$TOP_SRCDIR/systemd/deploy/kvmrun.yaml" -o name 2>&1); then
	is "$(echo "$out" | sort | tr '\n' ' ')" \
		"configmap/kvmrun-haproxy daemonset.apps/kvmrun service/kvmrun " \
		"kubectl create --dry-run=client reads the manifests"
else
	skip "kubectl create --dry-run=client" \
		"kubectl needs an API server for discovery even in a client-side dry run: $(echo "$out" | tail -n 1)"
fi

done_testing
