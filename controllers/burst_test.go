package controllers_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/internal/manager"
	"github.com/codevector/codevector/keys"
)

func TestBurstOf200KeysAllActiveWithDistinctIDs(t *testing.T) {
	env.StartManager(t, manager.Options{Argon2: keys.DefaultParams})
	ns := env.Namespace(t)
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := env.Client.Create(context.Background(), newKey(ns, fmt.Sprintf("burst-%03d", i))); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("creating keys: %v", err)
	}

	var list gatewayv1alpha1.APIKeyList
	waitFor := func() error {
		list = gatewayv1alpha1.APIKeyList{}
		if err := env.Client.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
			return err
		}
		active := 0
		for _, k := range list.Items {
			if k.Status.Phase == gatewayv1alpha1.PhaseActive {
				active++
			}
		}
		if active != n {
			return fmt.Errorf("%d of %d keys Active", active, n)
		}
		return nil
	}
	deadline := time.Now().Add(60 * time.Second)
	for err := waitFor(); err != nil; err = waitFor() {
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	seen := map[string]string{}
	for _, k := range list.Items {
		if other, dup := seen[k.Status.Prefix]; dup {
			t.Errorf("%s and %s share key ID %s", k.Name, other, k.Status.Prefix)
		}
		seen[k.Status.Prefix] = k.Name
		if _, ok := hashSecretOf(t, &k); !ok {
			t.Errorf("%s is Active without a hash Secret", k.Name)
		}
	}
}
