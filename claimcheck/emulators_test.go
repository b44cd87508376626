package claimcheck_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gocloud.dev/blob/azureblob"
	"gocloud.dev/blob/gcsblob"
	"gocloud.dev/blob/s3blob"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/claimcheck"
	"github.com/crossbus/crossbus/providers/memory"
)

var bucketSeq atomic.Int64

func bucketName(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), bucketSeq.Add(1))
}

// Cloud Storage: fake-gcs-server in process, through gcsblob and the
// Cloud Storage client.
func TestStoreGCS(t *testing.T) {
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{NoListener: true})
	require.NoError(t, err)
	t.Cleanup(srv.Stop)
	runStoreSuite(t, func(t *testing.T) *claimcheck.Store {
		name := bucketName("claims")
		srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: name})
		b, err := gcsblob.OpenBucket(context.Background(), nil, name, &gcsblob.Options{Client: srv.Client()})
		require.NoError(t, err)
		t.Cleanup(func() { _ = b.Close() })
		s, err := claimcheck.New(b, "gs://"+name, nil)
		require.NoError(t, err)
		return s
	})
}

// s3Fake is gofakes3 (in memory) on a local HTTP server.
type s3Fake struct {
	backend *s3mem.Backend
	client  *s3.Client
}

func newS3Fake(t *testing.T) *s3Fake {
	t.Helper()
	backend := s3mem.New()
	ts := httptest.NewServer(gofakes3.New(backend).Server())
	t.Cleanup(ts.Close)
	client := s3.New(s3.Options{
		Region:                     "us-east-1",
		BaseEndpoint:               aws.String(ts.URL),
		UsePathStyle:               true,
		Credentials:                credentials.NewStaticCredentialsProvider("test", "test", ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
	return &s3Fake{backend: backend, client: client}
}

func (f *s3Fake) store(t *testing.T, name string, create bool) *claimcheck.Store {
	t.Helper()
	if create {
		require.NoError(t, f.backend.CreateBucket(name))
	}
	b, err := s3blob.OpenBucket(context.Background(), f.client, name, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	s, err := claimcheck.New(b, "s3://"+name, nil)
	require.NoError(t, err)
	return s
}

// S3: gofakes3 in process, through s3blob and the AWS SDK.
func TestStoreS3(t *testing.T) {
	f := newS3Fake(t)
	runStoreSuite(t, func(t *testing.T) *claimcheck.Store { return f.store(t, bucketName("claims"), true) })

	t.Run("MissingBucketFailsThePublish", func(t *testing.T) {
		store := f.store(t, "no-such-bucket", false)
		r := newRig(t, store, 1024, memory.Options{})
		wire := newCollector()
		subscribe(t, r.raw, "invoices", "audit", wire.handler(nil))
		err := r.bus.Publish(context.Background(), "invoices", bigEvent(t, "inv-1", payload(4096, 1)))
		var pe *crossbus.PublishError
		require.ErrorAs(t, err, &pe)
		require.Len(t, pe.Failed, 1)
		assert.Contains(t, err.Error(), "bucket s3://no-such-bucket")
		wire.none(t, 100e6)
	})
}

// Azure Blob Storage: Azurite (scripts/deps/azurite.sh), through azureblob
// and the Azure SDK with the emulator's shared key.
func TestStoreAzureBlob(t *testing.T) {
	blobURL := os.Getenv("CROSSBUS_AZURITE_BLOB_URL")
	if blobURL == "" {
		t.Skip("CROSSBUS_AZURITE_BLOB_URL not set: run scripts/deps/azurite.sh (make test does) to test on Azurite")
	}
	cred, err := container.NewSharedKeyCredential(os.Getenv("CROSSBUS_AZURITE_ACCOUNT"), os.Getenv("CROSSBUS_AZURITE_KEY"))
	require.NoError(t, err)
	open := func(t *testing.T, name string, create bool) *claimcheck.Store {
		t.Helper()
		c, err := container.NewClientWithSharedKeyCredential(strings.TrimRight(blobURL, "/")+"/"+name, cred, nil)
		require.NoError(t, err)
		if create {
			_, err = c.Create(context.Background(), nil)
			require.NoError(t, err)
			t.Cleanup(func() { _, _ = c.Delete(context.Background(), nil) })
		}
		b, err := azureblob.OpenBucket(context.Background(), c, nil)
		require.NoError(t, err)
		t.Cleanup(func() { _ = b.Close() })
		s, err := claimcheck.New(b, "azblob://"+name, nil)
		require.NoError(t, err)
		return s
	}
	runStoreSuite(t, func(t *testing.T) *claimcheck.Store { return open(t, bucketName("claims"), true) })

	t.Run("MissingContainerFailsThePublish", func(t *testing.T) {
		store := open(t, "no-such-container", false)
		r := newRig(t, store, 1024, memory.Options{})
		wire := newCollector()
		subscribe(t, r.raw, "invoices", "audit", wire.handler(nil))
		err := r.bus.Publish(context.Background(), "invoices", bigEvent(t, "inv-1", payload(4096, 1)))
		var pe *crossbus.PublishError
		require.ErrorAs(t, err, &pe)
		assert.Contains(t, err.Error(), "bucket azblob://no-such-container")
		wire.none(t, 100e6)
	})
}
