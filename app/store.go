package app

import (
	"context"

	"github.com/tidemark-dev/tidemark/app/config"
	"github.com/tidemark-dev/tidemark/eventcenter"
)

// openStore opens the event center of cfg.Store.
func openStore(ctx context.Context, cfg config.Config, o config.StoreOptions) (eventcenter.Store, error) {
	u, err := config.ParseStore(cfg.Store)
	if err != nil {
		return nil, usageError{err}
	}
	return config.OpenStore(ctx, u, o)
}
