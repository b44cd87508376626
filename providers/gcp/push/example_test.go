package push_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/providers/gcp/push"
	_ "github.com/crossbus/crossbus/providers/memory"
)

// Serve a route to Eventarc: a Cloud Storage object-finalized event arrives
// in binary mode and runs the typed handler.
func ExampleNewHandler() {
	ctx := context.Background()
	bus, err := crossbus.Open(ctx, "mem://") // on Cloud Run: "gcppubsub://projects/PROJECT"
	if err != nil {
		panic(err)
	}
	defer bus.Close(ctx)

	type object struct {
		Bucket string `json:"bucket"`
		Name   string `json:"name"`
	}
	resize := crossbus.Typed(func(ctx context.Context, e *crossbus.Event, o object) error {
		fmt.Printf("resize gs://%s/%s (%s)\n", o.Bucket, o.Name, e.Type())
		return nil
	})
	ep, err := bus.NewEndpoint("uploads", "resizer", resize, crossbus.WithDeadLetterTopic("uploads-dead-letters"))
	if err != nil {
		panic(err)
	}
	h, err := push.NewHandler(ep, push.Options{})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("POST /events/uploads", h)
	srv := httptest.NewServer(mux) // on Cloud Run: http.ListenAndServe(":"+os.Getenv("PORT"), mux)
	defer srv.Close()

	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/events/uploads",
		strings.NewReader(`{"bucket":"my-uploads","name":"cat.jpg","contentType":"image/jpeg"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("ce-specversion", "1.0")
	req.Header.Set("ce-id", "8546785469543890")
	req.Header.Set("ce-source", "//storage.googleapis.com/projects/_/buckets/my-uploads")
	req.Header.Set("ce-type", "google.cloud.storage.object.v1.finalized")
	req.Header.Set("ce-subject", "objects/cat.jpg")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	resp.Body.Close()
	fmt.Println(resp.StatusCode)
	// Output:
	// resize gs://my-uploads/cat.jpg (google.cloud.storage.object.v1.finalized)
	// 204
}
