package server_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/controllers"
	"github.com/codevector/codevector/gateway/server"
	"github.com/codevector/codevector/internal/manager"
	"github.com/codevector/codevector/internal/testenv"
	"github.com/codevector/codevector/keys"
)

const argon2Runs = "codevector_gateway_argon2_verifications_total"

// learnedEverywhere waits until every replica holds a proof for each key.
func learnedEverywhere(t *testing.T, replicas []*gateway, ks ...keys.Key) {
	t.Helper()
	testenv.Eventually(t, 5*time.Second, func() error {
		for i, gw := range replicas {
			for _, k := range ks {
				if !gw.PeerProofs().Has(k.ID()) {
					return fmt.Errorf("replica %d holds no proof for %s", i, k.DisplayPrefix())
				}
			}
		}
		return nil
	})
}

// After a rollout a new replica serves the keys in use without running
// argon2id for them: it learned its peers' proofs before it became ready.
// A replica that verifies a key passes the proof on, so its running peers
// skip argon2 too. With sharing off, every replica verifies every key.
func TestNewReplicaStartsWithItsPeersProofs(t *testing.T) {
	env.StartManager(t, manager.Options{})
	up := newUpstream(t, 0)
	o := server.Options{Providers: providersFor(t, up, up)}
	replicas := peeredReplicas(t, 2, o)
	ns := env.Namespace(t)
	var inUse []keys.Key
	for i := range 3 {
		_, k := env.IssueKey(t, ns, fmt.Sprintf("rollout-%d", i))
		inUse = append(inUse, k)
	}
	for _, k := range inUse {
		answers(t, replicas[:1], k, http.StatusOK)
	}
	if runs := counter(t, replicas[0], argon2Runs); runs != 3 {
		t.Fatalf("the first replica ran argon2 %v times for 3 keys", runs)
	}
	learnedEverywhere(t, replicas, inUse...)
	for _, k := range inUse {
		answers(t, replicas[1:], k, http.StatusOK)
	}
	if runs := counter(t, replicas[1], argon2Runs); runs != 0 {
		t.Errorf("the second replica ran argon2 %v times for keys its peer had verified", runs)
	}

	// The rollout: a new replica joins; it is ready holding the proofs.
	fresh := joinReplica(t, t.Context(), testenv.Listener(t), []string{replicas[0].PeerAddr, replicas[1].PeerAddr}, o)
	for _, k := range inUse {
		if !fresh.PeerProofs().Has(k.ID()) {
			t.Errorf("the new replica became ready without a proof for %s", k.DisplayPrefix())
		}
		if status, _, body := chat(t, fresh.URL, k.Reveal()); status != http.StatusOK {
			t.Errorf("the new replica answered %s with %d: %s", k.DisplayPrefix(), status, body)
		}
	}
	if runs, hits := counter(t, fresh, argon2Runs), counter(t, fresh, "codevector_gateway_peer_proof_hits_total"); runs != 0 || hits != 3 {
		t.Errorf("the new replica ran argon2 %v times and used %v proofs for 3 keys; want 0 and 3", runs, hits)
	}

	// Sharing off: the same rollout costs argon2 for every key.
	off := o
	off.Peers.DisableProofSharing = true
	alone := joinReplica(t, t.Context(), testenv.Listener(t), []string{replicas[0].PeerAddr}, off)
	answers(t, []*gateway{alone}, inUse[0], http.StatusOK)
	if runs := counter(t, alone, argon2Runs); runs != 1 || alone.PeerProofs().Len() != 0 {
		t.Errorf("with --no-peer-proofs: %v argon2 runs, %d proofs held; want 1 and 0", runs, alone.PeerProofs().Len())
	}
}

// A proof a replica learned is dropped there when the key is revoked,
// rotated or rehashed, as its watch event arrives: the key is refused or
// verified afresh with argon2id, never let through on the stale proof.
func TestLearnedProofDroppedWhenTheKeyChanges(t *testing.T) {
	stopManager := env.StartManager(t, manager.Options{})
	up := newUpstream(t, 0)
	replicas := peeredReplicas(t, 2, server.Options{Providers: providersFor(t, up, up)})
	maker, learner := replicas[0], replicas[1]
	ns := env.Namespace(t)
	revoked, revokedKey := env.IssueKey(t, ns, "revoked")
	rotated, rotatedKey := env.IssueKey(t, ns, "rotated")
	rehashed, rehashedKey := env.IssueKey(t, ns, "rehashed")
	for _, k := range []keys.Key{revokedKey, rotatedKey, rehashedKey} {
		answers(t, []*gateway{maker}, k, http.StatusOK)
	}
	learnedEverywhere(t, []*gateway{learner}, revokedKey, rotatedKey, rehashedKey)
	dropped := func(k keys.Key) {
		t.Helper()
		testenv.Eventually(t, 5*time.Second, func() error {
			if learner.PeerProofs().Has(k.ID()) {
				return fmt.Errorf("the learner still holds the proof for %s", k.DisplayPrefix())
			}
			return nil
		})
	}

	patch(t, revoked, func(k *gatewayv1alpha1.APIKey) { k.Spec.Revoked = true })
	dropped(revokedKey)
	answers(t, []*gateway{learner}, revokedKey, http.StatusUnauthorized)

	_, newKey := rotateKey(t, rotated, time.Hour)
	dropped(rotatedKey)
	answers(t, []*gateway{learner}, rotatedKey, http.StatusOK) // in its grace period, verified afresh
	answers(t, []*gateway{learner}, newKey, http.StatusOK)

	// The hash Secret replaced by one with a new hash of the same key (new
	// salt, as a change of argon2 parameters would do). Hash Secrets are
	// immutable, so a new hash is a new Secret; the manager is stopped so
	// that only this test writes it.
	stopManager()
	runsBefore := counter(t, learner, argon2Runs)
	ctx := context.Background()
	name := client.ObjectKey{Namespace: gatewayv1alpha1.DefaultSystemNamespace, Name: gatewayv1alpha1.HashSecretName(string(rehashed.UID))}
	if err := env.Client.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: name.Namespace, Name: name.Name}}); err != nil {
		t.Fatal(err)
	}
	s, err := keys.Hash(rehashedKey, keys.Params{Memory: keys.MinMemoryKiB, Time: 1, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	phc, _ := keys.ParsePHC(s)
	testenv.Eventually(t, 5*time.Second, func() error {
		return env.Client.Create(ctx, controllers.NewHashSecret(name.Namespace, rehashed, rehashedKey, phc))
	})
	dropped(rehashedKey)
	answers(t, []*gateway{learner}, rehashedKey, http.StatusOK)
	if runs := counter(t, learner, argon2Runs) - runsBefore; runs != 1 {
		t.Errorf("after the rehash the learner ran argon2 %v times for the key, want 1", runs)
	}
}

// deadPeer is an address where no peer listens (connections refused).
func deadPeer(t *testing.T) string {
	t.Helper()
	ln := testenv.Listener(t)
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// A replica whose peers are all unreachable still becomes ready (after
// the fetch timeout at most) and verifies keys itself.
func TestReplicaWithUnreachablePeersVerifiesKeysItself(t *testing.T) {
	env.StartManager(t, manager.Options{})
	up := newUpstream(t, 0)
	gw := joinReplica(t, t.Context(), testenv.Listener(t), []string{deadPeer(t)}, server.Options{Providers: providersFor(t, up, up)})
	_, k := env.IssueKey(t, env.Namespace(t), "alone")
	answers(t, []*gateway{gw}, k, http.StatusOK)
	if runs := counter(t, gw, argon2Runs); runs != 1 {
		t.Errorf("argon2 ran %v times, want 1", runs)
	}
}
