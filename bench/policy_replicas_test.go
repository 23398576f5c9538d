package bench

import (
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/fasthash/fnv1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/gateway/keyindex"
	"github.com/codevector/codevector/gateway/providers"
	"github.com/codevector/codevector/gateway/server"
	"github.com/codevector/codevector/internal/testenv"
)

// Gateway replicas that share per-key counters, found the way production
// finds them (--peer-discovery kubernetes): each replica is a Pod in the
// system namespace, Ready, with its own loopback address (127.0.0.1,
// .2, .3) as pod IP and the same peer port on each, so that a replica
// stopped mid-run leaves the others' peer list as a terminating pod does.
// A static peer list (--peers) would keep the stopped replica listed, and
// every counter it owned would be served uncounted (the Meter fails open)
// until it came back.

// peeredReplica is one gateway of a peered set.
type peeredReplica struct {
	url      string
	metrics  string // base URL of its metrics listener (processReplicas only)
	peerAddr string // host:port its peers reach it at
	pod      *corev1.Pod
	gw       *server.Gateway // in this process (inProcessReplicas) only
	proc     *gatewayProcess // in a process of its own (processReplicas) only
	stop     func() error    // graceful shutdown; returns once stopped
}

// peeredSet is n gateways sharing counters.
type peeredSet struct {
	replicas []*peeredReplica
	peerPort string
	seq      int    // names the set's Pods
	selector string // the label selector of the set's Pods (--peer-selector)
	// listeners[i] is the peer listener of replicas[i], on 127.0.0.(i+1);
	// those past len(replicas) are for replicas added later (addReplica).
	listeners []net.Listener
	launcher  replicaLauncher
}

// replicaLauncher runs the gateway of a replica whose Pod exists.
type replicaLauncher interface {
	// launch runs r, serving its peers on peerListener and finding them
	// by selector, sets r.url and r.stop (and r.gw if it runs in this
	// process), and returns once r's /readyz answers 200, failing b if
	// that takes longer than ready.
	launch(b *testing.B, r *peeredReplica, peerListener net.Listener, selector string, ready time.Duration)
}

// inProcessReplicas run each replica as a server.Gateway in the
// benchmark's process: cheap to start, and the benchmark can read their
// key index, but they share one heap and one garbage collector with each
// other and with the load generator.
type inProcessReplicas struct {
	providers *providers.Providers
	// configure, if set, adjusts every replica's options before it starts.
	configure func(*server.Options)
}

func (l inProcessReplicas) launch(b *testing.B, r *peeredReplica, peerListener net.Listener, selector string, ready time.Duration) {
	o := server.Options{
		Providers: l.providers,
		Logger:    slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Peers: server.PeerOptions{
			Listener:  peerListener,
			Discovery: server.DiscoveryKubernetes,
			Selector:  selector,
		},
		PodIP: r.pod.Status.PodIP,
	}
	if l.configure != nil {
		l.configure(&o)
	}
	var stop func()
	r.url, r.gw, stop = testenv.RunGatewayOn(b, testenv.Listener(b), ready, env.Config, o)
	r.stop = func() error { stop(); return nil }
}

var peeredSetSeq int

// startPeeredReplicas runs n gateways (n <= 254) in this process with
// Kubernetes peer discovery against Pods this function creates, and
// returns once every one is ready (its quota engine started with the
// whole peer list). A manager must be running: it creates the peers'
// credential.
func startPeeredReplicas(b *testing.B, n int, p *providers.Providers) *peeredSet {
	b.Helper()
	return startPeeredReplicasWith(b, n, 0, inProcessReplicas{providers: p})
}

// startPeeredReplicasWith is startPeeredReplicas with room for spare more
// replicas (addReplica) on the next loopback addresses and the same peer
// port, as a rollout adds pods, each run by launcher.
func startPeeredReplicasWith(b *testing.B, n, spare int, launcher replicaLauncher) *peeredSet {
	b.Helper()
	peeredSetSeq++
	set := &peeredSet{seq: peeredSetSeq, selector: fmt.Sprintf("bench-peers=%s-%d", sanitize(b.Name()), peeredSetSeq), launcher: launcher}
	set.listeners, set.peerPort = peerListeners(b, n+spare)
	for range n {
		set.replicas = append(set.replicas, set.newPod(b, true))
	}
	var wg sync.WaitGroup
	for i, r := range set.replicas {
		wg.Go(func() { set.run(b, r, i, time.Minute) })
	}
	wg.Wait()
	return set
}

// addReplica starts one more replica as a Deployment's rollout does: its
// Pod, with the next loopback address as pod IP, is created not Ready (so
// the other replicas do not list it as a peer yet), the gateway starts,
// and once its /readyz answers 200 (within ready) the Pod is marked Ready,
// as the kubelet does after a readiness probe. It returns the replica's
// index.
func (s *peeredSet) addReplica(b *testing.B, ready time.Duration) int {
	b.Helper()
	i := len(s.replicas)
	if i >= len(s.listeners) {
		b.Fatalf("peered set has no listener left for replica %d", i+1)
	}
	r := s.newPod(b, false)
	s.replicas = append(s.replicas, r)
	s.run(b, r, i, ready)
	s.markReady(b, r.pod)
	return i
}

// newPod creates the Pod of the next replica, running with the next
// loopback address as pod IP, Ready or not.
func (s *peeredSet) newPod(b *testing.B, ready bool) *peeredReplica {
	b.Helper()
	i := len(s.replicas)
	ip := fmt.Sprintf("127.0.0.%d", i+1)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: gatewayv1alpha1.DefaultSystemNamespace, Name: fmt.Sprintf("bench-gateway-%d-%d", s.seq, i),
			Labels: map[string]string{"bench-peers": s.selector[len("bench-peers="):]}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "gateway", Image: "codevector:bench"}}},
	}
	if err := env.Client.Create(context.Background(), pod); err != nil {
		b.Fatalf("creating peer pod: %v", err)
	}
	b.Cleanup(func() { _ = env.Client.Delete(context.Background(), pod) })
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}}
	if ready {
		pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}}
	}
	if err := env.Client.Status().Update(context.Background(), pod); err != nil {
		b.Fatalf("setting the status of peer pod %s: %v", pod.Name, err)
	}
	return &peeredReplica{pod: pod, peerAddr: net.JoinHostPort(ip, s.peerPort)}
}

// markReady marks pod Ready, which adds it to the others' peer lists.
func (s *peeredSet) markReady(b *testing.B, pod *corev1.Pod) {
	b.Helper()
	pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}}
	if err := env.Client.Status().Update(context.Background(), pod); err != nil {
		b.Fatalf("marking peer pod %s Ready: %v", pod.Name, err)
	}
}

// run starts replica r, the set's i-th, and returns once it is ready,
// failing b if that takes longer than ready.
func (s *peeredSet) run(b *testing.B, r *peeredReplica, i int, ready time.Duration) {
	s.launcher.launch(b, r, s.listeners[i], s.selector, ready)
}

// peerListeners opens n listeners on 127.0.0.1, .2, ... with one port
// number, as pods of one Deployment listen on one port at different IPs.
func peerListeners(b *testing.B, n int) ([]net.Listener, string) {
	b.Helper()
	for range 20 {
		first, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		_, port, _ := net.SplitHostPort(first.Addr().String())
		lns := []net.Listener{first}
		for i := 1; i < n; i++ {
			ln, err := net.Listen("tcp", net.JoinHostPort(fmt.Sprintf("127.0.0.%d", i+1), port))
			if err != nil {
				break
			}
			lns = append(lns, ln)
		}
		if len(lns) == n {
			for _, ln := range lns {
				b.Cleanup(func() { _ = ln.Close() })
			}
			return lns, port
		}
		for _, ln := range lns {
			ln.Close()
		}
	}
	b.Fatalf("found no port free on 127.0.0.1 to 127.0.0.%d", n)
	return nil, ""
}

// killErr stops replica i as Kubernetes stops a pod: the pod is deleted
// (the other replicas' discovery drops it from their peer list), then
// the gateway shuts down gracefully (its quota engine closes its peer
// listener and drops its counters), as the kubelet's SIGTERM makes it.
// It returns when the gateway has stopped.
func (s *peeredSet) killErr(i int) error {
	return errors.Join(s.deletePod(i), s.replicas[i].stop())
}

// deletePod deletes replica i's Pod at once (grace period 0), which
// drops it from the other replicas' peer lists.
func (s *peeredSet) deletePod(i int) error {
	r := s.replicas[i]
	if err := env.Client.Delete(context.Background(), r.pod, client.GracePeriodSeconds(0)); err != nil {
		return fmt.Errorf("deleting peer pod %s: %w", r.pod.Name, err)
	}
	return nil
}

func (s *peeredSet) urls() []string {
	out := make([]string, len(s.replicas))
	for i, r := range s.replicas {
		out[i] = r.url
	}
	return out
}

func (s *peeredSet) peerAddrs() []string {
	out := make([]string, len(s.replicas))
	for i, r := range s.replicas {
		out[i] = r.peerAddr
	}
	return out
}

// counterOwner predicts which of peers owns a key's per-minute counter for
// the minute starting at windowStart. It mirrors, for the benchmark's
// report only, three things it cannot reach: gateway/policy's counter
// name (key ID / APIKey UID / "rpm"), gateway/quota's gubernator key
// (name "codevector", unique key "<counter>@<window start ms>") and
// gubernator v2.13.0's ReplicatedConsistentHash (512 points per peer at
// fnv1(i + md5hex(address)), the key at fnv1("codevector_" + unique key),
// the first point at or after it). BenchmarkPolicyReplicaKilled's results
// show whether the prediction held: only the counters it names restart.
func counterOwner(peers []string, e *keyindex.Entry, what string, windowStart time.Time) string {
	type point struct {
		hash uint64
		peer string
	}
	var ring []point
	for _, p := range peers {
		key := fmt.Sprintf("%x", md5.Sum([]byte(p)))
		for i := range 512 {
			ring = append(ring, point{fnv1.HashString64(strconv.Itoa(i) + key), p})
		}
	}
	sort.Slice(ring, func(i, j int) bool { return ring[i].hash < ring[j].hash })
	unique := e.KeyID + "/" + string(e.UID) + "/" + what + "@" + strconv.FormatInt(windowStart.UnixMilli(), 10)
	h := fnv1.HashString64("codevector_" + unique)
	i := sort.Search(len(ring), func(i int) bool { return ring[i].hash >= h })
	if i == len(ring) {
		i = 0
	}
	return ring[i].peer
}

// sanitize makes a benchmark name usable in a label value.
func sanitize(name string) string {
	out := []byte(name)
	for i, c := range out {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			out[i] = '-'
		}
	}
	if len(out) > 40 {
		out = out[:40]
	}
	return string(out)
}
