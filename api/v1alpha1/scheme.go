package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
)

// NewScheme knows the built-in Kubernetes types and the APIKey types:
// what every CodeVector client (manager, gateway, CLI) decodes. It lives
// with the types, not with the manager, so that the gateway and the CLI
// do not link the controller (docs/design.md, section 2).
func NewScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}
