package config

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"go.temporal.io/sdk/client"
)

// TemporalOptions are the client.Options of t: address, namespace, TLS
// (mTLS with Cert and Key) and API key. The caller adds its logger and
// metrics handler.
func (t Temporal) TemporalOptions() (client.Options, error) {
	o := client.Options{HostPort: t.Address, Namespace: t.Namespace}
	if t.TLS.On() {
		cfg := &tls.Config{ServerName: t.TLS.ServerName, MinVersion: tls.VersionTLS12}
		if t.TLS.Cert != "" {
			cert, err := tls.LoadX509KeyPair(t.TLS.Cert, t.TLS.Key)
			if err != nil {
				return o, fmt.Errorf("config: temporal.tls: %w", err)
			}
			cfg.Certificates = []tls.Certificate{cert}
		}
		if t.TLS.CA != "" {
			pem, err := os.ReadFile(t.TLS.CA)
			if err != nil {
				return o, fmt.Errorf("config: temporal.tls.ca: %w", err)
			}
			cfg.RootCAs = x509.NewCertPool()
			if !cfg.RootCAs.AppendCertsFromPEM(pem) {
				return o, fmt.Errorf("config: temporal.tls.ca: no PEM certificate in %s", t.TLS.CA)
			}
		}
		o.ConnectionOptions.TLS = cfg
	}
	if t.APIKey != "" {
		o.Credentials = client.NewAPIKeyStaticCredentials(t.APIKey)
	}
	return o, nil
}

// S3Client builds the S3 client of s: the AWS default configuration
// (credential chain, region) with s's endpoint (path-style), region and
// static keys on top. It does not contact S3.
func (s S3) S3Client(ctx context.Context) (*s3.Client, error) {
	var opts []func(*awsconfig.LoadOptions) error
	if s.Region != "" {
		opts = append(opts, awsconfig.WithRegion(s.Region))
	}
	if s.AccessKey != "" {
		opts = append(opts, awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, "")))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("config: s3: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = DefaultS3Region
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		if s.Endpoint != "" {
			o.BaseEndpoint = aws.String(s.Endpoint)
			o.UsePathStyle = true
		}
	}), nil
}
