package console

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
)

// Sign-outs are shared by every gateway replica through the API server: a
// console session is a sealed cookie that any replica with the key file
// opens, so signing out in one browser tab must end it on every replica,
// and a copy of the cookie taken before (a stolen one, another tab) must
// stop working too. Each sign-out is one coordination.k8s.io Lease in the
// gateway's system namespace, labelled signOutLabel, whose acquireTime is
// the sign-out and whose duration is the session lifetime: after that no
// session it ends can still be open, and any replica deletes it. A Lease
// rather than a shared list in one object: creates never conflict, and
// each replica's informer sees each sign-out once, within milliseconds.
//
// Two kinds: a session (signed out in its browser; named by the session's
// random ID) and a user (signed out everywhere by an admin: every session
// of that user issued before acquireTime ends).
const (
	signOutLabel      = "gateway.codevector.io/console-sign-out"
	signOutUser       = "gateway.codevector.io/user"
	signOutKindSess   = "session"
	signOutKindUser   = "user"
	signOutNamePrefix = "console-sign-out-"
)

// signOuts is this replica's view of the sign-outs: what the informer has
// seen, and what this replica recorded itself (at once, before the API
// server answers).
type signOuts struct {
	client    kubernetes.Interface
	namespace string
	lifetime  time.Duration
	now       func() time.Time
	log       *slog.Logger

	mu       sync.RWMutex
	sessions map[string]time.Time // session ID -> when the entry can go
	users    map[string]time.Time // user -> sessions issued before it are ended
	synced   chan struct{}
}

func newSignOuts(client kubernetes.Interface, namespace string, lifetime time.Duration, now func() time.Time, log *slog.Logger) *signOuts {
	return &signOuts{client: client, namespace: namespace, lifetime: lifetime, now: now, log: log,
		sessions: map[string]time.Time{}, users: map[string]time.Time{}, synced: make(chan struct{})}
}

// ended reports whether s was signed out, here or on any replica.
func (so *signOuts) ended(s *session) bool {
	so.mu.RLock()
	defer so.mu.RUnlock()
	if _, ok := so.sessions[s.ID]; ok {
		return true
	}
	notBefore, ok := so.users[s.User]
	return ok && s.Issued < notBefore.UnixMilli()
}

// endSession records the sign-out of s for every replica.
func (so *signOuts) endSession(ctx context.Context, s *session) error {
	so.mu.Lock()
	so.sessions[s.ID] = so.now().Add(so.lifetime)
	so.mu.Unlock()
	return so.record(ctx, signOutNamePrefix+s.ID, signOutKindSess, "")
}

// endUser signs user out of every session issued until now.
func (so *signOuts) endUser(ctx context.Context, user string) error {
	now := so.now()
	so.mu.Lock()
	so.users[user] = now
	so.mu.Unlock()
	sum := sha256.Sum256([]byte(user))
	// A name per user and instant: signing out again later records a
	// later time, never an earlier one.
	name := fmt.Sprintf("%su-%s-%d", signOutNamePrefix, hex.EncodeToString(sum[:12]), now.UnixMilli())
	return so.record(ctx, name, signOutKindUser, user)
}

func (so *signOuts) record(ctx context.Context, name, kind, user string) error {
	if so.client == nil {
		return nil // a console without the API server (tests): this replica only
	}
	now := metav1.NewMicroTime(so.now())
	l := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: so.namespace, Labels: map[string]string{signOutLabel: kind}},
		Spec: coordinationv1.LeaseSpec{
			AcquireTime:          &now,
			LeaseDurationSeconds: ptr.To(int32(so.lifetime / time.Second)),
		},
	}
	if user != "" {
		l.Annotations = map[string]string{signOutUser: user}
	}
	_, err := so.client.CoordinationV1().Leases(so.namespace).Create(ctx, l, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("recording the sign-out for the other gateway replicas (Lease %s/%s): %w", so.namespace, name, err)
	}
	return nil
}

// run keeps the view current from the API server until ctx ends, and
// deletes sign-outs whose sessions have all expired.
func (so *signOuts) run(ctx context.Context) {
	factory := informers.NewSharedInformerFactoryWithOptions(so.client, 0, informers.WithNamespace(so.namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = signOutLabel }))
	inf := factory.Coordination().V1().Leases().Informer()
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { so.observe(obj) },
		UpdateFunc: func(_, obj any) { so.observe(obj) },
	})
	factory.Start(ctx.Done())
	if cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		close(so.synced)
	}
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			factory.Shutdown()
			return
		case <-tick.C:
			so.prune(ctx, inf.GetStore().List())
		}
	}
}

// observe records one sign-out Lease.
func (so *signOuts) observe(obj any) {
	l, ok := obj.(*coordinationv1.Lease)
	if !ok || l.Spec.AcquireTime == nil {
		return
	}
	at := l.Spec.AcquireTime.Time
	so.mu.Lock()
	defer so.mu.Unlock()
	switch l.Labels[signOutLabel] {
	case signOutKindSess:
		if id, ok := strings.CutPrefix(l.Name, signOutNamePrefix); ok {
			so.sessions[id] = at.Add(so.lifetime)
		}
	case signOutKindUser:
		if user := l.Annotations[signOutUser]; user != "" && at.After(so.users[user]) {
			so.users[user] = at
		}
	}
}

// prune forgets and deletes sign-outs older than the session lifetime: no
// session they end can be open any more.
func (so *signOuts) prune(ctx context.Context, leases []any) {
	now := so.now()
	so.mu.Lock()
	for id, until := range so.sessions {
		if now.After(until) {
			delete(so.sessions, id)
		}
	}
	for user, at := range so.users {
		if now.After(at.Add(so.lifetime)) {
			delete(so.users, user)
		}
	}
	so.mu.Unlock()
	for _, obj := range leases {
		l, ok := obj.(*coordinationv1.Lease)
		if !ok || l.Spec.AcquireTime == nil || !now.After(l.Spec.AcquireTime.Add(so.lifetime)) {
			continue
		}
		err := so.client.CoordinationV1().Leases(so.namespace).Delete(ctx, l.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &l.UID}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			so.log.Warn("Failed to delete an expired console sign-out", "lease", l.Name, "error", err)
		}
	}
}
