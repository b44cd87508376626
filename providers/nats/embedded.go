package nats

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// embeddedStartTimeout bounds how long the embedded server may take to
// recover its streams from disk and accept connections.
const embeddedStartTimeout = 60 * time.Second

// startEmbedded starts an in-process JetStream server storing in dir. With
// listen empty it accepts only in-process connections; syncAlways flushes
// every write to disk.
func startEmbedded(dir, listen string, syncAlways bool) (*server.Server, error) {
	if !filepath.IsAbs(dir) {
		return nil, fmt.Errorf("nats: embedded store directory %q must be absolute", dir)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("nats: embedded store directory: %w", err)
	}
	opts := &server.Options{
		ServerName: "crossbus-embedded",
		JetStream:  true,
		StoreDir:   dir,
		NoLog:      true,
		NoSigs:     true,
		DontListen: listen == "",
		SyncAlways: syncAlways,
	}
	if listen != "" {
		host, port, err := net.SplitHostPort(listen)
		if err != nil {
			return nil, fmt.Errorf("nats: embedded listen address %q: %w", listen, err)
		}
		n, err := strconv.Atoi(port)
		if err != nil {
			return nil, fmt.Errorf("nats: embedded listen port %q: %w", port, err)
		}
		opts.Host, opts.Port = host, n
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("nats: embedded server: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(embeddedStartTimeout) {
		stopEmbedded(srv)
		return nil, fmt.Errorf("nats: embedded server storing in %s not ready after %v", dir, embeddedStartTimeout)
	}
	return srv, nil
}

func stopEmbedded(srv *server.Server) {
	srv.Shutdown()
	srv.WaitForShutdown()
}
