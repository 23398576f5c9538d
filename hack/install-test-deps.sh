#!/usr/bin/env bash
# Installs the programs the tests drive that Go cannot build: kubectl (the
# e2e tests use the real one), Debian's chromium (the console's browser
# tests) and bash-completion (the CLI's completion scripts are loaded into
# a real bash). Does nothing when all are there.
set -euo pipefail

packages=()
command -v kubectl >/dev/null || packages+=(kubectl)
command -v chromium >/dev/null || packages+=(chromium)
[[ -f /usr/share/bash-completion/bash_completion ]] || packages+=(bash-completion)
((${#packages[@]})) || exit 0

if [[ $(id -u) -ne 0 ]] && ! command -v sudo >/dev/null; then
  echo "missing ${packages[*]}: install them (apt-get install ${packages[*]}) and run again" >&2
  exit 1
fi
sudo=""
[[ $(id -u) -ne 0 ]] && sudo=sudo
echo ">> installing ${packages[*]} (needed by the tests)" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
if ! $sudo apt-get install -y -qq --no-install-recommends "${packages[@]}"; then
  # Without the Kubernetes package repository, Debian's own kubectl package
  # is kubernetes-client.
  $sudo apt-get install -y -qq --no-install-recommends "${packages[@]/#kubectl/kubernetes-client}"
fi
