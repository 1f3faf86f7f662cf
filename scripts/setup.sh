#!/usr/bin/env bash
# Installs what Stratus needs on a Debian/Ubuntu machine, if it is missing:
# GDAL (library, headers, command-line tools), pkg-config and a C toolchain for the
# GDAL/SQLite bindings; with --test also what the tests and `make package` use besides
# (Chromium, to open the run report headless; python3-venv for the moto, SAM and checkov
# venvs; podman, runc, iptables and debootstrap to build and run the function image; curl
# to invoke it). Idempotent: does nothing when everything is present.
set -euo pipefail

pkgs=(libgdal-dev gdal-bin pkg-config build-essential)
if [ "${1:-}" = "--test" ]; then
    pkgs+=(chromium python3-venv podman runc iptables debootstrap curl)
fi
need=()
for pkg in "${pkgs[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done

if ((${#need[@]})); then
    echo "setup: installing ${need[*]}"
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || { echo "setup: need root or sudo to install ${need[*]}" >&2; exit 1; }
        sudo="sudo"
    fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}"
fi

command -v cargo >/dev/null || { echo "setup: cargo (Rust) is required: install it with rustup" >&2; exit 1; }
echo "setup: GDAL $(gdal-config --version), $(cargo --version)"
