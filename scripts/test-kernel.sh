#!/bin/sh
# A Linux kernel for the instant-restore boot test (tests/vm/linuxkit.py): the kernel image
# and its virtio modules taken out of Debian's linux-image-cloud-amd64 package into
# build/test-kernel, never installed (no boot loader, no initramfs hooks).  Sourced by
# scripts/setup.sh for the tests; idempotent; without apt-get, or when the download fails,
# there is no kernel and that one test is skipped.
set -eu
dest=build/test-kernel
if ! ls "$dest"/boot/vmlinuz-* >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -n 1)
    tmp=$(mktemp -d)
    if [ -n "$pkg" ] && (cd "$tmp" && apt-get download -q "$pkg" >/dev/null 2>&1); then
        mkdir -p "$dest"
        dpkg-deb --fsys-tarfile "$tmp"/*.deb | tar -x -C "$dest" --wildcards \
            './boot/vmlinuz-*' './lib/modules/*/kernel/drivers/virtio/*' './lib/modules/*/kernel/drivers/block/virtio_blk*' \
            || echo "setup: the test kernel could not be unpacked (the boot test will be skipped)" >&2
    else
        echo "setup: no test kernel downloaded (the boot test will be skipped)" >&2
    fi
    rm -rf "$tmp"
fi
