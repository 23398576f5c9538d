package server_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/gateway/providers"
	"github.com/codevector/codevector/gateway/server"
	"github.com/codevector/codevector/internal/manager"
	"github.com/codevector/codevector/internal/testenv"
)

// A dollar budget per day is spent, refused with budget_exceeded until the
// day ends, and whole again the next day (UTC), on the gateway's clock;
// status.usage starts the new day from zero.
func TestDollarBudgetRenewsWithTheDay(t *testing.T) {
	env.StartManager(t, manager.Options{})
	up := newUpstream(t, 0)
	ps, err := providers.ParseProviders([]byte(fmt.Sprintf(`providers:
  openai:
    baseURL: %s
    credential: {env: OPENAI_API_KEY}
    pricing:
      "gpt-4o*": {input: 2.50, output: 10}
`, up.URL)), func(string) string { return "sk-upstream" })
	if err != nil {
		t.Fatal(err)
	}
	clk := testenv.FakeClock(t)
	gw := startGateway(t, server.Options{Providers: ps, Clock: clk, LastUsedInterval: 200 * time.Millisecond})
	k, key := env.IssueKey(t, env.Namespace(t), "daily", func(k *gatewayv1alpha1.APIKey) {
		k.Spec.Budget = &gatewayv1alpha1.Budget{USD: "0.001", Period: gatewayv1alpha1.BudgetDay}
	})
	waitForPolicy(t, []*gateway{gw}, k)

	spend := func() (ok int, body string) {
		for range 100 {
			status, _, b := postChat(t, gw.URL, key.Reveal(), "gpt-4o")
			if status != http.StatusOK {
				return ok, b
			}
			ok++
		}
		return ok, ""
	}
	usage := func() *gatewayv1alpha1.Usage {
		live := &gatewayv1alpha1.APIKey{}
		if err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: k.Namespace, Name: k.Name}, live); err != nil {
			t.Fatal(err)
		}
		return live.Status.Usage
	}

	ok, body := spend()
	if ok == 0 || errorCode(t, body) != "budget_exceeded" || !strings.Contains(body, "renews in") {
		t.Fatalf("after %d requests: %s, want budget_exceeded saying when it renews", ok, body)
	}
	today, tomorrow := gatewayv1alpha1.PeriodBounds(gatewayv1alpha1.BudgetDay, clk.Now(), time.Time{})
	var spentToday *gatewayv1alpha1.Usage
	testenv.Eventually(t, 10*time.Second, func() error {
		u := usage()
		if u == nil || u.Requests != int64(ok) || !u.PeriodStart.Time.Equal(today) {
			return fmt.Errorf("status.usage = %+v, want %d requests from %s", u, ok, today)
		}
		spentToday = u
		return nil
	})
	spent, _ := gatewayv1alpha1.ParseUSD(spentToday.USD)
	if limit, _ := gatewayv1alpha1.ParseUSD("0.001"); spent > limit || spent == 0 {
		t.Errorf("spent $%s of a $0.001 budget", spent)
	}

	// The next day, UTC.
	clk.SetTime(tomorrow.Add(time.Second))
	again, _ := spend()
	if again == 0 {
		t.Fatal("the budget did not renew the next day")
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		if u := usage(); u == nil || !u.PeriodStart.Time.Equal(tomorrow) || u.Requests != int64(again) {
			return fmt.Errorf("status.usage = %+v, want %d requests from %s", u, again, tomorrow)
		}
		return nil
	})
}
