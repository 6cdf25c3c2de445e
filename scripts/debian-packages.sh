#!/usr/bin/env bash
# Make sure the Debian packages named in the given list files are installed.
# As root (or with password-less sudo) it installs what is missing; otherwise
# it prints the exact apt command and fails, so nothing half-works later.
set -euo pipefail

wanted=()
for list in "$@"; do
    while read -r name _; do
        [[ -z "$name" || "$name" == \#* ]] && continue
        wanted+=("$name")
    done <"$list"
done
[[ ${#wanted[@]} -eq 0 ]] && exit 0

missing=()
for name in "${wanted[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$name" 2>/dev/null || true)
    [[ "$status" == "install ok installed" ]] || missing+=("$name")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

command="apt-get install -y --no-install-recommends ${missing[*]}"
if [[ $(id -u) -eq 0 ]]; then
    sudo=""
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    sudo="sudo"
else
    echo "Missing Debian packages: ${missing[*]}" >&2
    echo "Install them with: sudo apt-get update && sudo $command" >&2
    exit 1
fi
echo "Installing Debian packages: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo $command
