package replicas

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Source is what a Publisher publishes: the gateway's key index.
type Source interface {
	// AppliedVersions is keyindex.Index.AppliedVersions: per watch scope
	// (a namespace, "" for all), the resource version applied up to.
	AppliedVersions() map[string]uint64
	// Refusals signals a change worth publishing at once.
	Refusals() <-chan struct{}
}

// Publisher keeps one replica's Lease (see the package comment).
type Publisher struct {
	c         client.Client
	namespace string
	name      string // the replica's name, the Lease's holder
	owner     *metav1.OwnerReference
	source    Source
	log       *slog.Logger
	lease     *coordinationv1.Lease // as last written
}

// ReplicaName is a name for a new replica: POD_NAME (the downward API, as
// config/gateway sets it), else the host name, the process ID and a random
// suffix (tests and benchmarks run several replicas in one process).
func ReplicaName() string {
	if n := os.Getenv("POD_NAME"); n != "" {
		return n
	}
	host, _ := os.Hostname()
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), rand.Text()[:4])
}

// NewPublisher returns the Publisher of replica name's Lease in namespace.
// When POD_NAME and POD_UID are set, the Lease is owned by that Pod and
// goes with it.
func NewPublisher(c client.Client, namespace, name string, source Source, log *slog.Logger) *Publisher {
	p := &Publisher{c: c, namespace: namespace, name: name, source: source, log: log}
	if pod, uid := os.Getenv("POD_NAME"), os.Getenv("POD_UID"); pod != "" && pod == name && uid != "" {
		p.owner = &metav1.OwnerReference{APIVersion: "v1", Kind: "Pod", Name: pod, UID: types.UID(uid)}
	}
	return p
}

// LeaseName is the name of replica name's Lease: LeasePrefix and the name
// made a valid object name (a gateway pod's own name, which begins with
// LeasePrefix).
func LeaseName(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '.' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	// A pod of the codevector-gateway Deployment is named so already.
	n := LeasePrefix + strings.TrimPrefix(strings.Trim(b.String(), "-."), LeasePrefix)
	if len(n) > validation.DNS1123SubdomainMaxLength {
		n = n[:validation.DNS1123SubdomainMaxLength]
	}
	return strings.TrimRight(n, "-.")
}

// Start writes the Lease for the first time: call it before the replica
// reports ready, so that it takes no traffic before revocations wait for
// it.
func (p *Publisher) Start(ctx context.Context) error {
	return p.publish(ctx)
}

// Run renews the Lease every Heartbeat, and within PublishInterval of
// every change that refuses a key, until ctx ends; then it deletes the
// Lease, so that revocations stop waiting for this replica at once.
func (p *Publisher) Run(ctx context.Context) {
	defer p.release()
	heartbeat := time.NewTicker(Heartbeat)
	defer heartbeat.Stop()
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-heartbeat.C:
		case <-p.source.Refusals():
			// The first change of a burst is written at once; the rest
			// together, PublishInterval after the previous write.
			if wait := PublishInterval - time.Since(last); wait > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(wait):
				}
			}
		}
		last = time.Now()
		if err := p.publish(ctx); err != nil && ctx.Err() == nil {
			p.log.Error("Failed to renew this replica's Lease; revocations cannot be confirmed by it until it is renewed", "lease", p.namespace+"/"+LeaseName(p.name), "error", err)
		}
	}
}

// publish writes the Lease with the index's applied versions.
func (p *Publisher) publish(ctx context.Context) error {
	applied := p.source.AppliedVersions()
	scopes := make(map[string]string, len(applied))
	for scope, rv := range applied {
		if scope == "" {
			scope = AllNamespaces
		}
		scopes[scope] = strconv.FormatUint(rv, 10)
	}
	value, err := json.Marshal(scopes)
	if err != nil {
		return err
	}
	now := metav1.NewMicroTime(time.Now())
	for attempt := 0; ; attempt++ {
		l := p.lease
		if l == nil {
			l = &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: p.namespace, Name: LeaseName(p.name)}}
			if err := p.c.Get(ctx, client.ObjectKeyFromObject(l), l); err != nil && !apierrors.IsNotFound(err) {
				return err
			}
		}
		l = l.DeepCopy()
		if l.Labels == nil {
			l.Labels = map[string]string{}
		}
		l.Labels[LabelReplica] = "true"
		if l.Annotations == nil {
			l.Annotations = map[string]string{}
		}
		l.Annotations[AnnotationApplied] = string(value)
		if p.owner != nil {
			l.OwnerReferences = []metav1.OwnerReference{*p.owner}
		}
		l.Spec.HolderIdentity = ptr.To(p.name)
		l.Spec.LeaseDurationSeconds = ptr.To(int32(LeaseDuration / time.Second))
		l.Spec.RenewTime = &now
		if l.ResourceVersion == "" {
			l.Spec.AcquireTime = &now
			err = p.c.Create(ctx, l)
		} else {
			err = p.c.Update(ctx, l)
		}
		switch {
		case err == nil:
			p.lease = l
			return nil
		case attempt < 2 && (apierrors.IsConflict(err) || apierrors.IsNotFound(err) || apierrors.IsAlreadyExists(err)):
			// Deleted or changed by someone else, or left by an earlier
			// process of the same name: read it again.
			p.lease = nil
		default:
			return err
		}
	}
}

// release deletes the Lease this replica wrote (and no other: a UID
// precondition).
func (p *Publisher) release() {
	if p.lease == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := p.c.Delete(ctx, p.lease, client.Preconditions{UID: &p.lease.UID})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		p.log.Warn("Failed to delete this replica's Lease; it stops counting when it expires", "lease", p.namespace+"/"+p.lease.Name, "error", err)
	}
}
