package kubectlplugin

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
)

// completionTimeout bounds the API requests behind one <TAB>: a shell
// that waits longer than that for a name is worse than no completion.
const completionTimeout = 5 * time.Second

// Which keys a command's NAME completes to.
var (
	anyKey         = func(*gatewayv1alpha1.APIKey) bool { return true }
	notRevoked     = func(k *gatewayv1alpha1.APIKey) bool { return !k.Spec.Revoked && k.DeletionTimestamp == nil }
	awaitingReveal = func(k *gatewayv1alpha1.APIKey) bool {
		// A key whose reveal is over has no public key either (the manager
		// removes it then), but nothing left to reveal.
		return notRevoked(k) && k.Spec.RevealPublicKey == "" && (k.Status.Reveal == nil || k.Status.Reveal.State == gatewayv1alpha1.RevealPending)
	}
)

// completeKeyNames completes NAME with the APIKeys, among those keep
// accepts, of the namespace the flags typed so far select (-n, --context,
// --kubeconfig, ...), each described by its prefix and status.
func (cli *keysCLI) completeKeyNames(keep func(*gatewayv1alpha1.APIKey) bool) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx, cancel := completionContext(cmd)
		defer cancel()
		s, err := cli.connect()
		if err != nil {
			cobra.CompDebugln(err.Error(), true)
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		list := &gatewayv1alpha1.APIKeyList{}
		if err := s.c.List(ctx, list, client.InNamespace(s.namespace)); err != nil {
			cobra.CompDebugln(s.explain(err, "list", "").Error(), true)
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		now := cli.now()
		var out []cobra.Completion
		for i := range list.Items {
			k := &list.Items[i]
			if keep(k) && strings.HasPrefix(k.Name, toComplete) {
				out = append(out, cobra.CompletionWithDesc(k.Name, dash(k.Status.Prefix)+" "+string(keyStatus(k, now))))
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

// registerConnectionCompletions completes the values of kubectl's
// connection flags that name something: contexts, clusters and users from
// the kubeconfig, namespaces from the API server.
func (cli *keysCLI) registerConnectionCompletions(cmd *cobra.Command) {
	fromKubeconfig := func(names func() []string) cobra.CompletionFunc {
		return func(_ *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			var out []cobra.Completion
			for _, n := range names() {
				if strings.HasPrefix(n, toComplete) {
					out = append(out, n)
				}
			}
			slices.Sort(out)
			return out, cobra.ShellCompDirectiveNoFileComp
		}
	}
	raw := func(pick func(kinds rawNames) []string) func() []string {
		return func() []string {
			cfg, err := cli.config.ToRawKubeConfigLoader().RawConfig()
			if err != nil {
				return nil
			}
			var n rawNames
			for name := range cfg.Contexts {
				n.contexts = append(n.contexts, name)
			}
			for name := range cfg.Clusters {
				n.clusters = append(n.clusters, name)
			}
			for name := range cfg.AuthInfos {
				n.users = append(n.users, name)
			}
			return pick(n)
		}
	}
	_ = cmd.RegisterFlagCompletionFunc("context", fromKubeconfig(raw(func(n rawNames) []string { return n.contexts })))
	_ = cmd.RegisterFlagCompletionFunc("cluster", fromKubeconfig(raw(func(n rawNames) []string { return n.clusters })))
	_ = cmd.RegisterFlagCompletionFunc("user", fromKubeconfig(raw(func(n rawNames) []string { return n.users })))
	_ = cmd.RegisterFlagCompletionFunc("namespace", func(cmd *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		ctx, cancel := completionContext(cmd)
		defer cancel()
		s, err := cli.connect()
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		// Many users may not list namespaces: then nothing is offered.
		list := &corev1.NamespaceList{}
		if err := s.c.List(ctx, list); err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []cobra.Completion
		for _, ns := range list.Items {
			if strings.HasPrefix(ns.Name, toComplete) {
				out = append(out, ns.Name)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	})
}

// rawNames are the names a kubeconfig defines.
type rawNames struct{ contexts, clusters, users []string }

func completionContext(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	return context.WithTimeout(ctx, completionTimeout)
}
