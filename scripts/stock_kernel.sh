#!/usr/bin/env bash
# Prepare the stock-kernel test lane: Debian's own distribution kernel booted under QEMU with
# virtme-ng, the machine's own file tree as the guest's root (tests/integration/test_stock_kernel.py).
#
# Idempotent; every step is skipped when its result is already there:
#   - Debian packages: qemu-system-x86 (no recommends), kmod (depmod on the host; modprobe in
#     the guest, which runs the host tree's programs) and the tools the guest tests call;
#   - a venv with PyPI virtme-ng ($VETHWRAP_VNG_VENV, default /opt/vethwrap-vng);
#   - the kernel package linux-image-amd64 depends on, fetched with apt-get download and unpacked
#     with dpkg -x into $VETHWRAP_KERNEL_CACHE (default /opt/vethwrap-kernel); its modules are
#     indexed there (depmod -b) and copied to /lib/modules/VERSION and indexed with depmod VERSION,
#     for a guest that loads modules from the shared tree's /lib/modules (virtme-ng 1.42 itself
#     mounts a tmpfs on the guest's /lib/modules and links VERSION to the unpacked tree).
# Nothing else on the host changes: no module is loaded here and no sysctl or firewall is touched.
#
# Progress goes to stderr; on success the last line on stdout is the vmlinuz path.
# Exit 0 when ready; 1 with one line on stderr naming what could not be had.
set -euo pipefail

VENV=${VETHWRAP_VNG_VENV:-/opt/vethwrap-vng}
CACHE=${VETHWRAP_KERNEL_CACHE:-/opt/vethwrap-kernel}
PYTHON=${VETHWRAP_VNG_PYTHON:-python3}
export DEBIAN_FRONTEND=noninteractive
export PATH="$PATH:/usr/sbin:/sbin"

say() { echo "stock_kernel: $*" >&2; }
die() { say "$*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root (apt-get, /lib/modules)"
command -v apt-get >/dev/null && command -v dpkg >/dev/null || die "needs apt-get and dpkg (Debian)"

updated=""
apt_update() {
    if [ -z "$updated" ]; then
        say "apt-get update"
        apt-get update -qq >&2 || die "apt-get update failed"
        updated=1
    fi
}

# Debian packages (command -> package), installed only when the command is missing. Debian's
# kernel has virtio and 9p as modules, so virtme-ng needs busybox for its initramfs.
missing=()
for pair in qemu-system-x86_64:qemu-system-x86 busybox:busybox-static depmod:kmod ip:iproute2 ping:iputils-ping \
            iptables:iptables iperf3:iperf3 sysctl:procps; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair##*:}")
done
if [ "${#missing[@]}" -gt 0 ]; then
    apt_update
    say "apt-get install ${missing[*]}"
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 \
        || die "apt-get install ${missing[*]} failed"
fi

# virtme-ng in a venv of its own.
if [ ! -x "$VENV/bin/vng" ] || ! "$VENV/bin/vng" --version >/dev/null 2>&1; then
    say "venv $VENV with virtme-ng"
    "$PYTHON" -m venv "$VENV" >&2 || die "cannot make the venv $VENV with $PYTHON"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check virtme-ng >&2 \
        || die "pip install virtme-ng failed"
fi

# The kernel package linux-image-amd64 points at now.
kernel_package() {
    apt-cache depends linux-image-amd64 2>/dev/null \
        | awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }'
}
pkg=$(kernel_package)
if [ -z "$pkg" ]; then
    apt_update
    pkg=$(kernel_package)
fi
[ -n "$pkg" ] || die "apt-cache depends linux-image-amd64 names no kernel package"
version=${pkg#linux-image-}
root="$CACHE/$pkg"
vmlinuz="$root/boot/vmlinuz-$version"

if [ ! -s "$vmlinuz" ] || [ ! -f "$root/.unpacked" ]; then
    say "apt-get download $pkg"
    mkdir -p "$CACHE/debs"
    chown _apt "$CACHE/debs" 2>/dev/null || true  # apt-get download's sandbox user
    rm -rf "$root"
    (cd "$CACHE/debs" && rm -f "${pkg}"_*.deb && apt-get download -q "$pkg" >&2) || {
        apt_update
        (cd "$CACHE/debs" && apt-get download -q "$pkg" >&2) || die "apt-get download $pkg failed"
    }
    deb=$(ls "$CACHE/debs/${pkg}"_*.deb | head -n 1)
    say "dpkg -x $(basename "$deb")"
    mkdir -p "$root"
    dpkg -x "$deb" "$root" || die "dpkg -x $deb failed"
    [ -s "$vmlinuz" ] || die "$deb holds no boot/vmlinuz-$version"
    # the index virtme-ng would otherwise build in this tree at the first boot
    depmod -b "$root" "$version" || die "depmod -b $root $version failed"
    touch "$root/.unpacked"
    rm -f "$deb"
fi

# The guest loads modules from the shared tree's /lib/modules/VERSION.
modules=/lib/modules/$version
stamp="$modules/.vethwrap-stock-lane"
if [ ! -f "$stamp" ] || [ ! -s "$modules/modules.dep" ] \
        || [ "$(cat "$stamp")" != "$(stat -c %Y "$root/.unpacked")" ]; then
    say "copy the modules to $modules and depmod $version"
    mkdir -p "$modules"
    cp -a "$root/lib/modules/$version/." "$modules/"
    depmod "$version" || die "depmod $version failed"
    stat -c %Y "$root/.unpacked" >"$stamp"
fi

say "ready: kernel $version, vng $("$VENV/bin/vng" --version 2>&1 | head -n 1)"
echo "$vmlinuz"
