package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tidemark-dev/tidemark/forward"
	"github.com/tidemark-dev/tidemark/source"
	"github.com/tidemark-dev/tidemark/wire"
)

func init() {
	register(command{
		name:    "forward",
		summary: "forward HTTP calls (POST /v1/messages/{source}) and RabbitMQ queues into Kafka",
		run:     runForward,
	})
}

func runForward(ctx context.Context, fs *flag.FlagSet, args []string) error {
	pf := addPipeFlags(fs)
	var (
		httpAddr   = fs.String("http", "127.0.0.1:8081", `address of the HTTP endpoint ("off": none)`)
		amqpURL    = fs.String("amqp", envOr("TIDEMARK_AMQP_URL", ""), `RabbitMQ URL ($TIDEMARK_AMQP_URL; "": no queues)`)
		prefetch   = fs.Int("prefetch", 512, "RabbitMQ messages in flight per queue")
		codec      = fs.String("codec", "json/v1", "wire codec of the records: json/v1 or binary/v1")
		partitions = fs.Int("partitions", 0, "create the sources' missing topics with this many partitions (0: they must exist)")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	log, reg, err := pf.setup()
	if err != nil {
		return err
	}
	c, err := wire.ByName(*codec)
	if err != nil {
		return fmt.Errorf("-codec: %w", err)
	}
	prom, err := pf.registry(ctx, log)
	if err != nil {
		return err
	}
	if *partitions > 0 {
		if err := ensureSourceTopics(ctx, pf.brokerList(), reg, int32(*partitions)); err != nil {
			return err
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(pf.brokerList()...), kgo.ProducerLinger(time.Millisecond))
	if err != nil {
		return err
	}
	defer cl.Close()
	fw, err := forward.New(forward.Config{Sources: reg, Client: cl, Codec: c, Metrics: forward.NewMetrics(prom), Logger: log})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	run := func(f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil {
				errs <- err
				cancel()
			}
		}()
	}
	run(func() error { return fw.Run(ctx) })
	if *httpAddr != "off" && len(reg.ByKind(source.KindHTTP)) > 0 {
		ln, err := net.Listen("tcp", *httpAddr)
		if err != nil {
			return fmt.Errorf("-http: %w", err)
		}
		srv := &http.Server{Handler: fw.Handler(), ReadHeaderTimeout: 10 * time.Second}
		log.Info("forward: HTTP endpoint", "addr", ln.Addr().String())
		run(func() error {
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
		go func() {
			<-ctx.Done()
			sctx, scancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer scancel()
			srv.Shutdown(sctx)
		}()
	}
	if len(reg.ByKind(source.KindRabbitMQ)) > 0 {
		if *amqpURL == "" {
			return errors.New("the registry has rabbitmq sources: set -amqp or $TIDEMARK_AMQP_URL")
		}
		run(func() error { return fw.ConsumeRabbitMQ(ctx, forward.RabbitMQ{URL: *amqpURL, Prefetch: *prefetch}) })
	}
	wg.Wait()
	close(errs)
	return <-errs
}
