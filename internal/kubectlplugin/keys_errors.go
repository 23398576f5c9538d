package kubectlplugin

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/discovery"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
)

// Errors of the keys CLI that tests (and scripts) can tell apart. Each is
// wrapped with the details of the case.
var (
	errUnreachable  = errors.New("cannot reach the Kubernetes API server")
	errCRDMissing   = errors.New("the APIKey resource (apikeys." + gatewayv1alpha1.GroupVersion.Group + ") is not installed in the cluster")
	errForbidden    = errors.New("forbidden")
	errKeyNotFound  = errors.New("not found")
	errUnauthorized = errors.New("the API server did not accept your credentials")
	// errRevealedInConsole: the pending reveal is a rotation's that the
	// console asked for, sealed to that request.
	errRevealedInConsole = errors.New("its new key was asked for in the console, which shows it once, to whoever rotated it there (it is sealed to that request)")
)

// explain turns an error from the API server (or from failing to reach it)
// into a sentence a person can act on. verb is what was attempted
// ("create", "list", ...) and name the APIKey, if any.
func (s *session) explain(err error, verb, name string) error {
	if err == nil {
		return nil
	}
	where := fmt.Sprintf("%s (context %q)", s.server, s.context)
	if msg, ok := gatewayv1alpha1.ExplainMissingGuardrails(apiMessage(err), s.namespace); ok {
		return &explained{kind: errForbidden, msg: msg}
	}
	switch {
	case isUnreachable(err):
		return fmt.Errorf("%w at %s: %v\nIs the cluster running? For dev mode, run 'make dev' and export KUBECONFIG=.codevector/dev/kubeconfig", errUnreachable, where, rootCause(err))
	case isUnknownAuthority(err):
		return fmt.Errorf("%w at %s: its certificate is not the one your kubeconfig trusts (%v)\ncodevector dev writes a new kubeconfig at every start: use DIR/kubeconfig itself, not an old copy", errUnreachable, where, rootCause(err))
	case isCRDMissing(err):
		return fmt.Errorf("%w at %s: install CodeVector with 'kubectl apply -k config/default', or point --context/--kubeconfig at the cluster that runs it", errCRDMissing, where)
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("%w at %s: %v\nLog in again, or check the user of this context in your kubeconfig", errUnauthorized, where, apiMessage(err))
	case apierrors.IsForbidden(err):
		msg := apiMessage(err)
		hint := ""
		switch {
		case strings.Contains(msg, "cannot") && strings.Contains(msg, `resource "secrets"`):
			hint = fmt.Sprintf("\nReading the one-time copy of a key needs get and delete on Secrets in namespace %s (the codevector-apikey-revealer role, or edit). Without it, create keys in the console, which shows them to you.", s.namespace)
		case strings.Contains(msg, "cannot") && strings.Contains(msg, `resource "leases"`):
			hint = "\nConfirming a revocation reads the gateway replicas' Leases in the system namespace: ask an administrator for the Role codevector-gateway-replicas-viewer there (config/rbac binds it to every authenticated user), or pass --no-wait."
		case strings.Contains(msg, "cannot"):
			hint = fmt.Sprintf("\nAsk an administrator to bind you to the codevector-apikey-editor ClusterRole in namespace %s (see the README, security model).", s.namespace)
		}
		return &explained{kind: errForbidden, msg: msg + hint}
	case apierrors.IsNotFound(err):
		var status apierrors.APIStatus
		if errors.As(err, &status) && status.Status().Details != nil && status.Status().Details.Kind == "namespaces" {
			return fmt.Errorf("%w: namespace %q does not exist (pick one with -n)", errKeyNotFound, s.namespace)
		}
		if name == "" {
			return fmt.Errorf("%w: %s", errKeyNotFound, apiMessage(err))
		}
		return fmt.Errorf("APIKey %q %w in namespace %q (see '%s list')", name, errKeyNotFound, s.namespace, s.prog)
	case apierrors.IsAlreadyExists(err):
		return fmt.Errorf("an APIKey named %q already exists in namespace %q: choose another name (an existing key cannot be shown again)", name, s.namespace)
	case apierrors.IsInvalid(err):
		return fmt.Errorf("the API server refused the APIKey: %s", apiMessage(err))
	}
	if name != "" {
		return fmt.Errorf("%s APIKey %s/%s: %w", verb, s.namespace, name, err)
	}
	return fmt.Errorf("%s: %w", verb, err)
}

// explained is an error whose message already says what happened (the API
// server's own words), and which errors.Is still tells apart by kind.
type explained struct {
	kind error
	msg  string
}

func (e *explained) Error() string { return e.msg }
func (e *explained) Unwrap() error { return e.kind }

// isUnreachable: nothing answered at the server's address.
func isUnreachable(err error) bool {
	var opErr *net.OpError
	var dnsErr *net.DNSError
	if utilnet.IsConnectionRefused(err) || utilnet.IsConnectionReset(err) ||
		utilnet.IsTimeout(err) || utilnet.IsProbableEOF(err) ||
		errors.Is(err, context.DeadlineExceeded) ||
		errors.As(err, &opErr) || errors.As(err, &dnsErr) {
		return true
	}
	// Discovery keeps each API group's error in a map, out of the chain.
	var groupErr *discovery.ErrGroupDiscoveryFailed
	if errors.As(err, &groupErr) {
		for _, e := range groupErr.Groups {
			if isUnreachable(e) {
				return true
			}
		}
	}
	return false
}

func isUnknownAuthority(err error) bool {
	var ua x509.UnknownAuthorityError
	var uap *x509.UnknownAuthorityError
	var hn x509.HostnameError
	return errors.As(err, &ua) || errors.As(err, &uap) || errors.As(err, &hn) || strings.Contains(err.Error(), "x509: ")
}

// isCRDMissing: the API server answered, but does not serve apikeys.
func isCRDMissing(err error) bool {
	if meta.IsNoMatchError(err) || discovery.IsGroupDiscoveryFailedError(err) {
		return true
	}
	// Without discovery (a cached mapping), the request itself gets a bare
	// 404 whose details name no object.
	var status apierrors.APIStatus
	if apierrors.IsNotFound(err) && errors.As(err, &status) {
		d := status.Status().Details
		return d == nil || (d.Name == "" && d.Kind == "")
	}
	return false
}

// apiMessage is the API server's own message for err.
func apiMessage(err error) string {
	var status apierrors.APIStatus
	if errors.As(err, &status) && status.Status().Message != "" {
		return status.Status().Message
	}
	return err.Error()
}

// rootCause is the innermost error: "connect: connection refused" rather
// than the client's whole chain of wrapping.
func rootCause(err error) error {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err
		}
		err = next
	}
}
