package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/keys"
)

// secretPart is the 32 characters of a key that make it a key; a text
// that holds them leaks the key even without its prefix.
func secretPart(key string) string {
	if len(key) != keys.Length {
		return key
	}
	return key[keys.DisplayPrefixLength : keys.DisplayPrefixLength+keys.SecretLength]
}

// base62Run finds every run of base62 characters long enough to hold a
// secret: each of its 32-character windows is looked up, so a scan costs
// one pass over the text whatever the number of keys.
var base62Run = regexp.MustCompile(`[0-9A-Za-z]{32,}`)

// leaksIn returns the names of the keys whose secret part is in text.
func leaksIn(text []byte, secrets map[string]string) map[string]bool {
	found := map[string]bool{}
	for _, run := range base62Run.FindAll(text, -1) {
		for i := 0; i+keys.SecretLength <= len(run); i++ {
			if name, ok := secrets[string(run[i:i+keys.SecretLength])]; ok {
				found[name] = true
			}
		}
	}
	return found
}

// scanForLeaks looks for every key handed out in every process's output
// (the CLI's stderr, the manager's, the replicas'), in the APIKeys with
// their status and in the events of both APIs, and records each find.
func (r *run) scanForLeaks() {
	secrets := r.pool.secrets()
	now := time.Now()
	record := func(where string, text []byte) {
		for name := range leaksIn(text, secrets) {
			r.h.add(Record{Type: TypeLeak, Key: name, Start: now, End: now, Detail: where})
		}
	}
	for _, name := range []string{"manager.log", "cli.log", "gw-0.log", "gw-1.log", "gw-2.log"} {
		data, err := os.ReadFile(filepath.Join(r.c.dir, name))
		if err != nil {
			r.t.Errorf("leak scan: %v", err)
			continue
		}
		record(name, data)
	}
	ctx := context.Background()
	for _, list := range []client.ObjectList{&gatewayv1alpha1.APIKeyList{}, &corev1.EventList{}, &eventsv1.EventList{}} {
		if err := r.c.kube().List(ctx, list); err != nil {
			r.t.Errorf("leak scan: listing %T: %v", list, err)
			continue
		}
		data, err := json.Marshal(list)
		if err != nil {
			r.t.Fatal(err)
		}
		record(fmt.Sprintf("%T", list), data)
	}
}
