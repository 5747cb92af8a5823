package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/replicaof/replicaof/config"
)

// The docker-compose file and the replicaof configs it mounts stay
// consistent: every file a service mounts exists, and every replicaof
// config under deploy/compose loads.
func TestComposeConfigs(t *testing.T) {
	root := filepath.Join("..", "..")
	b, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Profiles []string `yaml:"profiles"`
			Volumes  []string `yaml:"volumes"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &compose); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	mounted := map[string]bool{}
	for name, s := range compose.Services {
		for _, v := range s.Volumes {
			host, _, _ := strings.Cut(v, ":")
			if !strings.HasPrefix(host, "./") {
				continue
			}
			if _, err := os.Stat(filepath.Join(root, host)); err != nil {
				t.Errorf("service %s mounts %s: %v", name, host, err)
			}
			mounted[filepath.Clean(host)] = true
		}
	}
	if _, ok := compose.Services["replicaof-cluster"]; !ok {
		t.Error("docker-compose.yml has no replicaof-cluster service (profile cluster)")
	}
	files, err := filepath.Glob(filepath.Join(root, "deploy", "compose", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no configs under deploy/compose: %v", err)
	}
	for _, f := range files {
		if _, err := config.Load(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
		rel, _ := filepath.Rel(root, f)
		if !mounted[rel] {
			t.Errorf("%s is mounted by no service of docker-compose.yml", rel)
		}
	}
}
