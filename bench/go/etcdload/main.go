// etcdload: a load generator on etcd's own Go client (clientv3 of etcd 3.4), run beside tetcd's TypeScript
// generator so the bench also sees what Go users (Kubernetes, etcd's own benchmark tool) see: grpc-go's
// HTTP/2 and flow-control habits, its connection sharing and its keep-alives.
//
// It drives the load the way etcd 3.4's tools/benchmark does: --conns gRPC connections (one clientv3.Client
// each), --clients goroutines taking requests from one channel, client i on connection i % conns; keys of
// --key-size bytes holding a varint of the sequence number (--sequential-keys) or a random one within
// --key-space-size; values of --val-size bytes. It prints one JSON object: requests, errors, seconds,
// requests per second and latency percentiles in milliseconds.
//
//	etcdload --endpoints 127.0.0.1:2379 --conns 1 --clients 1 --total 2000 put --key-size 8 --val-size 256
//	etcdload --endpoints ... --conns 100 --clients 1000 --duration 5s range --key foo --consistency l
//
// Built offline in GOPATH mode against Debian's golang-etcd-server-dev (bench/lib/etcdload.ts does it).
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.etcd.io/etcd/clientv3"
)

type result struct {
	Workload     string  `json:"workload"`
	Requests     int64   `json:"requests"`
	Errors       int64   `json:"errors"`
	FirstError   string  `json:"firstError,omitempty"`
	Seconds      float64 `json:"seconds"`
	RequestsPerS float64 `json:"requestsPerSecond"`
	P50Ms        float64 `json:"p50Ms"`
	P90Ms        float64 `json:"p90Ms"`
	P99Ms        float64 `json:"p99Ms"`
	P999Ms       float64 `json:"p999Ms"`
	MaxMs        float64 `json:"maxMs"`
	// CPUSeconds is this process's user+system CPU over the whole run (connecting included).
	CPUSeconds float64 `json:"cpuSeconds"`
}

// maxLatencies bounds the recorded latencies (8 bytes each): a run longer than this keeps counting but
// samples latencies no further.
const maxLatencies = 20_000_000

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "etcdload: "+format+"\n", args...)
	os.Exit(2)
}

func percentile(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p * float64(len(sorted)-1))
	return float64(sorted[i]) / float64(time.Millisecond)
}

func main() {
	endpoints := flag.String("endpoints", "127.0.0.1:2379", "comma-separated gRPC endpoints")
	conns := flag.Int("conns", 1, "gRPC connections shared by the clients")
	clients := flag.Int("clients", 1, "concurrent clients")
	total := flag.Int64("total", 0, "requests to send (0: run for --duration)")
	duration := flag.Duration("duration", 0, "how long to run when --total is 0")
	dialTimeout := flag.Duration("dial-timeout", 5*time.Second, "dial timeout")
	requestTimeout := flag.Duration("request-timeout", 10*time.Second, "timeout of one request")
	caFile := flag.String("cacert", "", "TLS to the endpoints, verifying them with this CA file (cleartext if empty)")
	flag.Parse()
	if *conns < 1 || *clients < 1 {
		fail("--conns and --clients must be at least 1")
	}
	if (*total <= 0) == (*duration <= 0) {
		fail("give exactly one of --total and --duration")
	}
	args := flag.Args()
	if len(args) == 0 {
		fail("a workload is needed: put or range")
	}
	wl := flag.NewFlagSet(args[0], flag.ExitOnError)
	keySize := wl.Int("key-size", 8, "put: key size in bytes")
	valSize := wl.Int("val-size", 256, "put: value size in bytes")
	seqKeys := wl.Bool("sequential-keys", false, "put: key i is the request's sequence number modulo --key-space-size (else random)")
	keySpace := wl.Int("key-space-size", 1, "put: distinct keys")
	key := wl.String("key", "foo", "range: the key read")
	rangeEnd := wl.String("range-end", "", "range: the range's end (empty: one key)")
	consistency := wl.String("consistency", "l", "range: l (linearizable) or s (serializable)")
	if err := wl.Parse(args[1:]); err != nil {
		fail("%v", err)
	}
	if *keySpace < 1 || *keySize < 1 || *valSize < 0 {
		fail("--key-space-size and --key-size must be at least 1, --val-size at least 0")
	}

	eps := strings.Split(*endpoints, ",")
	var tlsConfig *tls.Config
	if *caFile != "" {
		pem, err := os.ReadFile(*caFile)
		if err != nil {
			fail("read --cacert: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			fail("--cacert %s holds no certificate", *caFile)
		}
		tlsConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	cs := make([]*clientv3.Client, *conns)
	for i := range cs {
		// Each connection dials the endpoints in turn, as etcd's benchmark spreads connections over members.
		c, err := clientv3.New(clientv3.Config{Endpoints: []string{eps[i%len(eps)]}, DialTimeout: *dialTimeout, TLS: tlsConfig})
		if err != nil {
			fail("connect %s: %v", eps[i%len(eps)], err)
		}
		cs[i] = c
	}

	var op func(i int64) clientv3.Op
	switch args[0] {
	case "put":
		value := strings.Repeat("x", *valSize)
		op = func(i int64) clientv3.Op {
			k := make([]byte, *keySize)
			n := i % int64(*keySpace)
			if !*seqKeys {
				n = int64(rand.Intn(*keySpace))
			}
			binary.PutVarint(k, n)
			return clientv3.OpPut(string(k), value)
		}
	case "range":
		opts := []clientv3.OpOption{}
		if *rangeEnd != "" {
			opts = append(opts, clientv3.WithRange(*rangeEnd))
		}
		switch *consistency {
		case "l":
		case "s":
			opts = append(opts, clientv3.WithSerializable())
		default:
			fail("--consistency must be l or s")
		}
		op = func(int64) clientv3.Op { return clientv3.OpGet(*key, opts...) }
	default:
		fail("unknown workload %q (put or range)", args[0])
	}

	var next, errs int64 = -1, 0
	var firstErr atomic.Value
	var mu sync.Mutex
	lat := make([]time.Duration, 0, 1<<16)
	deadline := time.Time{}
	start := time.Now()
	if *duration > 0 {
		deadline = start.Add(*duration)
	}
	var wg sync.WaitGroup
	for w := 0; w < *clients; w++ {
		wg.Add(1)
		go func(c *clientv3.Client) {
			defer wg.Done()
			local := make([]time.Duration, 0, 1024)
			for {
				i := atomic.AddInt64(&next, 1)
				if (*total > 0 && i >= *total) || (*total == 0 && !time.Now().Before(deadline)) {
					break
				}
				ctx, cancel := context.WithTimeout(context.Background(), *requestTimeout)
				t0 := time.Now()
				_, err := c.Do(ctx, op(i))
				d := time.Since(t0)
				cancel()
				if err != nil {
					if atomic.AddInt64(&errs, 1) == 1 {
						firstErr.Store(err.Error())
					}
					continue
				}
				local = append(local, d)
			}
			mu.Lock()
			if len(lat)+len(local) <= maxLatencies {
				lat = append(lat, local...)
			}
			mu.Unlock()
		}(cs[w%len(cs)])
	}
	wg.Wait()
	elapsed := time.Since(start)
	for _, c := range cs {
		c.Close()
	}

	sort.Slice(lat, func(a, b int) bool { return lat[a] < lat[b] })
	r := result{
		Workload: args[0],
		Requests: int64(len(lat)),
		Errors:   errs,
		Seconds:  elapsed.Seconds(),
	}
	if v, ok := firstErr.Load().(string); ok {
		r.FirstError = v
	}
	r.RequestsPerS = float64(r.Requests) / elapsed.Seconds()
	r.P50Ms = percentile(lat, 0.50)
	r.P90Ms = percentile(lat, 0.90)
	r.P99Ms = percentile(lat, 0.99)
	r.P999Ms = percentile(lat, 0.999)
	if len(lat) > 0 {
		r.MaxMs = float64(lat[len(lat)-1]) / float64(time.Millisecond)
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		r.CPUSeconds = float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
	}
	out, _ := json.Marshal(r)
	fmt.Println(string(out))
}
