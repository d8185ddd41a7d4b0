package config

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	"go.temporal.io/sdk/client"
)

// TemporalOptions are the client.Options of t: address, namespace, TLS
// (mTLS with Cert and Key) and API key. The caller adds its logger and
// metrics handler.
func (t Temporal) TemporalOptions() (client.Options, error) {
	o := client.Options{HostPort: t.Address, Namespace: t.Namespace}
	if t.TLS.On() {
		cfg, err := t.TLS.config("temporal.tls")
		if err != nil {
			return o, err
		}
		o.ConnectionOptions.TLS = cfg
	}
	if t.APIKey != "" {
		o.Credentials = client.NewAPIKeyStaticCredentials(t.APIKey)
	}
	return o, nil
}

// config returns the tls.Config of t; key names t in errors.
func (t TLS) config(key string) (*tls.Config, error) {
	cfg := &tls.Config{ServerName: t.ServerName, MinVersion: tls.VersionTLS12}
	if t.Cert != "" {
		cert, err := tls.LoadX509KeyPair(t.Cert, t.Key)
		if err != nil {
			return nil, fmt.Errorf("config: %s: %w", key, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	if t.CA != "" {
		pem, err := os.ReadFile(t.CA)
		if err != nil {
			return nil, fmt.Errorf("config: %s.ca: %w", key, err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("config: %s.ca: no PEM certificate in %s", key, t.CA)
		}
	}
	return cfg, nil
}

// KafkaOptions are the kgo options of k beyond the seed brokers: TLS
// (kgo.DialTLSConfig) and SASL. Every Kafka client of a process adds them.
// A TLS file that cannot be read, or a SASL setting Validate refuses, is an
// error naming the key.
func (k Kafka) KafkaOptions() ([]kgo.Opt, error) {
	var opts []kgo.Opt
	if k.TLS.On() {
		cfg, err := k.TLS.config("kafka.tls")
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(cfg))
	}
	if err := k.SASL.validate(); err != nil {
		return nil, err
	}
	switch strings.ToUpper(k.SASL.Mechanism) {
	case SASLPlain:
		opts = append(opts, kgo.SASL(plain.Auth{User: k.SASL.User, Pass: k.SASL.Password}.AsMechanism()))
	case SASLScramSHA256:
		opts = append(opts, kgo.SASL(scram.Auth{User: k.SASL.User, Pass: k.SASL.Password}.AsSha256Mechanism()))
	case SASLScramSHA512:
		opts = append(opts, kgo.SASL(scram.Auth{User: k.SASL.User, Pass: k.SASL.Password}.AsSha512Mechanism()))
	}
	return opts, nil
}

// ClientOptions are the kgo options of a client of k: the seed brokers,
// then KafkaOptions.
func (k Kafka) ClientOptions() ([]kgo.Opt, error) {
	opts, err := k.KafkaOptions()
	if err != nil {
		return nil, err
	}
	return append([]kgo.Opt{kgo.SeedBrokers(k.Brokers...)}, opts...), nil
}

// validate checks the mechanism and that it has a user and password.
func (s SASL) validate() error {
	switch m := strings.ToUpper(s.Mechanism); {
	case m == "" && (s.User != "" || s.Password != ""):
		return errors.New("config: kafka.sasl.user and kafka.sasl.password need kafka.sasl.mechanism (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)")
	case m == "":
		return nil
	case m != SASLPlain && m != SASLScramSHA256 && m != SASLScramSHA512:
		return fmt.Errorf("config: kafka.sasl.mechanism %q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", s.Mechanism)
	case s.User == "" || s.Password == "":
		return fmt.Errorf("config: kafka.sasl.mechanism %s needs kafka.sasl.user and kafka.sasl.password", m)
	}
	return nil
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
