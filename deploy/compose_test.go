package deploy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/tidemark-dev/tidemark/app"
	"github.com/tidemark-dev/tidemark/app/config"
	"github.com/tidemark-dev/tidemark/devstack"
	"github.com/tidemark-dev/tidemark/eventcenter/hbase"
	"github.com/tidemark-dev/tidemark/examples/credit"
	"github.com/tidemark-dev/tidemark/source"
)

// root is the repository's root, seen from this package's folder.
const root = ".."

// harnessServices are the services of scripts/services; each is a service
// of the same name in docker-compose.yml.
var harnessServices = []string{"mariadb", "rabbitmq", "kafka", "hbase", "s3"}

// tidemarkImage is the image of the tidemark processes, built from ./Dockerfile.
const tidemarkImage = "tidemark:dev"

type composeFile struct {
	Services map[string]service `json:"services"`
	Configs  map[string]struct {
		File    string `json:"file"`
		Content string `json:"content"`
	} `json:"configs"`
}

type service struct {
	Image string `json:"image"`
	Build *struct {
		Context    string `json:"context"`
		Dockerfile string `json:"dockerfile"`
	} `json:"build"`
	Hostname    string            `json:"hostname"`
	Command     []string          `json:"command"`
	Environment map[string]string `json:"environment"`
	Ports       []string          `json:"ports"`
	Configs     []struct {
		Source string `json:"source"`
		Target string `json:"target"`
	} `json:"configs"`
}

// TestComposeMatchesHarness checks docker-compose.yml (and the Dockerfiles
// it builds) against the harness's sources of truth, because no Docker
// engine runs here to try it: a version, port, option or variable changed
// on one side only fails here.
func TestComposeMatchesHarness(t *testing.T) {
	var c composeFile
	if err := yaml.Unmarshal(read(t, "docker-compose.yml"), &c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	svc := func(t *testing.T, name string) service {
		s, ok := c.Services[name]
		if !ok {
			t.Fatalf("docker-compose.yml has no service %q", name)
		}
		return s
	}
	exports := map[string]map[string]string{} // harness service → its *_env exports
	for _, n := range harnessServices {
		exports[n] = parseExports(t, bash(t, fmt.Sprintf("source scripts/services.d/%s.sh; %s_env", n, n)))
	}
	goMod := parseGoMod(t, read(t, "go.mod"))

	t.Run("versions", func(t *testing.T) {
		check := func(service, want string) {
			if got := svc(t, service).Image; got != want {
				t.Errorf("service %s: image %q, want %q", service, got, want)
			}
		}
		check("kafka", "apache/kafka:"+pomProperty(t, "scripts/java/kafka/pom.xml", "kafka.version"))
		check("hbase", "tidemark/hbase:"+pomProperty(t, "scripts/java/hbase/pom.xml", "hbase.version"))
		check("s3", "versity/versitygw:"+bash(t, "source scripts/services.d/s3.sh; echo $S3_VERSITYGW_VERSION"))
		temporal := strings.TrimPrefix(goMod["go.temporal.io/server"], "v")
		check("temporal", "temporalio/server:"+temporal)
		check("temporal-schema", "temporalio/admin-tools:"+temporal)
		check("temporal-namespace", "temporalio/admin-tools:"+temporal)
		check("temporal-ui", "temporalio/ui:"+strings.TrimPrefix(goMod["github.com/temporalio/ui-server/v2"], "v"))
		// MariaDB and RabbitMQ come from Debian's packages: the images
		// carry their major.minor (checked where the harness installed them).
		for service, pkg := range map[string]string{"mariadb": "mariadb-server", "rabbitmq": "rabbitmq-server"} {
			image := svc(t, service).Image
			if !regexp.MustCompile(`^` + service + `:\d+\.\d+$`).MatchString(image) {
				t.Errorf("service %s: image %q, want %s:MAJOR.MINOR", service, image, service)
				continue
			}
			v, ok := debianVersion(pkg)
			if !ok {
				t.Logf("%s is not installed here: %s's version not compared", pkg, image)
				continue
			}
			if want := service + ":" + v; image != want {
				t.Errorf("service %s: image %q, but the harness runs %s %s: want %q", service, image, pkg, v, want)
			}
		}
		if want := "FROM golang:" + goMod["go"] + "-"; !bytes.Contains(read(t, "Dockerfile"), []byte(want)) {
			t.Errorf("Dockerfile: no %q (go.mod's go version)", want)
		}
		hb := svc(t, "hbase")
		if hb.Build == nil || hb.Build.Context != "." || hb.Build.Dockerfile != "deploy/hbase/Dockerfile" {
			t.Errorf("service hbase: build %+v, want context . and deploy/hbase/Dockerfile", hb.Build)
		}
		// The HBase image has no version of its own: it resolves the
		// harness's POM, so its tag is the POM's version.
		df := string(read(t, "deploy/hbase/Dockerfile"))
		for _, want := range []string{"scripts/java/hbase/pom.xml", "scripts/java/maven-settings.xml", "dependency:copy-dependencies",
			"COPY scripts/java/hbase/log4j2.properties"} {
			if !strings.Contains(df, want) {
				t.Errorf("deploy/hbase/Dockerfile: no %q", want)
			}
		}
	})

	t.Run("ports", func(t *testing.T) {
		// Every address a harness service exports is published on the
		// same port of 127.0.0.1.
		for n, vars := range exports {
			for k, v := range vars {
				for _, m := range regexp.MustCompile(`127\.0\.0\.1:(\d+)`).FindAllStringSubmatch(v, -1) {
					if !publishes(svc(t, n), m[1]) {
						t.Errorf("service %s does not publish 127.0.0.1:%s (scripts/services.d/%s.sh: %s=%s)", n, m[1], n, k, v)
					}
				}
			}
		}
		// HBase's clients also dial the master and the region server.
		site := hbaseSite(t, "scripts/java/hbase/hbase-site.xml.in")
		for _, p := range []string{site["hbase.master.port"], site["hbase.regionserver.port"]} {
			if !publishes(svc(t, "hbase"), p) {
				t.Errorf("service hbase does not publish 127.0.0.1:%s (scripts/java/hbase/hbase-site.xml.in)", p)
			}
		}
		port := portOf(t, config.DefaultTemporalAddress)
		if !publishes(svc(t, "temporal"), port) {
			t.Errorf("service temporal does not publish 127.0.0.1:%s (config.DefaultTemporalAddress)", port)
		}
		ui := devUIPort(t)
		if !publishes(svc(t, "temporal-ui"), ui) || svc(t, "temporal-ui").Environment["TEMPORAL_UI_PORT"] != ui {
			t.Errorf("service temporal-ui: want TEMPORAL_UI_PORT=%s published on 127.0.0.1:%s, as `tidemark dev` serves the UI", ui, ui)
		}
	})

	t.Run("variables", func(t *testing.T) {
		known := appVariables(t)
		procs := tidemarkServices(c)
		if len(procs) == 0 {
			t.Fatalf("no service runs image %s", tidemarkImage)
		}
		for name, s := range procs {
			for k := range s.Environment {
				if !known[k] {
					t.Errorf("service %s: $%s is not a variable the app reads", name, k)
				}
			}
			// The harness's variables that the app reads, pointing at
			// the compose service of the same name.
			for n, vars := range exports {
				for k, v := range vars {
					if !known[k] {
						continue
					}
					if want := strings.ReplaceAll(v, "127.0.0.1", n); s.Environment[k] != want {
						t.Errorf("service %s: $%s=%q, want %q (scripts/services.d/%s.sh exports %s)", name, k, s.Environment[k], want, n, v)
					}
				}
			}
			if want := "temporal:" + portOf(t, config.DefaultTemporalAddress); s.Environment["TIDEMARK_TEMPORAL_ADDRESS"] != want {
				t.Errorf("service %s: $TIDEMARK_TEMPORAL_ADDRESS=%q, want %q", name, s.Environment["TIDEMARK_TEMPORAL_ADDRESS"], want)
			}
		}
	})

	t.Run("mariadb", func(t *testing.T) {
		// The server options of the harness's my.cnf, but those of its
		// folders and of its listening address.
		local := map[string]bool{"datadir": true, "socket": true, "pid_file": true, "tmpdir": true, "port": true, "bind_address": true}
		var want []string
		cnf := bash(t, `mkdir -p "$SVC_DIR/mariadb" && source scripts/services.d/mariadb.sh && _mariadb_write_cnf && cat "$SVC_DIR/mariadb/my.cnf"`)
		for _, line := range strings.Split(cnf, "\n") {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "[") {
				continue
			}
			if k, _, _ := strings.Cut(line, "="); !local[mysqlOption(k)] {
				want = append(want, mysqlOption(line))
			}
		}
		var got []string
		for _, a := range svc(t, "mariadb").Command {
			got = append(got, mysqlOption(strings.TrimPrefix(a, "--")))
		}
		slices.Sort(want)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("service mariadb: server options\n%v\nwant (scripts/services.d/mariadb.sh)\n%v", got, want)
		}
		sh := string(read(t, "scripts/services.d/mariadb.sh"))
		_, after, ok1 := strings.Cut(sh, "<<'SQL'\n")
		sql, _, ok2 := strings.Cut(after, "\nSQL\n")
		if !ok1 || !ok2 {
			t.Fatal("scripts/services.d/mariadb.sh: no <<'SQL' … SQL block")
		}
		if got := strings.TrimSpace(c.Configs["mariadb-init"].Content); got != strings.TrimSpace(sql) {
			t.Errorf("config mariadb-init:\n%s\nwant the SQL of scripts/services.d/mariadb.sh:\n%s", got, sql)
		}
	})

	t.Run("kafka", func(t *testing.T) {
		// apache/kafka turns KAFKA_A_B into the broker setting a.b; the
		// listeners are the container's own.
		own := map[string]bool{"listeners": true, "advertised.listeners": true, "listener.security.protocol.map": true, "log.dirs": true}
		env := svc(t, "kafka").Environment
		want := map[string]bool{}
		for _, line := range strings.Split(string(read(t, "scripts/java/kafka/server.properties.in")), "\n") {
			k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
			if !ok || strings.HasPrefix(k, "#") {
				continue
			}
			name := kafkaEnv(k)
			want[name] = true
			if !own[k] && env[name] != v {
				t.Errorf("service kafka: $%s=%q, want %q (%s in scripts/java/kafka/server.properties.in)", name, env[name], v, k)
			}
		}
		for name := range env {
			if strings.HasPrefix(name, "KAFKA_") && !want[name] {
				t.Errorf("service kafka: $%s is not a setting of scripts/java/kafka/server.properties.in", name)
			}
		}
		adv := env["KAFKA_ADVERTISED_LISTENERS"]
		if host := exports["kafka"]["TIDEMARK_KAFKA_BROKERS"]; !strings.Contains(adv, "//"+host) || !strings.Contains(adv, "//"+strings.ReplaceAll(host, "127.0.0.1", "kafka")) {
			t.Errorf("service kafka: advertised listeners %q, want one for the host (%s) and one for the containers", adv, host)
		}
	})

	t.Run("hbase", func(t *testing.T) {
		// The JVM of deploy/hbase/Dockerfile is started as hbase.sh
		// starts it: its flags in order, the standalone master.
		args := dockerEntrypoint(t, "deploy/hbase/Dockerfile")
		for _, flags := range [][]string{
			strings.Fields(bash(t, `source scripts/services.d/hbase.sh; echo -Dproc_master $HBASE_HEAP_OPTS -XX:+UseG1GC`)),
			strings.Split(bash(t, `source scripts/services.d/hbase.sh; printf '%s\n' "${HBASE_JDK17_OPTS[@]}"`), "\n"),
		} {
			if args[0] != "java" || !contains(args, flags) {
				t.Errorf("deploy/hbase/Dockerfile: ENTRYPOINT %q lacks the flags of scripts/services.d/hbase.sh %q", args, flags)
			}
		}
		if !slices.Equal(args[len(args)-2:], []string{"org.apache.hadoop.hbase.master.HMaster", "start"}) {
			t.Errorf("deploy/hbase/Dockerfile: ENTRYPOINT %q does not start the standalone master", args)
		}
		// hbase-site.xml: the template's, but paths and addresses.
		container := map[string]string{
			"hbase.master.hostname": "hbase", "hbase.regionserver.hostname": "hbase",
			"hbase.master.ipc.address": "0.0.0.0", "hbase.regionserver.ipc.address": "0.0.0.0",
			"hbase.zookeeper.property.clientPortAddress": "0.0.0.0",
		}
		tmpl, site := hbaseSite(t, "scripts/java/hbase/hbase-site.xml.in"), hbaseSite(t, "deploy/hbase/hbase-site.xml")
		for k, v := range tmpl {
			if w, ok := container[k]; ok {
				v = w
			} else if strings.Contains(v, "@DIR@") {
				continue
			}
			if site[k] != v {
				t.Errorf("deploy/hbase/hbase-site.xml: %s = %q, want %q", k, site[k], v)
			}
		}
		for k := range site {
			if _, ok := tmpl[k]; !ok && container[k] == "" {
				t.Errorf("deploy/hbase/hbase-site.xml: %s is not in scripts/java/hbase/hbase-site.xml.in", k)
			}
		}
		if h := svc(t, "hbase").Hostname; h != site["hbase.master.hostname"] {
			t.Errorf("service hbase: host name %q, but HBase registers as %q", h, site["hbase.master.hostname"])
		}
	})

	t.Run("s3", func(t *testing.T) {
		vals := strings.Fields(bash(t, "source scripts/services.d/s3.sh; echo $S3_ACCESS $S3_SECRET $S3_REGION $S3_BUCKET"))
		access, secret, region, bucket := vals[0], vals[1], vals[2], vals[3]
		cmd := strings.Join(svc(t, "s3").Command, " ")
		_, port, _ := strings.Cut(strings.TrimPrefix(exports["s3"]["TIDEMARK_S3_ENDPOINT"], "http://127.0.0.1"), ":")
		for _, want := range []string{"--access " + access, "--secret " + secret, "--region " + region, "--port :" + port, "posix "} {
			if !strings.Contains(cmd, want) {
				t.Errorf("service s3: command %q lacks %q (scripts/services.d/s3.sh)", cmd, want)
			}
		}
		init := strings.Join(svc(t, "s3-init").Command, " ")
		for _, want := range []string{access + ":" + secret, "aws:amz:" + region + ":s3", "http://s3:" + port + "/" + bucket} {
			if !strings.Contains(init, want) {
				t.Errorf("service s3-init: command lacks %q", want)
			}
		}
	})

	t.Run("sources", func(t *testing.T) {
		var target string
		for _, cf := range svc(t, "cdc").Configs {
			if cf.Source == "sources" {
				target = cf.Target
			}
		}
		if target == "" || svc(t, "cdc").Environment["TIDEMARK_SOURCES"] != target {
			t.Errorf("the tidemark services' $TIDEMARK_SOURCES %q is not where config sources is mounted (%q)",
				svc(t, "cdc").Environment["TIDEMARK_SOURCES"], target)
		}
		file := c.Configs["sources"].File
		reg, err := source.Load(filepath.Join(root, file))
		if err != nil {
			t.Fatal(err)
		}
		if want := devstack.DemoSources(); !reflect.DeepEqual(reg, want) {
			t.Errorf("%s:\n%+v\nwant the example's sources (devstack.DemoSources):\n%+v", file, reg.Sources, want.Sources)
		}
	})

	t.Run("commands", func(t *testing.T) {
		// The topology: each part its own process, the scalable ones twice.
		count := map[string]int{}
		for name, s := range tidemarkServices(c) {
			if len(s.Command) == 0 {
				t.Errorf("service %s: no command", name)
				continue
			}
			count[s.Command[0]]++
			var stderr bytes.Buffer
			args := append(slices.Clone(s.Command), "--help")
			if code := app.Run(context.Background(), args, io.Discard, &stderr, app.Name("tidemark"), app.Jobs(credit.New), app.Indexes(credit.Indexes()...)); code != app.ExitOK {
				t.Errorf("service %s: tidemark %s: exit %d: %s", name, strings.Join(s.Command, " "), code, stderr.String())
			}
			if s.Command[0] == "live" {
				if i := slices.Index(s.Command, "--job"); i < 0 || s.Command[i+1] != credit.Name {
					t.Errorf("service %s: want --job %s", name, credit.Name)
				}
			}
		}
		if want := map[string]int{"config": 1, "cdc": 1, "forward": 1, "ingest": 2, "live": 2, "worker": 2}; !reflect.DeepEqual(count, want) {
			t.Errorf("tidemark processes by command: %v, want %v", count, want)
		}
	})
}

func read(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, path))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// bash runs script in the repository's root with the variables the
// scripts/services driver gives a services.d file, and returns its trimmed
// output. The services.d files are sourced, not run: nothing starts.
func bash(t *testing.T, script string) string {
	t.Helper()
	abs, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = abs
	// Only what the files need: a variable of the caller's (such as
	// TIDEMARK_VERSITYGW_VERSION) must not stand in for a file's default.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "REPO=" + abs, "SVC_DIR=" + dir, "SVC_CACHE=" + dir}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("bash -c %q: %v: %s", script, err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// parseExports reads `export K=V` lines.
func parseExports(t *testing.T, s string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(strings.TrimPrefix(strings.TrimSpace(line), "export "), "=")
		if !ok || !strings.HasPrefix(k, "TIDEMARK_") {
			t.Fatalf("not an export of a TIDEMARK_ variable: %q", line)
		}
		m[k] = v
	}
	return m
}

// parseGoMod returns the versions go.mod requires, and under "go" its Go
// version.
func parseGoMod(t *testing.T, b []byte) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(line), "require "))
		if len(f) >= 2 && (f[0] == "go" || strings.HasPrefix(f[1], "v")) {
			m[f[0]] = f[1]
		}
	}
	if m["go"] == "" || m["go.temporal.io/server"] == "" {
		t.Fatal("go.mod: no go version or go.temporal.io/server")
	}
	return m
}

// pomProperty returns a property of a pom.xml.
func pomProperty(t *testing.T, path, name string) string {
	t.Helper()
	var pom struct {
		Properties struct {
			Any []struct {
				XMLName xml.Name
				Value   string `xml:",chardata"`
			} `xml:",any"`
		} `xml:"properties"`
	}
	if err := xml.Unmarshal(read(t, path), &pom); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	for _, p := range pom.Properties.Any {
		if p.XMLName.Local == name {
			return strings.TrimSpace(p.Value)
		}
	}
	t.Fatalf("%s: no property %s", path, name)
	return ""
}

// hbaseSite returns the properties of an hbase-site.xml.
func hbaseSite(t *testing.T, path string) map[string]string {
	t.Helper()
	var site struct {
		Property []struct {
			Name  string `xml:"name"`
			Value string `xml:"value"`
		} `xml:"property"`
	}
	if err := xml.Unmarshal(read(t, path), &site); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	m := map[string]string{}
	for _, p := range site.Property {
		m[p.Name] = p.Value
	}
	return m
}

// debianVersion returns the MAJOR.MINOR of an installed Debian package.
func debianVersion(pkg string) (string, bool) {
	out, err := exec.Command("dpkg-query", "-W", "-f=${Status} ${Version}", pkg).Output()
	if err != nil || !strings.HasPrefix(string(out), "install ok installed ") {
		return "", false
	}
	v := strings.TrimPrefix(string(out), "install ok installed ")
	if _, after, ok := strings.Cut(v, ":"); ok { // the epoch
		v = after
	}
	m := regexp.MustCompile(`^\d+\.\d+`).FindString(v)
	return m, m != ""
}

// publishes reports whether s publishes its port on 127.0.0.1:port.
func publishes(s service, port string) bool {
	return slices.ContainsFunc(s.Ports, func(p string) bool { return strings.HasPrefix(p, "127.0.0.1:"+port+":") })
}

// devUIPort is the port of the Web UI of `tidemark dev`.
func devUIPort(t *testing.T) string {
	t.Helper()
	m := regexp.MustCompile(`c\.UIAddr = "127\.0\.0\.1:(\d+)"`).FindSubmatch(read(t, "internal/devtemporal/devtemporal.go"))
	if m == nil {
		t.Fatal("internal/devtemporal/devtemporal.go: no default UIAddr")
	}
	return string(m[1])
}

// appVariables are the environment variables the tidemark binary reads:
// those of its configuration, those of single commands (envOr in app/),
// and the HBase quorum of an hbase:///NAMESPACE store.
func appVariables(t *testing.T) map[string]bool {
	t.Helper()
	known := map[string]bool{hbase.EnvZooKeeper: true}
	for _, v := range config.Env() {
		known[v] = true
	}
	files, err := filepath.Glob(filepath.Join(root, "app", "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range regexp.MustCompile(`envOr\("(TIDEMARK_[A-Z0-9_]+)"`).FindAllSubmatch(b, -1) {
			known[string(m[1])] = true
		}
	}
	return known
}

// tidemarkServices are the services running the tidemark image.
func tidemarkServices(c composeFile) map[string]service {
	m := map[string]service{}
	for name, s := range c.Services {
		if s.Image == tidemarkImage {
			m[name] = s
		}
	}
	return m
}

// dockerEntrypoint returns the exec-form ENTRYPOINT of a Dockerfile.
func dockerEntrypoint(t *testing.T, path string) []string {
	t.Helper()
	df := strings.ReplaceAll(string(read(t, path)), "\\\n", "")
	for _, line := range strings.Split(df, "\n") {
		if rest, ok := strings.CutPrefix(line, "ENTRYPOINT "); ok {
			var args []string
			if err := json.Unmarshal([]byte(rest), &args); err != nil || len(args) < 3 {
				t.Fatalf("%s: ENTRYPOINT %s: not an exec form (%v)", path, rest, err)
			}
			return args
		}
	}
	t.Fatalf("%s: no ENTRYPOINT", path)
	return nil
}

// contains reports whether sub is a contiguous part of s.
func contains(s, sub []string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if slices.Equal(s[i:i+len(sub)], sub) {
			return true
		}
	}
	return false
}

// mysqlOption is a server option with '-' and '_' made one ("a-b=c" and
// "a_b=c" are the same option).
func mysqlOption(s string) string {
	k, v, ok := strings.Cut(s, "=")
	k = strings.ReplaceAll(strings.TrimSpace(k), "-", "_")
	if !ok {
		return k
	}
	return k + "=" + strings.TrimSpace(v)
}

// kafkaEnv is the apache/kafka image's variable of a broker setting.
func kafkaEnv(key string) string {
	r := strings.NewReplacer("-", "___", "_", "__", ".", "_")
	return "KAFKA_" + strings.ToUpper(r.Replace(key))
}

// portOf is the port of a host:port address.
func portOf(t *testing.T, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return port
}
