#!/usr/bin/env bash
# Build the Debian 12 image of the VM test tier (docs/vm-tier.md) into OUT: a qcow2 root file system, its kernel and
# initrd, the root login's ssh key, and a local apt repository of the packages the tests install.
#
#   build-image.sh OUT WHEELS
#
# WHEELS holds wheels of tetherd's dependencies (pip download on the host, same CPython minor version as bookworm's):
# the agent's environment /opt/tether is made here, at build time, because under software emulation a venv takes half
# a minute. tether itself is installed into it by each run, from the checkout under test. The image is cached by a
# hash of this file and of WHEELS' names (tests/vm/image.py), so change this file to change the image.
set -euo pipefail

out="$1" wheels="$2"
mirror="${TETHER_VM_MIRROR:-http://deb.debian.org/debian}"
rootfs="$out/rootfs"

# libpam-systemd: debootstrap does not resolve virtual packages, and logind sessions need it. wpasupplicant: Network
# Manager's Wi-Fi. hostapd and dnsmasq-base: the test's own access point on the second simulated radio. polkitd: the
# JavaScript rules USE_ONLY_SAVED_WIFI_AP writes. unattended-upgrades: SET_OS_UPDATE_POLICY and PAUSE_OS_UPDATES.
packages=(
    systemd systemd-sysv udev dbus libpam-systemd openssh-server python3 python3-venv
    linux-image-amd64 kmod iproute2 procps ca-certificates locales
    network-manager wpasupplicant hostapd dnsmasq-base iw rfkill wireless-regdb polkitd
    unattended-upgrades
)
rm -rf "$rootfs"
mkdir -p "$out"
debootstrap --variant=minbase --include="$(IFS=,; echo "${packages[*]}")" bookworm "$rootfs" "$mirror" \
    > "$out/debootstrap.log" 2>&1 || { tail -20 "$out/debootstrap.log" >&2; exit 1; }

echo tether-vm > "$rootfs/etc/hostname"
printf '/dev/vda / ext4 defaults,errors=remount-ro 0 1\n' > "$rootfs/etc/fstab"
# No network reaches a mirror from inside: each test run adds the host's local repository as the only source.
rm -f "$rootfs/etc/apt/sources.list"
# Jobs that would compete with the tests for the emulated CPU. apt's timers are disabled, not masked: the update
# policy handlers enable, drop into and read back apt-daily-upgrade's units.
for unit in e2scrub_reap.service man-db.timer fstrim.timer systemd-timesyncd.service; do
    ln -sf /dev/null "$rootfs/etc/systemd/system/$unit"
done
rm -f "$rootfs"/etc/systemd/system/timers.target.wants/apt-daily*.timer
# A persistent journal: the tests count boots with journalctl --list-boots.
mkdir -p "$rootfs/var/log/journal"
# The guest's clock comes from the emulated RTC, which is the host's: nothing to synchronise.
install -d -m 0700 "$rootfs/root/.ssh"
ssh-keygen -q -t ed25519 -N '' -C tether-vm-tests -f "$out/id_ed25519"
install -m 0600 "$out/id_ed25519.pub" "$rootfs/root/.ssh/authorized_keys"
printf 'UseDNS no\nPermitRootLogin prohibit-password\n' > "$rootfs/etc/ssh/sshd_config.d/tether-tests.conf"
# NetworkManager manages every interface (the Debian default leaves ifupdown's to ifupdown; there are none).
printf '[main]\nplugins=keyfile\n[ifupdown]\nmanaged=true\n' > "$rootfs/etc/NetworkManager/conf.d/tether-tests.conf"

# The agent's environment, from the host's wheels: the guest has no index to reach.
mkdir -p "$rootfs/tmp/wheels"
cp "$wheels"/*.whl "$rootfs/tmp/wheels/"
chroot "$rootfs" python3 -m venv /opt/tether
chroot "$rootfs" sh -c '/opt/tether/bin/pip install --quiet --no-index --find-links /tmp/wheels /tmp/wheels/*.whl'
rm -rf "$rootfs/tmp/wheels"

kernel="$(ls "$rootfs"/boot/vmlinuz-* | sort -V | tail -1)"
cp "$kernel" "$out/vmlinuz"
cp "$rootfs/boot/initrd.img-${kernel##*/vmlinuz-}" "$out/initrd.img"
chmod 0644 "$out/vmlinuz" "$out/initrd.img"

# The local apt repository: the packages the tests install, with every dependency the image lacks, as apt's own
# resolver finds them against the image's dpkg status.
repo="$out/repo"
mkdir -p "$repo/partial"
apt-get install -q -y --download-only -o Dir::State::status="$rootfs/var/lib/dpkg/status" \
    -o Dir::Cache::archives="$repo" hello > "$out/repo.log"
rm -rf "$repo/partial" "$repo/lock"
(cd "$repo" && dpkg-scanpackages --multiversion . > Packages 2> /dev/null)

mkfs.ext4 -q -L root -d "$rootfs" "$out/root.raw" 3G
qemu-img convert -O qcow2 "$out/root.raw" "$out/root.qcow2"
rm -rf "$rootfs" "$out/root.raw"
