package config_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/gateway/providers"
	"github.com/codevector/codevector/internal/commands"
	"github.com/codevector/codevector/internal/devmode"
)

// built indexes the output of kubectl kustomize by kind and name.
type built map[string]*unstructured.Unstructured

func index(objs []*unstructured.Unstructured) built {
	b := built{}
	for _, o := range objs {
		b[o.GetKind()+"/"+o.GetName()] = o
	}
	return b
}

func (b built) get(t *testing.T, kind, name string, into any) {
	t.Helper()
	u, ok := b[kind+"/"+name]
	if !ok {
		t.Fatalf("config/default has no %s %s", kind, name)
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, into); err != nil {
		t.Fatalf("converting %s %s: %v", kind, name, err)
	}
}

func TestDefaultBuildsAPlatformReadyDeployment(t *testing.T) {
	_, objs := kustomize(t, "default")
	b := index(objs)

	for _, want := range []string{
		"Namespace/codevector-system",
		"CustomResourceDefinition/apikeys.gateway.codevector.io",
		"MutatingAdmissionPolicy/apikey-owner-default.gateway.codevector.io",
		"MutatingAdmissionPolicyBinding/apikey-owner-default.gateway.codevector.io",
		"ValidatingAdmissionPolicy/apikey-owner.gateway.codevector.io",
		"ValidatingAdmissionPolicyBinding/apikey-owner.gateway.codevector.io",
		"MutatingAdmissionPolicy/apikey-guardrail-defaults.gateway.codevector.io",
		"ValidatingAdmissionPolicy/apikey-guardrails.gateway.codevector.io",
		"ServiceAccount/codevector-manager", "ServiceAccount/codevector-gateway",
		"ClusterRole/codevector-manager", "ClusterRoleBinding/codevector-manager",
		"Role/codevector-manager-leader-election", "RoleBinding/codevector-manager-leader-election",
		"ClusterRole/codevector-gateway", "ClusterRoleBinding/codevector-gateway",
		"Role/codevector-gateway", "RoleBinding/codevector-gateway",
		"ClusterRole/codevector-apikey-editor", "ClusterRole/codevector-apikey-viewer", "ClusterRole/codevector-apikey-revealer",
		"Deployment/codevector-manager", "Service/codevector-manager-metrics",
		"Deployment/codevector-gateway", "Service/codevector-gateway", "Service/codevector-gateway-metrics", "PodDisruptionBudget/codevector-gateway",
		"ConfigMap/codevector-providers",
	} {
		if _, ok := b[want]; !ok {
			t.Errorf("config/default lacks %s", want)
		}
	}
	// The guardrail policies ship unbound: a cluster admin binds each
	// guarded namespace to its ConfigMap in the system namespace
	// (config/samples/guardrails.yaml). A binding here would apply to
	// every namespace.
	for _, o := range objs {
		if policy, _, _ := unstructured.NestedString(o.Object, "spec", "policyName"); strings.Contains(policy, "guardrail") {
			t.Errorf("config/default binds %s (%s %s): guardrails are bound per namespace by a cluster admin", policy, o.GetKind(), o.GetName())
		}
	}
	for _, o := range objs {
		if ns := o.GetNamespace(); ns != "" && ns != gatewayv1alpha1.DefaultSystemNamespace {
			t.Errorf("%s %s is in namespace %s, want everything in %s", o.GetKind(), o.GetName(), ns, gatewayv1alpha1.DefaultSystemNamespace)
		}
	}

	var mgr, gw appsv1.Deployment
	b.get(t, "Deployment", "codevector-manager", &mgr)
	b.get(t, "Deployment", "codevector-gateway", &gw)
	for _, d := range []*appsv1.Deployment{&mgr, &gw} {
		checkHardened(t, d, "ghcr.io/codevector/codevector:latest")
	}
	if args := mgr.Spec.Template.Spec.Containers[0].Args; args[0] != "manager" || !slices.Contains(args, "--leader-elect") {
		t.Errorf("manager args = %v, want the manager subcommand with --leader-elect", args)
	}
	if mgr.Spec.Template.Spec.ServiceAccountName != "codevector-manager" || gw.Spec.Template.Spec.ServiceAccountName != "codevector-gateway" {
		t.Errorf("service accounts = %q, %q; want one per component", mgr.Spec.Template.Spec.ServiceAccountName, gw.Spec.Template.Spec.ServiceAccountName)
	}
	if r := gw.Spec.Replicas; r == nil || *r < 2 {
		t.Errorf("gateway replicas = %v, want at least 2", r)
	}

	// The PDB and the Services select the pods they are meant for.
	var pdb policyv1.PodDisruptionBudget
	b.get(t, "PodDisruptionBudget", "codevector-gateway", &pdb)
	if sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector); err != nil || !sel.Matches(labels.Set(gw.Spec.Template.Labels)) {
		t.Errorf("the PodDisruptionBudget does not select the gateway pods (%v)", err)
	}
	if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() < 1 {
		t.Errorf("PDB minAvailable = %v, want at least 1", pdb.Spec.MinAvailable)
	}
	for svc, d := range map[string]*appsv1.Deployment{"codevector-gateway": &gw, "codevector-gateway-metrics": &gw, "codevector-manager-metrics": &mgr} {
		var s corev1.Service
		b.get(t, "Service", svc, &s)
		if !labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
			t.Errorf("Service %s does not select the pods of %s", svc, d.Name)
		}
		for _, p := range s.Spec.Ports {
			if !hasPort(d, p.TargetPort.String()) {
				t.Errorf("Service %s targets port %s, which %s does not declare", svc, p.TargetPort.String(), d.Name)
			}
		}
	}

	// The gateway's providers file parses, and names only credentials that
	// come from the credentials Secret.
	gwc := gw.Spec.Template.Spec.Containers[0]
	if len(gwc.EnvFrom) != 1 || gwc.EnvFrom[0].SecretRef == nil || gwc.EnvFrom[0].SecretRef.Name != "codevector-provider-credentials" {
		t.Errorf("gateway envFrom = %+v, want the Secret codevector-provider-credentials", gwc.EnvFrom)
	}
	for _, arg := range []string{"--providers=/etc/codevector/providers/providers.yaml", "--console-auth=header", "--console-csrf-key-file=/etc/codevector/console/csrf-key"} {
		if !slices.Contains(gwc.Args, arg) {
			t.Errorf("gateway args = %v, want %s", gwc.Args, arg)
		}
	}
	// Console sign-in ships switched off: no header trust, no OIDC until
	// the operator configures one (issue 11).
	for _, arg := range gwc.Args {
		if strings.HasPrefix(arg, "--console-proxy-cidrs") || strings.HasPrefix(arg, "--console-groups-header") || strings.HasPrefix(arg, "--oidc-") || arg == "--console-auth=oidc" {
			t.Errorf("gateway args include %s: the default deployment must trust no proxy and name no identity provider", arg)
		}
	}
	mounts := map[string]string{}
	for _, m := range gwc.VolumeMounts {
		mounts[m.Name] = m.MountPath
	}
	if mounts["providers"] != "/etc/codevector/providers" || mounts["console"] != "/etc/codevector/console" {
		t.Errorf("gateway mounts = %v, want the providers ConfigMap and the console Secret where the args point", mounts)
	}
	var cm corev1.ConfigMap
	b.get(t, "ConfigMap", "codevector-providers", &cm)
	if _, err := providers.ParseProviders([]byte(cm.Data["providers.yaml"]), func(string) string { return "sk-from-the-secret" }); err != nil {
		t.Errorf("the providers ConfigMap does not parse: %v", err)
	}

	// The validating policy names exactly the service accounts the
	// gateway and the manager run as.
	vap := b["ValidatingAdmissionPolicy/apikey-owner.gateway.codevector.io"]
	vars, _, _ := unstructured.NestedSlice(vap.Object, "spec", "variables")
	for variable, d := range map[string]*appsv1.Deployment{"gatewayUser": &gw, "managerUser": &mgr} {
		user, _ := devmode.ServiceAccountUser(d.Namespace, d.Spec.Template.Spec.ServiceAccountName)
		found := false
		for _, v := range vars {
			if m, ok := v.(map[string]any); ok && m["name"] == variable {
				found = m["expression"] == "'"+user+"'"
			}
		}
		if !found {
			t.Errorf("the ownership policy's %s is not %q", variable, user)
		}
	}
}

// checkHardened asserts what a platform team's admission checks would.
func checkHardened(t *testing.T, d *appsv1.Deployment, image string) {
	t.Helper()
	pod := d.Spec.Template.Spec
	if sc := pod.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot ||
		sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: pod securityContext %+v, want runAsNonRoot and seccomp RuntimeDefault", d.Name, sc)
	}
	for _, c := range pod.Containers {
		sc := c.SecurityContext
		switch {
		case sc == nil:
			t.Errorf("%s/%s: no securityContext", d.Name, c.Name)
			continue
		case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
			t.Errorf("%s/%s: root filesystem is writable", d.Name, c.Name)
		case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
			t.Errorf("%s/%s: privilege escalation allowed", d.Name, c.Name)
		case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0:
			t.Errorf("%s/%s: capabilities %+v, want drop ALL", d.Name, c.Name, sc.Capabilities)
		}
		if c.LivenessProbe == nil || c.ReadinessProbe == nil {
			t.Errorf("%s/%s: want liveness and readiness probes", d.Name, c.Name)
		}
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
			t.Errorf("%s/%s: resources %+v, want CPU and memory requests and a memory limit", d.Name, c.Name, c.Resources)
		}
		if c.Image != image {
			t.Errorf("%s/%s: image %q, want %q", d.Name, c.Name, c.Image, image)
		}
	}
}

func hasPort(d *appsv1.Deployment, port string) bool {
	for _, c := range d.Spec.Template.Spec.Containers {
		for _, p := range c.Ports {
			if p.Name == port || fmt.Sprint(p.ContainerPort) == port {
				return true
			}
		}
	}
	return false
}

// TestDeploymentArgsAreFlagsTheBinaryKnows parses each container's args
// with the real command line (followed by -h, so nothing starts): a flag
// renamed in the code but not in config/ fails here, not in a cluster.
func TestDeploymentArgsAreFlagsTheBinaryKnows(t *testing.T) {
	_, objs := kustomize(t, "default")
	b := index(objs)
	for _, name := range []string{"codevector-manager", "codevector-gateway"} {
		var d appsv1.Deployment
		b.get(t, "Deployment", name, &d)
		args := d.Spec.Template.Spec.Containers[0].Args
		if code := commands.Main(append(append([]string{"codevector"}, args...), "-h")); code != 0 {
			t.Errorf("%s: codevector %s exits %d: an arg is not a flag of the binary", name, strings.Join(args, " "), code)
		}
	}
	// The console sign-in choices that gateway.yaml offers commented out
	// are flags too, so uncommenting them works.
	raw, err := os.ReadFile("gateway/gateway.yaml")
	if err != nil {
		t.Fatal(err)
	}
	commented := regexp.MustCompile(`(?m)^\s*#\s*- (--[a-z-]+=\S+)$`).FindAllStringSubmatch(string(raw), -1)
	if len(commented) < 8 {
		t.Fatalf("gateway.yaml offers %d commented flags, want the OIDC and header-mode choices", len(commented))
	}
	args := []string{"codevector", "gateway"}
	for _, m := range commented {
		args = append(args, m[1])
	}
	if code := commands.Main(append(args, "-h")); code != 0 {
		t.Errorf("codevector %s exits %d: a commented arg in gateway.yaml is not a flag of the binary", strings.Join(args[1:], " "), code)
	}
}

// TestDefaultAppliesToARealAPIServer runs the README's deployment command
// as a server-side dry run: the API server validates every object (schema,
// CEL, RBAC escalation checks, admission) without persisting it.
func TestDefaultAppliesToARealAPIServer(t *testing.T) {
	kubeconfig := adminKubeconfig(t)
	for _, args := range [][]string{
		{"apply", "-k", "default", "--dry-run=server"},
		{"apply", "--server-side", "--force-conflicts", "-k", "default", "--dry-run=server"},
	} {
		cmd := exec.Command(kubectl, append(args, "--kubeconfig", kubeconfig)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		for _, want := range []string{"deployment.apps/codevector-gateway", "deployment.apps/codevector-manager", "poddisruptionbudget.policy/codevector-gateway"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("kubectl %s output lacks %s:\n%s", strings.Join(args, " "), want, out)
			}
		}
	}
}

// TestPodsMeetTheRestrictedPodSecurityStandard creates the pods of both
// Deployments (dry run) in a namespace that enforces "restricted", as
// config/default labels codevector-system.
func TestPodsMeetTheRestrictedPodSecurityStandard(t *testing.T) {
	_, objs := kustomize(t, "default")
	ns := podsMeetRestricted(t, "psa-restricted", index(objs), nil)
	// The check has teeth: a root container is refused.
	root := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "root"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
	if err := env.Client.Create(context.Background(), root, client.DryRunAll); err == nil {
		t.Error("a pod without any hardening was admitted: Pod Security admission is not enforcing, so this test proves nothing")
	}
}

// podsMeetRestricted creates (dry run) the pods of the manager's and the
// gateway's Deployments in b in a new namespace named ns that enforces the
// restricted Pod Security Standard, after check (if any) has looked at
// each Deployment. It returns the namespace.
func podsMeetRestricted(t *testing.T, ns string, b built, check func(*appsv1.Deployment)) string {
	t.Helper()
	ctx := context.Background()
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name:   ns,
		Labels: map[string]string{"pod-security.kubernetes.io/enforce": "restricted"},
	}}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"codevector-manager", "codevector-gateway"} {
		var d appsv1.Deployment
		b.get(t, "Deployment", name, &d)
		if check != nil {
			check(&d)
		}
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: d.Spec.Template.Spec}
		if err := env.Client.Create(ctx, pod, client.DryRunAll); err != nil {
			t.Errorf("a %s pod is refused under the restricted Pod Security Standard: %v", name, err)
		}
	}
	return ns
}

// TestSamplesApply applies config/samples (dry run) as a user would.
func TestSamplesApply(t *testing.T) {
	ctx := context.Background()
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}}); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(kubectl, "apply", "-k", "samples", "--dry-run=server", "--kubeconfig", adminKubeconfig(t)).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl apply -k config/samples: %v\n%s", err, out)
	}
	for _, want := range []string{"apikey.gateway.codevector.io/laptop", "apikey.gateway.codevector.io/ci", "apikey.gateway.codevector.io/hackathon"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %s:\n%s", want, out)
		}
	}

	// The guardrails for team-a, as the README has a cluster admin apply
	// them.
	out, err = exec.Command(kubectl, "apply", "-f", "samples/guardrails.yaml", "--dry-run=server", "--kubeconfig", adminKubeconfig(t)).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl apply -f config/samples/guardrails.yaml: %v\n%s", err, out)
	}
	for _, want := range []string{
		"configmap/guardrails-team-a",
		"mutatingadmissionpolicybinding.admissionregistration.k8s.io/apikey-guardrail-defaults.team-a",
		"validatingadmissionpolicybinding.admissionregistration.k8s.io/apikey-guardrails.team-a",
		"validatingadmissionpolicybinding.admissionregistration.k8s.io/apikey-guardrails-updates.team-a",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %s:\n%s", want, out)
		}
	}
}
