package servicebus

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus/admin"

	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/internal/eventpattern"
)

// DefaultRuleName is the rule Service Bus gives a new subscription, and the
// one AutoCreate writes the route's filter to.
const DefaultRuleName = "$Default"

// adminClient returns the administration client AutoCreate uses, making one
// from the provider's credentials on first use.
func (p *Provider) adminClient() (*admin.Client, error) {
	p.adminOnce.Do(func() {
		switch {
		case p.opts.Admin != nil:
			p.admin = p.opts.Admin
		case p.opts.ConnectionString != "":
			p.admin, p.adminErr = admin.NewClientFromConnectionString(p.opts.ConnectionString, nil)
		case p.opts.Namespace != "" && p.opts.Credential != nil:
			p.admin, p.adminErr = admin.NewClient(p.opts.Namespace, p.opts.Credential, nil)
		default:
			p.adminErr = fmt.Errorf("%w: servicebus AutoCreate needs Options.Admin when the provider is given a Client", driver.ErrInvalidOption)
		}
		if p.adminErr != nil {
			p.adminErr = fmt.Errorf("servicebus: administration client: %w", p.adminErr)
		}
	})
	return p.admin, p.adminErr
}

// sqlRule translates a route's pattern (canonical JSON, "" for none) into
// the SQL filter of a rule; ok is false when nothing of it can be
// expressed.
func sqlRule(pattern string) (sql string, exact, ok bool) {
	if pattern == "" {
		return "", false, false
	}
	p, err := eventpattern.Compile([]byte(pattern))
	if err != nil {
		return "", false, false
	}
	sql, exact, err = eventpattern.ToServiceBusSQL(p)
	return sql, exact, err == nil
}

// isoSeconds writes d as an ISO 8601 duration in whole seconds (at least
// one).
func isoSeconds(d time.Duration) string {
	return fmt.Sprintf("PT%dS", max(int64(math.Ceil(d.Seconds())), 1))
}

// lockDuration is the lock AutoCreate gives entities: Options.LockDuration
// within Service Bus's 5s..5m.
func (p *Provider) lockDuration() string {
	return isoSeconds(min(max(p.opts.LockDuration, 5*time.Second), 5*time.Minute))
}

// conflict reports the management API's answer to creating an entity that
// exists (another consumer created it first).
func conflict(err error) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && re.StatusCode == http.StatusConflict
}

// ensureEntity creates the queue, or the topic and subscription, a route
// subscribes to when they are missing (Options.AutoCreate). A subscription
// it creates gets the route's pattern as its default rule's SQL filter.
func (p *Provider) ensureEntity(ctx context.Context, ent entity, spec driver.SubscriptionSpec) error {
	ac, err := p.adminClient()
	if err != nil {
		return err
	}
	lock := p.lockDuration()
	if ent.queue {
		q, err := ac.GetQueue(ctx, ent.topic, nil)
		if err != nil {
			return fmt.Errorf("servicebus: read queue %q: %w", ent.topic, err)
		}
		if q != nil {
			return nil
		}
		_, err = ac.CreateQueue(ctx, ent.topic, &admin.CreateQueueOptions{Properties: &admin.QueueProperties{
			LockDuration: &lock, RequiresSession: &spec.Ordered}})
		if err != nil && !conflict(err) {
			return fmt.Errorf("servicebus: create queue %q: %w", ent.topic, err)
		}
		return nil
	}
	s, err := ac.GetSubscription(ctx, ent.topic, ent.sub, nil)
	if err != nil {
		return fmt.Errorf("servicebus: read subscription %q: %w", ent.path(), err)
	}
	if s != nil {
		return nil
	}
	t, err := ac.GetTopic(ctx, ent.topic, nil)
	if err != nil {
		return fmt.Errorf("servicebus: read topic %q: %w", ent.topic, err)
	}
	if t == nil {
		if _, err := ac.CreateTopic(ctx, ent.topic, nil); err != nil && !conflict(err) {
			return fmt.Errorf("servicebus: create topic %q: %w", ent.topic, err)
		}
	}
	props := &admin.SubscriptionProperties{LockDuration: &lock, RequiresSession: &spec.Ordered}
	if sql, _, ok := sqlRule(spec.FilterPattern); ok {
		props.DefaultRule = &admin.RuleProperties{Name: DefaultRuleName, Filter: &admin.SQLFilter{Expression: sql}}
	}
	_, err = ac.CreateSubscription(ctx, ent.topic, ent.sub, &admin.CreateSubscriptionOptions{Properties: props})
	if err != nil && !conflict(err) {
		return fmt.Errorf("servicebus: create subscription %q: %w", ent.path(), err)
	}
	return nil
}

// nativeFilter reads the rules of a route's subscription (Options.AutoCreate):
// the subscription filters natively unless one of its rules is the true
// filter, and exactly when its only rule is the exact translation of the
// route's pattern. It returns the zero NativeFilter when the rules cannot be
// read.
func (p *Provider) nativeFilter(ctx context.Context, ent entity, pattern string) driver.NativeFilter {
	ac, err := p.adminClient()
	if err != nil || ent.queue {
		return driver.NativeFilter{}
	}
	var exprs []string
	pager := ac.NewListRulesPager(ent.topic, ent.sub, nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return driver.NativeFilter{}
		}
		for _, r := range page.Rules {
			switch f := r.Filter.(type) {
			case *admin.TrueFilter:
				return driver.NativeFilter{}
			case *admin.FalseFilter:
				exprs = append(exprs, "1=0")
			case *admin.SQLFilter:
				if strings.ReplaceAll(f.Expression, " ", "") == "1=1" {
					return driver.NativeFilter{}
				}
				if len(f.Parameters) > 0 {
					return driver.NativeFilter{} // not comparable
				}
				exprs = append(exprs, f.Expression)
			default:
				return driver.NativeFilter{} // a correlation filter: unknown here
			}
		}
	}
	if len(exprs) == 0 {
		return driver.NativeFilter{}
	}
	want, exact, ok := sqlRule(pattern)
	if len(exprs) == 1 {
		return driver.NativeFilter{Expression: exprs[0], Exact: ok && exact && exprs[0] == want}
	}
	for i, e := range exprs {
		exprs[i] = "(" + e + ")"
	}
	return driver.NativeFilter{Expression: strings.Join(exprs, " OR ")}
}
