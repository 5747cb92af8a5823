package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/replicaof/replicaof/admin"
	"github.com/replicaof/replicaof/config"
)

// adminFlags are shared by the subcommands that talk to a running serve.
type adminFlags struct {
	url    string
	config string
	token  string
}

func (f *adminFlags) register(c *cobra.Command) {
	c.Flags().StringVar(&f.url, "admin", "", "admin URL of the running serve (default: from -c, else http://"+config.DefaultAdminListen+")")
	c.Flags().StringVarP(&f.config, "config", "c", "", "config file to read the admin address and token from")
	c.Flags().StringVar(&f.token, "token", os.Getenv("REPLICAOF_TOKEN"), "admin bearer token (default $REPLICAOF_TOKEN)")
}

// client resolves the admin URL: --admin, else the config's admin.listen.
func (f *adminFlags) client() (*adminClient, error) {
	base, token := f.url, f.token
	if base == "" && f.config != "" {
		cfg, err := config.Load(f.config)
		if err != nil {
			return nil, err
		}
		base = cfg.Admin.Listen
		if token == "" {
			token = string(cfg.Admin.Token)
		}
	}
	if base == "" {
		base = config.DefaultAdminListen
	}
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	return &adminClient{base: strings.TrimRight(base, "/"), token: token, hc: &http.Client{Timeout: 35 * time.Second}}, nil
}

type adminClient struct {
	base  string
	token string
	hc    *http.Client
}

func (a *adminClient) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return err
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return fmt.Errorf("admin API at %s: %w (is `replicaof serve` running?)", a.base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s %s: %s", method, path, e.Error)
		}
		return fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

func (a *adminClient) status(ctx context.Context) (admin.StatusView, error) {
	var st admin.StatusView
	err := a.do(ctx, "GET", "/v1/status", nil, &st)
	return st, err
}

func (a *adminClient) sources(ctx context.Context) ([]string, error) {
	var b admin.SourcesBody
	err := a.do(ctx, "GET", "/v1/sources", nil, &b)
	return b.Sources, err
}
