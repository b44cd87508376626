package redis_test

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/internal/claimtoken"
	"github.com/crossbus/crossbus/stores/redis"
)

// BenchmarkRedisIdempotency measures the claim protocol of one handled
// event: Begin on a fresh key, then Complete (two round trips, each one Lua
// script). "serial" is one caller (latency bound); "parallel=N" is N callers
// sharing the store, as a consumer with concurrent handlers does, with the
// store's batching and without it ("unbatched": each call its own round
// trip). It
// reports claims/s, the test process's CPU per claim (cpu-ns/op) and the
// Redis server's (server-cpu-ns/op, from INFO cpu).
func BenchmarkRedisIdempotency(b *testing.B) {
	for _, tc := range []struct {
		callers, pipelines int
	}{{1, 0}, {16, 0}, {64, 0}, {16, -1}} {
		name := "serial"
		if tc.callers > 1 {
			name = fmt.Sprintf("parallel=%d", tc.callers)
		}
		if tc.pipelines < 0 {
			name += "/unbatched"
		}
		callers := tc.callers
		b.Run(name, func(b *testing.B) {
			s := newStoreOpts(b, redis.Options{Pipelines: tc.pipelines})
			idem := s.Idempotency()
			ctx := context.Background()
			run := claimtoken.New()[:8]
			var n atomic.Int64
			claim := func(i int64) {
				key := "sub\x00/bench\x00" + run + "-" + strconv.FormatInt(i, 10)
				c, err := idem.Begin(ctx, key, 30*time.Second)
				if err != nil || c.Status != crossbus.ClaimNew {
					b.Fatalf("begin: %v %v", c.Status, err)
				}
				if err := idem.Complete(ctx, key, c.Token, time.Minute); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			cpu0, srv0 := cpuTime(), serverCPU(b, s.Client())
			b.ResetTimer()
			if callers == 1 {
				for i := 0; i < b.N; i++ {
					claim(n.Add(1))
				}
			} else {
				b.SetParallelism(max(callers/runtime.GOMAXPROCS(0), 1))
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						claim(n.Add(1))
					}
				})
			}
			b.StopTimer()
			ops := float64(n.Load())
			b.ReportMetric(ops/b.Elapsed().Seconds(), "claims/s")
			if used := cpuTime() - cpu0; cpu0 > 0 && used > 0 {
				b.ReportMetric(float64(used.Nanoseconds())/ops, "cpu-ns/op")
			}
			if srv := serverCPU(b, s.Client()) - srv0; srv0 > 0 && srv > 0 {
				b.ReportMetric(float64(srv.Nanoseconds())/ops, "server-cpu-ns/op")
			}
		})
	}
}

// serverCPU is the Redis server's user + system CPU time so far (0 when
// INFO does not say).
func serverCPU(b *testing.B, c goredis.UniversalClient) time.Duration {
	info, err := c.Info(context.Background(), "cpu").Result()
	if err != nil {
		b.Logf("INFO cpu: %v", err)
		return 0
	}
	var total float64
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && (k == "used_cpu_sys" || k == "used_cpu_user") {
			f, _ := strconv.ParseFloat(v, 64)
			total += f
		}
	}
	return time.Duration(total * float64(time.Second))
}
