package deps
import (
 _ "github.com/cockroachdb/pebble/v2"
 _ "go.temporal.io/sdk/client"
 _ "go.temporal.io/server/temporaltest"
 _ "github.com/twmb/franz-go/pkg/kgo"
 _ "github.com/twmb/franz-go/pkg/kfake"
 _ "github.com/tsuna/gohbase"
 _ "github.com/go-mysql-org/go-mysql/canal"
 _ "github.com/rabbitmq/amqp091-go"
 _ "github.com/aws/aws-sdk-go-v2/service/s3"
 _ "github.com/aws/aws-sdk-go-v2/config"
)
