#!/usr/bin/env bash
# Builds what the QEMU netboot test boots, once per input: Debian's kernel
# (apt-get download + dpkg-deb -x, never installed), a busybox initrd with
# the test's init, kiln's inventory collector, the modules it needs (e1000
# and virtio NICs, virtio disk, the IPMI system interface) and Debian's
# ipmitool with the shared libraries it loads, and a raw disk that boots on
# its own (syslinux on FAT, no loop device).
#
#   build-images.sh
#
# Prints the directory holding vmlinuz, initrd.img, disk.img and
# mark-sector (where on the disk the installer writes). The cache lives
# outside the checkout, so fresh clones share it:
#
#   ${KILN_QEMU_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kiln/qemu}/<key>
#
# where <key> hashes every input: the kernel package and its version, the
# busybox and syslinux versions, the filesystem size and modules, ipmitool
# and its libraries (their contents), this script, init, udhcpc.script and
# the inventory collector (scripts/discovery/kiln-inventory). A finished
# build is reused; a new one
# removes the builds and kernel packages it no longer uses.
set -euo pipefail

if [[ -n "${KILN_QEMU_CACHE:-}" ]]; then
  cache=$KILN_QEMU_CACHE
elif [[ -n "${XDG_CACHE_HOME:-}" ]]; then
  cache=$XDG_CACHE_HOME/kiln/qemu
elif [[ -n "${HOME:-}" ]]; then
  cache=$HOME/.cache/kiln/qemu
else
  echo "build-images: set KILN_QEMU_CACHE (neither XDG_CACHE_HOME nor HOME is set)" >&2
  exit 1
fi
cache=$(realpath -m "$cache")
here=$(cd "$(dirname "$0")" && pwd)
# The discovery image's inventory collector, as real sites' images carry it.
collector="$here/../../scripts/discovery/kiln-inventory"
mkdir -p "$cache/debs"
[[ -f "$cache/CACHEDIR.TAG" ]] || printf '%s\n' \
  'Signature: 8a477f597d28d172789f06886806bc55' \
  '# kiln QEMU netboot test images (tests/qemu/build-images.sh); safe to delete.' \
  > "$cache/CACHEDIR.TAG"
# Tests running at once build (or wait for) one set of images.
exec 9>"$cache/lock"
flock 9

# The filesystem's size; the installer's mark goes in the sector after it.
fs_kib=32768
mark_sector=$((fs_kib * 2))
modules=(e1000 virtio_pci virtio_blk virtio_net ipmi_msghandler ipmi_devintf ipmi_si)
# ipmitool (in-band `ipmitool lan print`: the machine reads its BMC's
# address) and every shared library it loads, the loader included.
ipmitool=/usr/bin/ipmitool
[[ -x "$ipmitool" ]] || { echo "build-images: no $ipmitool: install the Debian package ipmitool" >&2; exit 1; }
mapfile -t ipmitool_libs < <(ldd "$ipmitool" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')

# Which kernel linux-image-amd64 means today, refreshing apt's lists once
# when they are missing or stale.
kernel_package() {
  apt-cache depends linux-image-amd64 2>/dev/null \
    | awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ && !found { print $2; found = 1 }'
}
pkg=$(kernel_package || true)
if [[ -z "$pkg" ]]; then
  apt-get -o DPkg::Lock::Timeout=300 update -qq >&2
  pkg=$(kernel_package)
fi
[[ -n "$pkg" ]] || { echo "build-images: apt knows no linux-image-amd64" >&2; exit 1; }
version=$(apt-cache show --no-all-versions "$pkg" | awk '/^Version:/ && !found { print $2; found = 1 }')

key=$( {
  echo "$pkg $version $fs_kib ${modules[*]}"
  dpkg-query -W -f='${Version}\n' busybox-static syslinux syslinux-efi
  sha256sum "$ipmitool" "${ipmitool_libs[@]}"
  cat "$here/build-images.sh" "$here/init" "$here/udhcpc.script" "$collector"
} | sha256sum | cut -c1-16)
out="$cache/$key"
if [[ -f "$out/done" ]]; then
  echo "$out"
  exit 0
fi

# apt-get download names the file <package>_<version, ':' as %3a>_amd64.deb.
deb="$cache/debs/${pkg}_${version//:/%3a}_amd64.deb"
if [[ ! -f "$deb" ]]; then
  if ! (cd "$cache/debs" && apt-get download -qq -o APT::Sandbox::User=root "$pkg" >&2); then
    # Stale lists name a version the mirror no longer has.
    apt-get -o DPkg::Lock::Timeout=300 update -qq >&2
    (cd "$cache/debs" && apt-get download -qq -o APT::Sandbox::User=root "$pkg" >&2)
    version=$(apt-cache show --no-all-versions "$pkg" | awk '/^Version:/ && !found { print $2; found = 1 }')
    deb="$cache/debs/${pkg}_${version//:/%3a}_amd64.deb"
  fi
  [[ -f "$deb" ]] || { echo "build-images: apt-get download left no $deb" >&2; exit 1; }
fi

work=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
dpkg-deb -x "$deb" "$work/kernel"
modroot="$work/kernel/lib/modules"
[[ -d "$modroot" ]] || modroot="$work/kernel/usr/lib/modules"
kvers=("$modroot"/*)
kver=$(basename "${kvers[0]}")
vmlinuz="$work/kernel/boot/vmlinuz-$kver"
[[ -f "$vmlinuz" ]] || { echo "build-images: no vmlinuz in $deb" >&2; exit 1; }
moddir="$modroot/$kver"
busybox depmod -b "${modroot%/lib/modules}" "$kver"

# The initrd: static busybox, the init, and the modules with their
# dependencies and a modules.dep trimmed to them (busybox modprobe reads it).
root="$work/initrd"
mkdir -p "$root"/{bin,dev,proc,sys,etc,tmp,lib/modules/"$kver"}
cp /bin/busybox "$root/bin/busybox"
ln -s busybox "$root/bin/sh"
sed "s/@MARK_SECTOR@/$mark_sector/" "$here/init" > "$root/init"
cp "$here/udhcpc.script" "$root/etc/udhcpc.script"
cp "$ipmitool" "$root/bin/ipmitool"
for lib in "${ipmitool_libs[@]}"; do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
cp "$collector" "$root/bin/kiln-inventory"
chmod 755 "$root/init" "$root/etc/udhcpc.script" "$root/bin/kiln-inventory"
declare -A wanted=()
for m in "${modules[@]}"; do
  line=$(grep -E "/$m\.ko(\.[a-z]+)?:" "$moddir/modules.dep") \
    || { echo "build-images: no module $m in $kver" >&2; exit 1; }
  for f in ${line/:/}; do wanted[$f]=1; done
done
for f in "${!wanted[@]}"; do
  mkdir -p "$root/lib/modules/$kver/$(dirname "$f")"
  cp "$moddir/$f" "$root/lib/modules/$kver/$f"
  grep -E "^$f:" "$moddir/modules.dep" >> "$root/lib/modules/$kver/modules.dep"
done
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -9) > "$work/initrd.img"

# The disk: a FAT filesystem syslinux boots from (installed with mtools,
# no loop device), then one more MiB where the installer writes its mark.
cat > "$work/syslinux.cfg" <<CFG
DEFAULT local
PROMPT 0
TIMEOUT 0
LABEL local
  KERNEL /vmlinuz
  INITRD /initrd.img
  APPEND console=ttyS0 kiln.stage=local
CFG
mkfs.vfat -C -n KILNDISK "$work/disk.img" "$fs_kib" >/dev/null
mcopy -i "$work/disk.img" "$vmlinuz" ::vmlinuz
mcopy -i "$work/disk.img" "$work/initrd.img" ::initrd.img
mcopy -i "$work/disk.img" "$work/syslinux.cfg" ::syslinux.cfg
syslinux --install "$work/disk.img"
# UEFI firmware boots the same files through syslinux's EFI loader at the
# removable-media path; it reads syslinux.cfg beside itself.
mmd -i "$work/disk.img" ::EFI ::EFI/BOOT
mcopy -i "$work/disk.img" /usr/lib/SYSLINUX.EFI/efi64/syslinux.efi ::EFI/BOOT/BOOTX64.EFI
mcopy -i "$work/disk.img" /usr/lib/syslinux/modules/efi64/ldlinux.e64 ::EFI/BOOT/ldlinux.e64
mcopy -i "$work/disk.img" "$work/syslinux.cfg" ::EFI/BOOT/syslinux.cfg
truncate -s $(((fs_kib + 1024) * 1024)) "$work/disk.img"

mkdir -p "$work/out"
mv "$vmlinuz" "$work/out/vmlinuz"
mv "$work/initrd.img" "$work/disk.img" "$work/out/"
echo "$mark_sector" > "$work/out/mark-sector"
echo "$pkg $version" > "$work/out/kernel-version"
touch "$work/out/done"
rm -rf "$out"
mv "$work/out" "$out"
# Keep only what this build uses; images of older kernels or older scripts
# would otherwise pile up with every change. We hold the lock, so no other
# build is running: leftover build directories are from killed ones. Only
# names this script makes are removed, whatever else KILN_QEMU_CACHE holds.
for old in "$cache"/*; do
  name=$(basename "$old")
  if [[ -d "$old" && "$old" != "$out" && "$old" != "$work" ]] \
    && [[ "$name" =~ ^[0-9a-f]{16}$ || "$name" == build.* ]]; then
    rm -rf "$old"
  fi
done
for old in "$cache"/debs/*.deb; do
  [[ "$old" == "$deb" ]] || rm -f "$old"
done
echo "$out"
