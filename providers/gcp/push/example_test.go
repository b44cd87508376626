package push_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/providers/gcp/push"
	_ "github.com/crossbus/crossbus/providers/memory"
)

// Serve a route to Eventarc: the Handler checks the Google-signed OIDC
// token of the trigger's service account, then a Cloud Storage
// object-finalized event arrives in binary mode and runs the typed handler.
// A request without the token is refused before its body is read.
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

	google := newStandInGoogle() // signs tokens as Google signs the trigger's
	defer google.Close()

	verifier := push.NewGoogleOIDC(
		"https://resizer-abc123-uc.a.run.app/events/uploads", // the audience of the trigger's tokens
		"resizer-trigger@my-project.iam.gserviceaccount.com", // the service account the trigger pushes as
	)
	verifier.JWKSURL = google.KeysURL() // on Cloud Run, leave the default: Google's keys
	h, err := push.NewHandler(ep, push.Options{Verifier: verifier})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("POST /events/uploads", h)
	srv := httptest.NewServer(mux) // on Cloud Run: http.ListenAndServe(":"+os.Getenv("PORT"), mux)
	defer srv.Close()

	send := func(token string) int {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/events/uploads",
			strings.NewReader(`{"bucket":"my-uploads","name":"cat.jpg","contentType":"image/jpeg"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("ce-specversion", "1.0")
		req.Header.Set("ce-id", "8546785469543890")
		req.Header.Set("ce-source", "//storage.googleapis.com/projects/_/buckets/my-uploads")
		req.Header.Set("ce-type", "google.cloud.storage.object.v1.finalized")
		req.Header.Set("ce-subject", "objects/cat.jpg")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	fmt.Println("without a token:", send(""))
	fmt.Println("with the trigger's token:", send(google.Token(verifier.Audience, verifier.Email)))
	// Output:
	// without a token: 401
	// resize gs://my-uploads/cat.jpg (google.cloud.storage.object.v1.finalized)
	// with the trigger's token: 204
}

// On Cloud Run deployed with --no-allow-unauthenticated, Cloud Run checks
// that the caller may invoke the service before the request reaches the
// Handler; the Handler may then be told not to check again. Anywhere else,
// that would let anyone who can reach the URL push events.
func ExampleNewHandler_cloudRunIAM() {
	ctx := context.Background()
	bus, err := crossbus.Open(ctx, "mem://") // on Cloud Run: "gcppubsub://projects/PROJECT"
	if err != nil {
		panic(err)
	}
	defer bus.Close(ctx)
	ep, err := bus.NewEndpoint("uploads", "resizer", crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
		return nil
	}), crossbus.WithDeadLetterTopic("uploads-dead-letters"))
	if err != nil {
		panic(err)
	}
	h, err := push.NewHandler(ep, push.Options{InsecureNoAuthentication: true}) // Cloud Run's IAM authenticates
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("POST /events/uploads", h)
	_ = http.ListenAndServe(":"+os.Getenv("PORT"), mux)
}
