#!/usr/bin/env bash
# Builds kube-apiserver and etcd for tests and dev mode from the Go module
# proxy (release binaries cannot be downloaded here; docs/design.md, section 10).
# The result is cached under bin/k8s/<version>-linux-amd64 together with the
# hash of the tools go.sum that produced it; a rebuild happens only when that
# go.sum changes.
set -euo pipefail
cd "$(dirname "$0")/.."

# The version: from the Makefile, else internal/k8sversion/version.txt, the
# one place it is written (the Go code embeds the same file).
K8S_VERSION=${K8S_VERSION:-$(cat internal/k8sversion/version.txt)}
tools=hack/envtest-tools
out=bin/k8s/${K8S_VERSION}-$(go env GOOS)-$(go env GOARCH)
stamp=$out/.tools-go.sum.sha256
want=$(sha256sum "$tools/go.sum" | cut -d' ' -f1)

if [[ -x $out/kube-apiserver && -x $out/etcd && -f $stamp && $(cat "$stamp") == "$want" ]]; then
  exit 0
fi

mkdir -p "$out"
abs_out=$(cd "$out" && pwd)
version_pkg=k8s.io/component-base/version
ldflags="-s -w -X ${version_pkg}.gitVersion=v${K8S_VERSION} -X ${version_pkg}.gitMajor=${K8S_VERSION%%.*} -X ${version_pkg}.gitMinor=$(cut -d. -f2 <<<"$K8S_VERSION")"

echo ">> building kube-apiserver v${K8S_VERSION} and etcd from the Go module proxy into $out (about 5 minutes on 2 cores, once)" >&2
start=$SECONDS
GOWORK=off GOFLAGS=-mod=mod CGO_ENABLED=0 go -C "$tools" build -trimpath -ldflags "$ldflags" \
  -o "$abs_out/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver &
apiserver_pid=$!
# Print a heartbeat so a person running `make dev` on a fresh machine sees
# that the long build is alive.
while kill -0 "$apiserver_pid" 2>/dev/null; do
  sleep 30
  kill -0 "$apiserver_pid" 2>/dev/null && echo ">> still building kube-apiserver ($((SECONDS - start))s)" >&2
done
wait "$apiserver_pid"
GOWORK=off GOFLAGS=-mod=mod CGO_ENABLED=0 go -C "$tools" build -trimpath -ldflags "-s -w" \
  -o "$abs_out/etcd" go.etcd.io/etcd/server/v3
echo "$want" >"$stamp"
echo ">> control-plane binaries ready in $out ($((SECONDS - start))s)" >&2
