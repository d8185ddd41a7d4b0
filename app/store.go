package app

import (
	"context"
	"fmt"

	"github.com/tidemark-dev/tidemark/app/config"
	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/tiered"
)

// openStore opens the event center of cfg.Store, behind the cold tier of
// cfg.Cold when one is configured (a *tiered.Store then).
func openStore(ctx context.Context, cfg config.Config, o config.StoreOptions) (eventcenter.Store, error) {
	u, err := config.ParseStore(cfg.Store)
	if err != nil {
		return nil, usageError{err}
	}
	store, err := config.OpenStore(ctx, u, o)
	if err != nil || cfg.Cold == "" {
		return store, err
	}
	cold, err := config.OpenCold(ctx, cfg)
	if err != nil {
		store.Close()
		return nil, usageError{err}
	}
	hot, ok := store.(tiered.Hot)
	if !ok {
		store.Close()
		return nil, fmt.Errorf("the store %s cannot be a cold tier's hot store", u)
	}
	window, err := cfg.HotWindowDuration()
	if err != nil {
		store.Close()
		return nil, usageError{err}
	}
	ts, err := tiered.New(tiered.Config{Hot: hot, Cold: cold, HotWindow: window})
	if err != nil {
		store.Close()
		return nil, err
	}
	return ts, nil
}
