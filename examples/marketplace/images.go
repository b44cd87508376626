package main

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"sync"
	"sync/atomic"
	"time"

	"github.com/crossbus/crossbus"
)

// Scenario 1, simple processing: Cloud Storage announces an uploaded image
// with a google.cloud.storage.object.v1.finalized CloudEvent (as Eventarc
// delivers it); a route crops it to a square, resizes it, stores the
// thumbnail and publishes a notification.

const (
	finalizedType   = "google.cloud.storage.object.v1.finalized"
	uploadsBucket   = "marketplace-uploads"
	thumbsBucket    = "marketplace-thumbnails"
	thumbnailSize   = 256
	thumbnailTopic  = "storage-objects"
	notifyTopic     = "notifications"
	thumbnailedType = "com.example.marketplace.thumbnail.created"
)

// StorageObject is the data of a Cloud Storage object event (the fields
// the demo uses, named as Cloud Storage names them).
type StorageObject struct {
	Bucket      string `json:"bucket"`
	Name        string `json:"name"`
	ContentType string `json:"contentType"`
	Size        string `json:"size"` // Cloud Storage sends sizes as strings
	Generation  string `json:"generation"`
	TimeCreated string `json:"timeCreated"`
}

// Thumbnail is the data of the notification.
type Thumbnail struct {
	Source string `json:"source"`
	Object string `json:"object"`
	Width  int    `json:"width"`
	Height int    `json:"height"`
	Bytes  int    `json:"bytes"`
}

// ThumbnailResult is what scenario 1 ended with.
type ThumbnailResult struct {
	Deliveries   int // finalized events delivered to the thumbnailer (duplicate included)
	Runs         int // times the resize actually ran
	Width        int
	Height       int
	Notification string // the notification event's type
}

// bucketStore stands in for Cloud Storage: objects by bucket and name.
type bucketStore struct {
	mu      sync.Mutex
	objects map[string][]byte
}

func (b *bucketStore) put(bucket, name string, data []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.objects[bucket+"/"+name] = data
}

func (b *bucketStore) get(bucket, name string) ([]byte, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	d, ok := b.objects[bucket+"/"+name]
	return d, ok
}

// duplicateWait bounds the wait for an injected duplicate on a bus other
// than mem://, which may drop it at publish.
const duplicateWait = 2 * time.Second

func (a *app) thumbnails(ctx context.Context) (ThumbnailResult, error) {
	var res ThumbnailResult
	tr := a.trace
	tr.title("1. Simple processing: image uploaded -> square thumbnail -> stored -> notification")
	storage := &bucketStore{objects: map[string][]byte{}}

	notified := make(chan *crossbus.Event, 1)
	notes, err := a.bus.Subscribe(ctx, notifyTopic, "seller-inbox", crossbus.Typed(func(ctx context.Context, e *crossbus.Event, t Thumbnail) error {
		tr.log("notify", "%s: thumbnail gs://%s/%s (%dx%d) is ready", e.Type(), thumbsBucket, t.Object, t.Width, t.Height)
		notified <- e
		return nil
	}))
	if err != nil {
		return res, err
	}
	defer notes.Close(context.Background())

	var deliveries, runs atomic.Int32
	var result Thumbnail
	resize := crossbus.Typed(func(ctx context.Context, e *crossbus.Event, obj StorageObject) error {
		runs.Add(1)
		data, ok := storage.get(obj.Bucket, obj.Name)
		if !ok {
			return fmt.Errorf("object gs://%s/%s not found", obj.Bucket, obj.Name)
		}
		img, format, err := image.Decode(bytes.NewReader(data))
		if err != nil {
			return crossbus.Permanent(fmt.Errorf("gs://%s/%s is not an image: %w", obj.Bucket, obj.Name, err))
		}
		square := cropSquare(img)
		thumb := resizeBox(square, thumbnailSize)
		var buf bytes.Buffer
		if err := jpeg.Encode(&buf, thumb, &jpeg.Options{Quality: 85}); err != nil {
			return err
		}
		name := "thumbs/" + obj.Name + ".jpg"
		storage.put(thumbsBucket, name, buf.Bytes())
		b := img.Bounds()
		tr.log("thumbnail", "decoded %s %dx%d, cropped to %dx%d at %v, resized to %dx%d, stored gs://%s/%s (%d bytes)",
			format, b.Dx(), b.Dy(), square.Bounds().Dx(), square.Bounds().Dy(), square.Bounds().Min,
			thumbnailSize, thumbnailSize, thumbsBucket, name, buf.Len())
		result = Thumbnail{Source: "gs://" + obj.Bucket + "/" + obj.Name, Object: name, Width: thumb.Bounds().Dx(), Height: thumb.Bounds().Dy(), Bytes: buf.Len()}
		note := crossbus.NewEvent(thumbnailedType, "/marketplace/thumbnailer")
		note.SetSubject(name)
		if err := crossbus.SetData(&note, result); err != nil {
			return err
		}
		return a.bus.Publish(ctx, notifyTopic, &note)
	})
	// Deliveries are counted outside the idempotency check, handler runs
	// inside it: a duplicate delivery shows as a delivery without a run.
	idem, err := crossbus.Idempotent(a.db.Idempotency(), crossbus.IdempotencyOptions{})
	if err != nil {
		return res, err
	}
	countDeliveries := func(next crossbus.Handler) crossbus.Handler {
		return crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
			n := deliveries.Add(1)
			before := runs.Load()
			err := next.Handle(ctx, e)
			if err == nil && runs.Load() == before {
				tr.log("thumbnail", "delivery %d of event %s: already handled (idempotency store), skipped", n, e.ID())
			}
			return err
		})
	}
	sub, err := a.bus.Subscribe(ctx, thumbnailTopic, "thumbnailer", crossbus.Chain(resize, countDeliveries, idem),
		crossbus.WithRetry(quickRetry(3)), crossbus.WithConcurrency(1))
	if err != nil {
		return res, err
	}
	defer sub.Close(context.Background())

	// The upload: a generated 640x360 product photo.
	photo, err := productPhoto(640, 360)
	if err != nil {
		return res, err
	}
	objName := "listings/item-42.png"
	storage.put(uploadsBucket, objName, photo)
	tr.log("storage", "uploaded gs://%s/%s (640x360 PNG, %d bytes)", uploadsBucket, objName, len(photo))
	ev := crossbus.NewEvent(finalizedType, "//storage.googleapis.com/projects/_/buckets/"+uploadsBucket)
	ev.SetSubject("objects/" + objName)
	now := time.Now().UTC()
	if err := crossbus.SetData(&ev, StorageObject{Bucket: uploadsBucket, Name: objName, ContentType: "image/png",
		Size: fmt.Sprint(len(photo)), Generation: fmt.Sprint(now.UnixMicro()), TimeCreated: now.Format(time.RFC3339Nano)}); err != nil {
		return res, err
	}
	tr.log("bus", "publish %s id=%s subject=%s", ev.Type(), ev.ID(), ev.Subject())
	if err := a.bus.Publish(ctx, thumbnailTopic, &ev); err != nil {
		return res, err
	}
	var note *crossbus.Event
	select {
	case note = <-notified:
	case <-ctx.Done():
		return res, ctx.Err()
	}
	// At-least-once delivery means the same event can arrive again (a
	// redelivery after a lost ack, a retried push): inject one.
	tr.log("bus", "inject a duplicate delivery of %s", ev.ID())
	if err := a.bus.Publish(ctx, thumbnailTopic, &ev); err != nil {
		return res, err
	}
	// A bus that de-duplicates publishes (JetStream, by event id and
	// source, within its duplicate window) drops the re-publish: then the
	// second delivery never comes.
	var dropped <-chan time.Time
	if a.mem == nil {
		t := time.NewTimer(duplicateWait)
		defer t.Stop()
		dropped = t.C
	}
wait:
	for deliveries.Load() < 2 {
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-dropped:
			tr.log("bus", "no second delivery within %v: the bus dropped the re-publish as a duplicate (same id and source)", duplicateWait)
			break wait
		case <-time.After(5 * time.Millisecond):
		}
	}
	if err := sub.Close(ctx); err != nil {
		return res, err
	}
	res = ThumbnailResult{Deliveries: int(deliveries.Load()), Runs: int(runs.Load()), Width: result.Width, Height: result.Height, Notification: note.Type()}
	tr.table([][2]string{
		{"deliveries", fmt.Sprint(res.Deliveries)},
		{"resizes run", fmt.Sprint(res.Runs)},
		{"thumbnail", fmt.Sprintf("%dx%d JPEG", res.Width, res.Height)},
	})
	return res, nil
}

// productPhoto draws a PNG: a gradient background with a disc, so that the
// crop and resize have something to show.
func productPhoto(w, h int) ([]byte, error) {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	cx, cy, r := w/2, h/2, h/3
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := color.RGBA{R: uint8(255 * x / w), G: uint8(255 * y / h), B: 160, A: 255}
			if dx, dy := x-cx, y-cy; dx*dx+dy*dy < r*r {
				c = color.RGBA{R: 250, G: 250, B: 250, A: 255}
			}
			img.SetRGBA(x, y, c)
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// cropSquare returns the centred square of img.
func cropSquare(img image.Image) image.Image {
	b := img.Bounds()
	side := min(b.Dx(), b.Dy())
	x0 := b.Min.X + (b.Dx()-side)/2
	y0 := b.Min.Y + (b.Dy()-side)/2
	rect := image.Rect(x0, y0, x0+side, y0+side)
	if s, ok := img.(interface {
		SubImage(image.Rectangle) image.Image
	}); ok {
		return s.SubImage(rect)
	}
	out := image.NewRGBA(image.Rect(0, 0, side, side))
	for y := 0; y < side; y++ {
		for x := 0; x < side; x++ {
			out.Set(x, y, img.At(x0+x, y0+y))
		}
	}
	return out
}

// resizeBox scales a square image to size x size by averaging the source
// pixels that fall into each target pixel (a box filter: good for
// downscaling, which is what thumbnails do).
func resizeBox(src image.Image, size int) *image.RGBA {
	b := src.Bounds()
	dst := image.NewRGBA(image.Rect(0, 0, size, size))
	for ty := 0; ty < size; ty++ {
		y0 := b.Min.Y + ty*b.Dy()/size
		y1 := max(b.Min.Y+(ty+1)*b.Dy()/size, y0+1)
		for tx := 0; tx < size; tx++ {
			x0 := b.Min.X + tx*b.Dx()/size
			x1 := max(b.Min.X+(tx+1)*b.Dx()/size, x0+1)
			var r, g, bl, al, n uint64
			for y := y0; y < y1; y++ {
				for x := x0; x < x1; x++ {
					cr, cg, cb, ca := src.At(x, y).RGBA()
					r, g, bl, al, n = r+uint64(cr), g+uint64(cg), bl+uint64(cb), al+uint64(ca), n+1
				}
			}
			dst.SetRGBA(tx, ty, color.RGBA{R: uint8(r / n >> 8), G: uint8(g / n >> 8), B: uint8(bl / n >> 8), A: uint8(al / n >> 8)})
		}
	}
	return dst
}
