"""Offline checks of systemd/deploy/ for tests/test-deploy.sh, where no
Kubernetes API server answers kubectl: the fields that matter in
kvmrun.yaml, its HAProxy config against haproxy-host.cfg, and the sources
of the Containerfile's COPY lines.  Prints one "ok"/"not ok" word and a
description a line; exits 0."""

import os
import re
import sys

import yaml

top, deploy = sys.argv[1], sys.argv[1] + "/systemd/deploy"


def check(good: bool, what: str) -> None:
    print(("ok" if good else "not ok") + " " + what)


def directives(text: str) -> list[str]:
    """The lines of an HAProxy config that say something."""
    return [" ".join(line.split()) for line in text.splitlines()
            if line.strip() and not line.strip().startswith("#")]


docs = {d["kind"]: d for d in yaml.safe_load_all(open(deploy + "/kvmrun.yaml"))}
check(sorted(docs) == ["ConfigMap", "DaemonSet", "Service"],
      "kvmrun.yaml: a ConfigMap, a DaemonSet and a Service")
check(docs["DaemonSet"]["apiVersion"] == "apps/v1" and docs["Service"]["apiVersion"] == "v1",
      "kvmrun.yaml: apiVersions apps/v1 and v1")
pod = docs["DaemonSet"]["spec"]["template"]["spec"]
labels = docs["DaemonSet"]["spec"]["template"]["metadata"]["labels"]
check(docs["DaemonSet"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
      and docs["Service"]["spec"]["selector"].items() <= labels.items(),
      "the DaemonSet's and the Service's selectors match the pod's labels")
psc = pod["securityContext"]
check(psc.get("runAsNonRoot") is True and psc.get("runAsUser", 0) != 0
      and psc.get("supplementalGroups"),
      "the pod runs as a non-root user with a supplementary (kvm) group")
check(psc.get("seccompProfile", {}).get("type") == "RuntimeDefault",
      "the pod's seccomp profile is RuntimeDefault")
containers = {c["name"]: c for c in pod["containers"]}
check(sorted(containers) == ["haproxy", "kvmrund"], "containers kvmrund and haproxy")
for name, c in containers.items():
    sc = c.get("securityContext", {})
    check(sc.get("privileged") is False and sc.get("allowPrivilegeEscalation") is False
          and sc.get("readOnlyRootFilesystem") is True
          and sc.get("capabilities", {}).get("drop") == ["ALL"],
          f"{name}: not privileged, read-only root, every capability dropped")
    mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
    check(mounts.get("/run/kvmrun") == "socket", f"{name}: the shared socket directory")
limits = containers["kvmrund"]["resources"]["limits"]
check(limits.get("devices.kubevirt.io/kvm") == "1",
      "kvmrund: /dev/kvm through the device plugin resource devices.kubevirt.io/kvm")
check("/run/kvmrun/kvmrun.sock" in containers["kvmrund"]["command"],
      "kvmrund listens on /run/kvmrun/kvmrun.sock")
volumes = {v["name"]: v for v in pod["volumes"]}
check(not any("hostPath" in v for v in volumes.values()), "no hostPath volume")
check(all(m["name"] in volumes for c in containers.values() for m in c["volumeMounts"]),
      "every volume mounted is declared")
shipped = directives(open(deploy + "/haproxy-host.cfg").read())
in_pod = directives(docs["ConfigMap"]["data"]["haproxy.cfg"])
check(in_pod == shipped, "the ConfigMap's haproxy.cfg is haproxy-host.cfg")
bind = [d for d in in_pod if d.startswith("bind ")][0]
port = int(re.match(r"bind :(\d+) ", bind).group(1))
ports = {p["name"]: p["containerPort"] for p in containers["haproxy"]["ports"]}
svc = docs["Service"]["spec"]["ports"][0]
check(ports.get(svc["targetPort"]) == port,
      f"the Service reaches the port HAProxy binds ({port})")
cfg_mount = [m["mountPath"] for m in containers["haproxy"]["volumeMounts"]
             if m["name"] == "haproxy-config"][0]
check(cfg_mount + "/haproxy.cfg" in containers["haproxy"]["command"],
      "HAProxy reads the ConfigMap's file")

containerfile = open(deploy + "/Containerfile").read()
check(re.findall(r"^FROM (\S+)", containerfile, re.M)[0] == "debian:12",
      "Containerfile: builds on Debian 12")
sources = [line.split()[1:-1] for line in containerfile.splitlines()
           if line.startswith("COPY ") and "--from=" not in line]
check(bool(sources) and all(os.path.exists(os.path.join(top, s)) for src in sources for s in src),
      "Containerfile: every COPY source is in the source tree")
dev_sh = open(top + "/dev.sh").read()
packages = re.search(r"^packages=\((.*?)\)", dev_sh, re.M | re.S)
wanted = [p for p in packages.group(1).split() if p.endswith("-dev")] if packages else []
missing = [p for p in wanted if p not in containerfile.split()]
check(bool(wanted) and not missing,
      "Containerfile: builds with every -dev package dev.sh installs"
      + (f" (missing {' '.join(missing)})" if missing else ""))
check("haproxy" in containerfile.split(), "Containerfile: HAProxy to run")
