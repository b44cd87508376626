package eventgrid

import (
	"cmp"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/internal/providerkit"
)

// DefaultKeyEnv is the environment variable the URL openers read an access
// key from when the URL does not name another with keyenv=.
const DefaultKeyEnv = "AZURE_EVENTGRID_KEY"

// Event Grid's documented bounds for receive requests and event locks.
const (
	MinMaxWaitTime      = 10 * time.Second
	MaxMaxWaitTime      = 120 * time.Second
	DefaultLockDuration = 60 * time.Second
	MaxLockDuration     = 300 * time.Second
)

// NamespaceOptions configure a Namespace. Give exactly one of Key and
// Credential.
type NamespaceOptions struct {
	// Endpoint is the namespace's HTTPS endpoint,
	// "https://<namespace>.<region>-1.eventgrid.azure.net".
	Endpoint string
	// Key is a namespace access key, sent as "Authorization: SharedAccessKey".
	Key string
	// Credential authenticates with Microsoft Entra ID (roles EventGrid Data
	// Sender and EventGrid Data Receiver).
	Credential azcore.TokenCredential
	// ClientOptions configure the Azure SDK clients: transport, retries,
	// logging, telemetry.
	ClientOptions azcore.ClientOptions
	// LockDuration is the receive lock duration the event subscriptions are
	// configured with (receiveLockDurationInSeconds; default 60s, Event
	// Grid's default). The data plane cannot read it: it is the default ack
	// deadline, and a longer WithAckDeadline is refused because the lock
	// would expire between renewals.
	LockDuration time.Duration
	// MaxWaitTime bounds one receive request's long poll (10s to 120s,
	// default 60s). A closing subscription cancels the poll at once.
	MaxWaitTime time.Duration
	// NativeDeadLetter says that the event subscriptions have a dead-letter
	// destination (a storage container): DeadLetter then rejects the event
	// and Event Grid moves it there. Without it (the default) the portable
	// layer publishes dead letters to the route's dead-letter topic, because
	// a rejected event with no destination is dropped.
	NativeDeadLetter bool
}

func (o *NamespaceOptions) validate() error {
	if err := checkEndpoint("NamespaceOptions.Endpoint", o.Endpoint); err != nil {
		return err
	}
	if err := checkAuth("NamespaceOptions", o.Key, o.Credential); err != nil {
		return err
	}
	o.LockDuration = cmp.Or(o.LockDuration, DefaultLockDuration)
	o.MaxWaitTime = cmp.Or(o.MaxWaitTime, 60*time.Second)
	switch {
	case o.LockDuration < 0 || o.LockDuration > MaxLockDuration:
		return fmt.Errorf("%w: NamespaceOptions.LockDuration must be between 0 and %v, got %v", driver.ErrInvalidOption, MaxLockDuration, o.LockDuration)
	}
	switch {
	case o.MaxWaitTime < MinMaxWaitTime || o.MaxWaitTime > MaxMaxWaitTime:
		return fmt.Errorf("%w: NamespaceOptions.MaxWaitTime must be between %v and %v, got %v", driver.ErrInvalidOption, MinMaxWaitTime, MaxMaxWaitTime, o.MaxWaitTime)
	}
	return nil
}

// TopicsOptions configure Topics, a publisher to basic (custom) topics.
// Give exactly one of Key and Credential.
type TopicsOptions struct {
	// Endpoints maps the topic names Publish is called with to the topics'
	// endpoints, "https://<topic>.<region>-1.eventgrid.azure.net/api/events".
	Endpoints map[string]string
	// Key is the topics' access key, sent as the aeg-sas-key header.
	Key string
	// Credential authenticates with Microsoft Entra ID (role EventGrid Data
	// Sender).
	Credential azcore.TokenCredential
	// ClientOptions configure the Azure SDK client.
	ClientOptions azcore.ClientOptions
}

func (o *TopicsOptions) validate() error {
	if len(o.Endpoints) == 0 {
		return fmt.Errorf("%w: TopicsOptions.Endpoints is empty; map each topic name to its endpoint", driver.ErrInvalidOption)
	}
	for name, ep := range o.Endpoints {
		if name == "" {
			return fmt.Errorf("%w: TopicsOptions.Endpoints has an empty topic name", driver.ErrInvalidOption)
		}
		if err := checkEndpoint(fmt.Sprintf("TopicsOptions.Endpoints[%q]", name), ep); err != nil {
			return err
		}
	}
	return checkAuth("TopicsOptions", o.Key, o.Credential)
}

func checkEndpoint(field, ep string) error {
	u, err := url.Parse(ep)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%w: %s %q is not an absolute URL", driver.ErrInvalidOption, field, ep)
	}
	if u.Scheme != "https" {
		return fmt.Errorf("%w: %s %q must use https (the Azure SDK refuses to send credentials over plain HTTP)", driver.ErrInvalidOption, field, ep)
	}
	return nil
}

func checkAuth(what, key string, cred azcore.TokenCredential) error {
	switch {
	case key == "" && cred == nil:
		return fmt.Errorf("%w: %s needs Key or Credential", driver.ErrInvalidOption, what)
	case key != "" && cred != nil:
		return fmt.Errorf("%w: %s takes Key or Credential, not both", driver.ErrInvalidOption, what)
	}
	return nil
}

// durationParam is a duration parameter that also takes whole seconds
// ("60" is "60s").
func durationParam(name string, p *time.Duration, doc string) providerkit.Param {
	return providerkit.Func(name, doc, func(v string) error {
		if n, err := strconv.Atoi(v); err == nil {
			*p = time.Duration(n) * time.Second
			return nil
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			return errors.New("not a duration (e.g. 60s)")
		}
		*p = d
		return nil
	})
}

// keyEnvParam names the environment variable the access key is read from.
func keyEnvParam(env *string) providerkit.Param {
	return providerkit.String("keyenv", env, "environment variable holding the access key (default "+DefaultKeyEnv+")")
}

// credentials returns the key from the environment variable env (default
// AZURE_EVENTGRID_KEY) or, when it is unset, the Azure default credential
// chain (environment, workload identity, managed identity, Azure CLI).
func credentials(env string) (string, azcore.TokenCredential, error) {
	env = cmp.Or(env, DefaultKeyEnv)
	if key := os.Getenv(env); key != "" {
		return key, nil, nil
	}
	cred, err := azidentity.NewDefaultAzureCredential(nil)
	if err != nil {
		return "", nil, fmt.Errorf("eventgrid: %s is unset and no Entra ID credential is available: %w", env, err)
	}
	return "", cred, nil
}

// namespaceOptionsFromURL parses
// azeventgridns://<namespace-host>[:port]?lockduration=60s&maxwait=60s&deadletter=native&keyenv=NAME.
func namespaceOptionsFromURL(u *url.URL) (NamespaceOptions, error) {
	var o NamespaceOptions
	if u.Host == "" {
		return o, fmt.Errorf("%w: %s URL needs the namespace host, e.g. %s://my-ns.westeurope-1.eventgrid.azure.net", driver.ErrInvalidURL, u.Scheme, u.Scheme)
	}
	if u.Path != "" && u.Path != "/" {
		return o, fmt.Errorf("%w: %s URL takes no path (topics and subscriptions are named by Publish and Subscribe), got %q", driver.ErrInvalidURL, u.Scheme, u.Path)
	}
	o.Endpoint = "https://" + u.Host
	var env string
	params := providerkit.Params{
		durationParam("lockduration", &o.LockDuration, "the event subscriptions' receive lock duration"),
		durationParam("maxwait", &o.MaxWaitTime, "longest wait of one receive request"),
		providerkit.Func("deadletter", "native or topic (the default)", func(v string) error {
			switch v {
			case "", "topic":
				o.NativeDeadLetter = false
			case "native":
				o.NativeDeadLetter = true
			default:
				return errors.New("want native or topic")
			}
			return nil
		}),
		keyEnvParam(&env),
	}
	if err := params.Parse(u.Scheme+" URL", u.Query()); err != nil {
		return o, err
	}
	var err error
	o.Key, o.Credential, err = credentials(env)
	return o, err
}

// topicsOptionsFromURL parses azeventgrid://<topic-host>[/path]?topic=NAME&keyenv=NAME.
// The path defaults to /api/events; the topic name defaults to the host's
// first label (the topic's name in Azure).
func topicsOptionsFromURL(u *url.URL) (TopicsOptions, error) {
	var o TopicsOptions
	if u.Host == "" {
		return o, fmt.Errorf("%w: %s URL needs the topic endpoint host, e.g. %s://my-topic.westeurope-1.eventgrid.azure.net", driver.ErrInvalidURL, u.Scheme, u.Scheme)
	}
	var name, env string
	params := providerkit.Params{
		providerkit.String("topic", &name, "the topic's name in Publish (default: the host's first label)"),
		keyEnvParam(&env),
	}
	if err := params.Parse(u.Scheme+" URL", u.Query()); err != nil {
		return o, err
	}
	if name == "" {
		name, _, _ = strings.Cut(u.Hostname(), ".")
	}
	path := u.EscapedPath()
	if path == "" || path == "/" {
		path = "/api/events"
	}
	o.Endpoints = map[string]string{name: "https://" + u.Host + path}
	var err error
	o.Key, o.Credential, err = credentials(env)
	return o, err
}
