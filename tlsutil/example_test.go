package tlsutil_test

import (
	"crypto/tls"
	"fmt"
	"os"

	"github.com/replicaof/replicaof/tlsutil"
)

func ExampleGenerateDemo() {
	dir, err := os.MkdirTemp("", "certs")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	files, err := tlsutil.GenerateDemo(dir, []string{"redis.local"})
	if err != nil {
		fmt.Println(err)
		return
	}
	cli, err := tlsutil.ClientConfig("redis.local:6379", tlsutil.ClientOptions{
		CAFile: files.CA, CertFile: files.SyncerCert, KeyFile: files.SyncerKey,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(cli.ServerName, tls.VersionName(cli.MinVersion), len(cli.Certificates))
	// Output: redis.local TLS 1.2 1
}
