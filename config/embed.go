// Package config embeds the manifests that a bare API server needs before
// CodeVector can run on it: the CRD, the RBAC roles and the admission
// policies. `codevector dev` installs them from here, so the binary works
// from any directory, and the test environment installs exactly the same
// bytes that `kubectl apply -k config/default` deploys.
//
// The directories are also kustomize bases; the kustomization.yaml files
// are not embedded (dev mode applies the plain objects).
package config

import (
	"embed"
	"io/fs"
	"path"
	"sort"
	"strings"
)

//go:embed crd/bases/*.yaml policies/*.yaml rbac/*.yaml rbac/manager/*.yaml
var manifests embed.FS

// Manifest is one embedded YAML file (one or more documents).
type Manifest struct {
	// Path is relative to config/, e.g. "policies/owner-default.yaml".
	Path string
	Data []byte
}

// CRDs are the CustomResourceDefinitions (config/crd/bases).
func CRDs() []Manifest { return mustRead("crd/bases") }

// Policies are the admission policies and their bindings (config/policies).
func Policies() []Manifest { return mustRead("policies") }

// RBAC is every ServiceAccount, role and binding of config/rbac, including
// the generated manager ClusterRole.
func RBAC() []Manifest { return append(mustRead("rbac"), mustRead("rbac/manager")...) }

// mustRead returns the YAML files directly in dir, sorted by name, without
// kustomization.yaml. The set is fixed at compile time, so an error here is
// a build defect.
func mustRead(dir string) []Manifest {
	entries, err := fs.ReadDir(manifests, dir)
	if err != nil {
		panic(err)
	}
	var out []Manifest
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".yaml") || name == "kustomization.yaml" {
			continue
		}
		data, err := manifests.ReadFile(path.Join(dir, name))
		if err != nil {
			panic(err)
		}
		out = append(out, Manifest{Path: path.Join(dir, name), Data: data})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}
