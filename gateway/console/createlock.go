package console

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
)

// A user's console creates are serialised across every replica, so that
// --max-keys-per-user holds however many replicas the creates reach at
// once (issue 24: 12 concurrent creates made 12 keys). The lock is one
// coordination.k8s.io Lease per user in the system namespace, taken and
// given back with resourceVersion preconditions, so the API server decides
// who holds it:
//
//   - spec.holderIdentity names the holder (a random ID per create),
//     empty when free; spec.acquireTime and leaseDurationSeconds let a
//     waiter take over a lock whose holder died mid-create.
//   - the annotation lastKeyAnnotation names the key the last holder
//     created. The next holder counts the user's keys in its own key
//     index, which may not have that key yet (watch lag): it waits until
//     it does before counting, so the count includes every key created
//     under the lock.
//
// The Lease stays (one per console user, a few hundred bytes): deleting it
// on release would lose lastKeyAnnotation.
const (
	createLockPrefix  = "console-create-"
	createLockLabel   = "gateway.codevector.io/console-create-lock"
	lastKeyAnnotation = "gateway.codevector.io/last-created"
	// lockPoll is how often a waiter looks at a held lock again.
	lockPoll = 50 * time.Millisecond
)

// userLock is one held lock.
type userLock struct {
	c      *Console
	name   string
	holder string
}

// lockCreatesEverywhere takes user's create lock on every replica (see
// above) and waits until this replica's index holds the key the previous
// holder created. It gives up when ctx ends.
func (c *Console) lockCreatesEverywhere(ctx context.Context, user string) (*userLock, error) {
	sum := sha256.Sum256([]byte(user))
	l := &userLock{c: c, name: createLockPrefix + hex.EncodeToString(sum[:12]), holder: newSessionID()}
	leases := c.opts.Kubernetes.CoordinationV1().Leases(c.opts.SystemNamespace)
	// Held at most as long as a create may take, and then some.
	duration := c.opts.CreateTimeout + 10*time.Second
	var lastKey string
	err := wait.PollUntilContextCancel(ctx, lockPoll, true, func(ctx context.Context) (bool, error) {
		now := metav1.NewMicroTime(c.now())
		cur, err := leases.Get(ctx, l.name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			_, err = leases.Create(ctx, &coordinationv1.Lease{
				ObjectMeta: metav1.ObjectMeta{Name: l.name, Namespace: c.opts.SystemNamespace, Labels: map[string]string{createLockLabel: "true"}},
				Spec: coordinationv1.LeaseSpec{HolderIdentity: &l.holder, AcquireTime: &now,
					LeaseDurationSeconds: ptr.To(int32(duration / time.Second))},
			}, metav1.CreateOptions{})
			return err == nil, ignoreRace(err)
		}
		if err != nil {
			return false, err
		}
		if held := ptr.Deref(cur.Spec.HolderIdentity, ""); held != "" && cur.Spec.AcquireTime != nil &&
			c.now().Before(cur.Spec.AcquireTime.Add(time.Duration(ptr.Deref(cur.Spec.LeaseDurationSeconds, 0))*time.Second)) {
			return false, nil // held: wait
		}
		cur.Spec.HolderIdentity, cur.Spec.AcquireTime = &l.holder, &now
		cur.Spec.LeaseDurationSeconds = ptr.To(int32(duration / time.Second))
		// Update carries cur's resourceVersion: of two replicas taking a
		// free lock, the API server lets one through.
		if _, err := leases.Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
			return false, ignoreRace(err)
		}
		lastKey = cur.Annotations[lastKeyAnnotation]
		return true, nil
	})
	if err != nil {
		return nil, fmt.Errorf("taking the create lock of %s (Lease %s/%s): %w", user, c.opts.SystemNamespace, l.name, err)
	}
	if ns, name, ok := splitName(lastKey); ok && ns == c.opts.Namespace {
		// The previous holder's key, as this replica's index will see it.
		// Only a key of this console's namespace: replicas of one gateway
		// share it (a console elsewhere, with its own namespace, is another
		// deployment whose keys this replica may not watch at all). And
		// only so long: an index that lags more than a create may take is
		// not waited for (the count may then miss that one key).
		waitCtx, cancel := context.WithTimeout(ctx, c.opts.CreateTimeout)
		err := wait.PollUntilContextCancel(waitCtx, 10*time.Millisecond, true, func(context.Context) (bool, error) {
			return c.keys.APIKey(types.NamespacedName{Namespace: ns, Name: name}) != nil, nil
		})
		cancel()
		if err != nil && ctx.Err() != nil {
			l.release(context.WithoutCancel(ctx), "")
			return nil, fmt.Errorf("waiting for this replica to see %s, created by the previous holder of the create lock: %w", lastKey, ctx.Err())
		}
		if err != nil {
			c.log.Warn("Counting a user's keys without the one created last on another replica: this replica's index has not seen it", "key", lastKey, "waited", c.opts.CreateTimeout)
		}
	}
	return l, nil
}

// release gives the lock back, recording the key created under it ("" for
// none, keeping the previous one).
func (l *userLock) release(ctx context.Context, created string) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	leases := l.c.opts.Kubernetes.CoordinationV1().Leases(l.c.opts.SystemNamespace)
	err := wait.PollUntilContextCancel(ctx, lockPoll, true, func(ctx context.Context) (bool, error) {
		cur, err := leases.Get(ctx, l.name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if ptr.Deref(cur.Spec.HolderIdentity, "") != l.holder {
			return true, nil // taken over after it expired: nothing to give back
		}
		cur.Spec.HolderIdentity = ptr.To("")
		if created != "" {
			if cur.Annotations == nil {
				cur.Annotations = map[string]string{}
			}
			cur.Annotations[lastKeyAnnotation] = created
		}
		_, err = leases.Update(ctx, cur, metav1.UpdateOptions{})
		return err == nil, ignoreRace(err)
	})
	if err != nil {
		// The lock frees itself when its duration ends.
		l.c.log.Warn("Failed to give back a console create lock; it expires on its own", "lease", l.name, "error", err)
	}
}

// ignoreRace turns losing a race for the lock into "try again".
func ignoreRace(err error) error {
	if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

func splitName(s string) (namespace, name string, ok bool) {
	namespace, name, ok = strings.Cut(s, "/")
	return namespace, name, ok && namespace != "" && name != ""
}
