package claimcheck

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/internal/datahook"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
)

// ExtDataRef is the CloudEvents dataref extension: a URI naming where the
// event's data is.
const ExtDataRef = "dataref"

// DefaultPrefix is the key prefix of the objects a Store writes.
const DefaultPrefix = "claimcheck/"

// Options tune a Store; the zero value (or nil) takes the defaults.
type Options struct {
	// Prefix of the object keys (default DefaultPrefix). Sweep deletes only
	// objects under it.
	Prefix string
	// Reuse: an object of the same key (the same bytes) written less than
	// Reuse ago is not written again. Default one hour; negative writes
	// every time.
	Reuse time.Duration
	// Logger for RunSweeper (default: discard).
	Logger *slog.Logger
}

// Store is a bucket used for claim checks, with the URI that names it in
// dataref extensions. It is safe for concurrent use.
type Store struct {
	bucket *blob.Bucket
	uri    string // no trailing slash
	prefix string
	reuse  time.Duration
	log    *slog.Logger
	owned  bool // opened by Open: Close closes the bucket
}

// New returns a Store over bucket. uri names the bucket in dataref
// extensions, for example "s3://orders-payloads", "gs://orders-payloads",
// "azblob://payloads" or "file:///var/lib/app/payloads": every producer and
// consumer of the bucket must use the same one (consumers resolve exactly
// the references that begin with uri + "/"). Close does not close bucket.
func New(bucket *blob.Bucket, uri string, opts *Options) (*Store, error) {
	if bucket == nil {
		return nil, fmt.Errorf("claimcheck: %w: nil bucket", crossbus.ErrInvalidOption)
	}
	uri = strings.TrimRight(uri, "/")
	u, err := url.Parse(uri)
	if err != nil || u.Scheme == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("claimcheck: %w: bucket URI %q: want scheme://bucket[/path], without query", crossbus.ErrInvalidOption, uri)
	}
	s := &Store{bucket: bucket, uri: uri, prefix: DefaultPrefix, reuse: time.Hour, log: slog.New(slog.DiscardHandler)}
	if opts != nil {
		if opts.Prefix != "" {
			s.prefix = opts.Prefix
		}
		if opts.Reuse != 0 {
			s.reuse = opts.Reuse
		}
		if opts.Logger != nil {
			s.log = opts.Logger
		}
	}
	return s, nil
}

// Open opens the bucket at bucketURL with gocloud.dev/blob (import the
// driver: gocloud.dev/blob/s3blob, gcsblob, azureblob, fileblob, memblob)
// and returns a Store named by the URL without its query: scheme, host and
// path ("s3://b?region=r" is "s3://b", "file:///tmp/x" is "file:///tmp/x").
// Close closes the bucket.
func Open(ctx context.Context, bucketURL string, opts *Options) (*Store, error) {
	u, err := url.Parse(bucketURL)
	if err != nil || u.Scheme == "" {
		return nil, fmt.Errorf("claimcheck: %w: bucket URL %q", crossbus.ErrInvalidOption, bucketURL)
	}
	b, err := blob.OpenBucket(ctx, bucketURL)
	if err != nil {
		return nil, fmt.Errorf("claimcheck: open bucket %s: %w", u.Scheme+"://"+u.Host+u.Path, err)
	}
	uri := u.Scheme + "://" + u.Host + u.Path
	s, err := New(b, uri, opts)
	if err != nil {
		_ = b.Close()
		return nil, err
	}
	s.owned = true
	return s, nil
}

// URI names the bucket in dataref extensions.
func (s *Store) URI() string { return s.uri }

// Bucket is the store's bucket.
func (s *Store) Bucket() *blob.Bucket { return s.bucket }

// Close closes the bucket if Open opened it.
func (s *Store) Close() error {
	if s.owned {
		return s.bucket.Close()
	}
	return nil
}

// Key is the content-addressed key data is stored under.
func (s *Store) Key(data []byte) string {
	sum := sha256.Sum256(data)
	return s.prefix + "sha256/" + hex.EncodeToString(sum[:])
}

// Ref is the dataref naming key in this store's bucket.
func (s *Store) Ref(key string) string {
	return s.uri + "/" + (&url.URL{Path: key}).EscapedPath()
}

// KeyOf returns the key a dataref names in this store's bucket; ok is false
// when ref names anything else.
func (s *Store) KeyOf(ref string) (key string, ok bool) {
	rest, found := strings.CutPrefix(ref, s.uri+"/")
	if !found || rest == "" {
		return "", false
	}
	key, err := url.PathUnescape(rest)
	if err != nil || key == "" {
		return "", false
	}
	return key, true
}

// Put stores data (content-addressed) and returns its dataref. It writes
// nothing when an object of the key was written less than Options.Reuse ago.
func (s *Store) Put(ctx context.Context, data []byte, contentType string) (ref string, err error) {
	key := s.Key(data)
	ctx, span := startSpan(ctx, "claimcheck put", s.uri, key, len(data))
	defer func() { endSpan(span, err) }()
	if s.reuse > 0 {
		a, aerr := s.bucket.Attributes(ctx, key)
		if aerr == nil && a.Size == int64(len(data)) && time.Since(a.ModTime) < s.reuse {
			span.SetAttributes(attribute.Bool("claimcheck.reused", true))
			return s.Ref(key), nil
		}
	}
	var wo *blob.WriterOptions
	if contentType != "" {
		wo = &blob.WriterOptions{ContentType: contentType}
	} else {
		wo = &blob.WriterOptions{ContentType: "application/octet-stream"}
	}
	if err := s.bucket.WriteAll(ctx, key, data, wo); err != nil {
		return "", fmt.Errorf("claimcheck: write %d bytes to bucket %s (key %s): %w", len(data), s.uri, key, err)
	}
	return s.Ref(key), nil
}

// Get reads the data a dataref of this bucket names. Data stored under a
// content-addressed key is checked against its hash; a mismatch is a
// permanent error (crossbus.IsPermanent).
func (s *Store) Get(ctx context.Context, ref string) (data []byte, err error) {
	key, ok := s.KeyOf(ref)
	if !ok {
		return nil, fmt.Errorf("claimcheck: %q is not a reference to bucket %s", ref, s.uri)
	}
	ctx, span := startSpan(ctx, "claimcheck get", s.uri, key, -1)
	defer func() { endSpan(span, err) }()
	data, err = s.bucket.ReadAll(ctx, key)
	if err != nil {
		if gcerrors.Code(err) == gcerrors.NotFound {
			return nil, fmt.Errorf("claimcheck: data %s not found in bucket %s (expired, or never written): %w", key, s.uri, err)
		}
		return nil, fmt.Errorf("claimcheck: read %s from bucket %s: %w", key, s.uri, err)
	}
	span.SetAttributes(attribute.Int("claimcheck.size", len(data)))
	if want, ok := strings.CutPrefix(key, s.prefix+"sha256/"); ok && len(want) == 2*sha256.Size {
		sum := sha256.Sum256(data)
		if got := hex.EncodeToString(sum[:]); got != want {
			return nil, crossbus.Permanent(fmt.Errorf("claimcheck: data %s in bucket %s has SHA-256 %s: corrupted", key, s.uri, got))
		}
	}
	return data, nil
}

// Option returns a bus option that sends event data over threshold bytes
// through store (and any event over the provider's size limit, whatever the
// threshold; with threshold 0 only those). Delivered events whose dataref
// names the store's bucket get their data back before the route's filter.
// A bus takes one claim check.
func Option(store *Store, threshold int) crossbus.BusOption {
	return func(b *crossbus.Bus) error {
		if store == nil {
			return fmt.Errorf("claimcheck: %w: nil store", crossbus.ErrInvalidOption)
		}
		if threshold < 0 {
			return fmt.Errorf("claimcheck: %w: threshold must not be negative, got %d", crossbus.ErrInvalidOption, threshold)
		}
		return datahook.Install(b, &hook{s: store, threshold: threshold})
	}
}

// Ref returns an event's dataref ("" when it has none).
func Ref(e *crossbus.Event) string {
	return crossbus.ExtensionString(e, ExtDataRef)
}

// hook is the Store as the bus's data hook.
type hook struct {
	s         *Store
	threshold int
}

// maxParallelPuts bounds the concurrent writes of one publish.
const maxParallelPuts = 8

func (h *hook) Outgoing(ctx context.Context, events []*crossbus.Event, limit int) ([]*crossbus.Event, []error) {
	out := make([]*crossbus.Event, len(events))
	var errs []error
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxParallelPuts)
	for i, e := range events {
		out[i] = e
		data := e.Data()
		if len(data) == 0 {
			continue
		}
		if ref := Ref(e); ref != "" {
			if key, ok := h.s.KeyOf(ref); ok && key == h.s.Key(data) {
				out[i] = slim(e, ref) // fetched through this bucket: the object is there
				continue
			}
		}
		over := h.threshold > 0 && len(data) > h.threshold || limit > 0 && driver.EncodedSize(e) > limit
		if !over {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			ref, err := h.s.Put(ctx, data, e.DataContentType())
			if err != nil {
				mu.Lock()
				if errs == nil {
					errs = make([]error, len(events))
				}
				errs[i] = fmt.Errorf("event %q not sent: %w", e.ID(), err)
				mu.Unlock()
				return
			}
			out[i] = slim(e, ref)
		}()
	}
	wg.Wait()
	return out, errs
}

func (h *hook) References(e *crossbus.Event) bool {
	if len(e.DataEncoded) != 0 {
		return false
	}
	ref := Ref(e)
	return ref != "" && strings.HasPrefix(ref, h.s.uri+"/")
}

func (h *hook) Resolve(ctx context.Context, e *crossbus.Event) (*crossbus.Event, error) {
	data, err := h.s.Get(ctx, Ref(e))
	if err != nil {
		return nil, err
	}
	c := *e
	c.Context = e.Context.Clone()
	c.DataEncoded = data
	ct := e.DataContentType()
	c.DataBase64 = ct != "" && !textual(ct)
	return &c, nil
}

// slim is a copy of e without its data, referring to ref.
func slim(e *crossbus.Event, ref string) *crossbus.Event {
	c := *e
	c.Context = e.Context.Clone()
	c.DataEncoded = nil
	c.DataBase64 = false
	c.SetExtension(ExtDataRef, ref)
	return &c
}

func textual(ct string) bool {
	mt, _, _ := strings.Cut(strings.ToLower(ct), ";")
	mt = strings.TrimSpace(mt)
	return mt == "application/json" || mt == "text/json" || strings.HasSuffix(mt, "+json") ||
		strings.HasPrefix(mt, "text/") || strings.Contains(mt, "xml")
}

// startSpan starts a child span of the one in ctx, with that span's tracer
// provider (so a bus's WithTracerProvider reaches it); none when ctx has no
// recording span.
func startSpan(ctx context.Context, name, bucket, key string, size int) (context.Context, trace.Span) {
	parent := trace.SpanFromContext(ctx)
	if !parent.IsRecording() {
		return ctx, parent
	}
	ctx, span := parent.TracerProvider().Tracer("github.com/crossbus/crossbus/claimcheck").Start(ctx, name,
		trace.WithSpanKind(trace.SpanKindClient))
	span.SetAttributes(attribute.String("claimcheck.bucket", bucket), attribute.String("claimcheck.key", key))
	if size >= 0 {
		span.SetAttributes(attribute.Int("claimcheck.size", size))
	}
	return ctx, span
}

func endSpan(span trace.Span, err error) {
	if !span.IsRecording() {
		return
	}
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// Sweep deletes the objects under the store's prefix last modified more
// than olderThan ago, for buckets without a lifecycle rule, and returns how
// many it deleted. olderThan must exceed the longest time an event can stay
// in flight (see the package documentation). Objects deleted meanwhile by
// someone else are not errors.
func (s *Store) Sweep(ctx context.Context, olderThan time.Duration) (deleted int, err error) {
	if olderThan <= 0 {
		return 0, fmt.Errorf("claimcheck: %w: sweep age must be positive, got %v", crossbus.ErrInvalidOption, olderThan)
	}
	cutoff := time.Now().Add(-olderThan)
	it := s.bucket.List(&blob.ListOptions{Prefix: s.prefix})
	for {
		obj, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			return deleted, nil
		}
		if err != nil {
			return deleted, fmt.Errorf("claimcheck: sweep bucket %s: list: %w", s.uri, err)
		}
		if obj.IsDir || !obj.ModTime.Before(cutoff) {
			continue
		}
		if err := s.bucket.Delete(ctx, obj.Key); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
			return deleted, fmt.Errorf("claimcheck: sweep bucket %s: delete %s: %w", s.uri, obj.Key, err)
		}
		deleted++
	}
}

// RunSweeper sweeps (Sweep with olderThan) every interval until ctx ends,
// logging each sweep's result and error to Options.Logger; it returns
// ctx's error.
func (s *Store) RunSweeper(ctx context.Context, every, olderThan time.Duration) error {
	if every <= 0 || olderThan <= 0 {
		return fmt.Errorf("claimcheck: %w: sweeper interval and age must be positive, got %v and %v", crossbus.ErrInvalidOption, every, olderThan)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		n, err := s.Sweep(ctx, olderThan)
		switch {
		case err != nil && ctx.Err() == nil:
			s.log.Error("claimcheck: sweep failed", "bucket", s.uri, "deleted", n, "error", err)
		case n > 0:
			s.log.Info("claimcheck: swept expired objects", "bucket", s.uri, "deleted", n)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
