// Package k8sversion names the Kubernetes version of the control-plane
// binaries (kube-apiserver, and the etcd that goes with it) that `make
// envtest` builds into bin/k8s/<version>-<os>-<arch> for tests and dev
// mode. version.txt is its one home: the Makefile and
// hack/envtest-build.sh read it too, and a test checks that the tools'
// go.mod and the docs agree.
package k8sversion

import (
	_ "embed"
	"strings"
)

//go:embed version.txt
var version string

// Version is the version without a leading v, e.g. "1.37.2".
var Version = strings.TrimSpace(version)
