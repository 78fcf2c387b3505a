package deploycheck

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/evothesis/collector/config"
)

func TestEveryDeploymentFileParses(t *testing.T) {
	var files []string
	err := filepath.WalkDir(repoPath(t, "deploy"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch strings.ToLower(filepath.Ext(p)) {
		case ".yml", ".yaml", ".json":
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, repoPath(t, "docker-compose.yml"))
	if len(files) < 10 {
		t.Fatalf("found only %d YAML/JSON files under deploy/: %v", len(files), files)
	}
	for _, f := range files {
		rel, _ := filepath.Rel(root(t), f)
		t.Run(rel, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasSuffix(f, ".json") {
				dec := json.NewDecoder(bytes.NewReader(data))
				var v any
				if err := dec.Decode(&v); err != nil {
					t.Fatal(err)
				}
				if dec.More() {
					t.Fatal("trailing data after the JSON value")
				}
				return
			}
			// Multi-document YAML (Kubernetes manifests): every document.
			dec := yaml.NewDecoder(bytes.NewReader(data))
			docs := 0
			for {
				var v any
				err := dec.Decode(&v)
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatalf("document %d: %v", docs+1, err)
				}
				if v != nil {
					docs++
				}
			}
			if docs == 0 {
				t.Fatal("no YAML document")
			}
		})
	}
	if _, err := parseDotenv(strings.NewReader(readRepoFile(t, ".env.example"))); err != nil {
		t.Fatalf(".env.example: %v", err)
	}
}

func TestEnvExampleListsEverySettingAndNothingUnknown(t *testing.T) {
	example, entries := envExample(t)
	for _, v := range config.Vars() {
		if _, ok := example[v.Env]; !ok {
			t.Errorf(".env.example does not list %s (default %q: %s)", v.Env, v.Default, v.Help)
		}
	}
	// A key that is not a collector setting must be one the stack's other
	// services read.
	lc := devCompose(t)
	collectors := collectorServices(t, lc)
	otherServiceVars := map[string]bool{}
	collectorVars := map[string]bool{}
	for path, refs := range lc.Refs {
		svc := strings.Split(path, ".")
		for _, r := range refs {
			if len(svc) > 1 && svc[0] == "services" && contains(collectors, svc[1]) {
				collectorVars[r.Name] = true
			} else {
				otherServiceVars[r.Name] = true
			}
		}
	}
	for _, e := range entries {
		if !config.Known(e.Key) && !otherServiceVars[e.Key] {
			t.Errorf(".env.example line %d: %s is neither a collector setting nor read by another service of docker-compose.yml", e.Line, e.Key)
		}
	}
	// Every setting listed must take effect: the collector's service reads it
	// from the environment, or fixes it to the same value (and says so).
	for _, name := range collectors {
		env, err := lc.File.Services[name].environment()
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if !config.Known(e.Key) || collectorVars[e.Key] {
				continue
			}
			fixed, ok := env[e.Key]
			switch {
			case !ok:
				t.Errorf(".env.example line %d: setting %s in .env would do nothing: service %s neither reads it nor sets it", e.Line, e.Key, name)
			case fixed != e.Value:
				t.Errorf(".env.example line %d: %s=%q, but service %s fixes it to %q", e.Line, e.Key, e.Value, name, fixed)
			case !strings.Contains(lineBefore(t, ".env.example", e.Line), "fixed"):
				t.Errorf(".env.example line %d: %s is fixed by docker-compose.yml; its comment must say so", e.Line, e.Key)
			}
		}
	}
}

// lineBefore returns the comment line just above line n of a file.
func lineBefore(t *testing.T, rel string, n int) string {
	lines := strings.Split(readRepoFile(t, rel), "\n")
	if n-2 < 0 || n-2 >= len(lines) {
		return ""
	}
	return lines[n-2]
}

func TestDevComposeRunsWithoutDotenvAndEnvExampleChangesNothing(t *testing.T) {
	example, _ := envExample(t)
	bare := devCompose(t)
	withExample, err := loadCompose(repoPath(t, "docker-compose.yml"), example)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(bare.Resolved, withExample.Resolved) {
		for path, v := range bare.Resolved {
			if w := withExample.Resolved[path]; v != w {
				t.Errorf("%s: %q without .env, %q with .env.example copied to .env; make the compose default equal the example", path, v, w)
			}
		}
	}
	for path, refs := range bare.Refs {
		for _, r := range refs {
			if _, ok := example[r.Name]; !ok {
				t.Errorf("%s reads ${%s}, which .env.example does not document", path, r.Name)
			}
			if r.Required {
				t.Errorf("%s requires %s: the development stack must start without a .env", path, r.Name)
			}
		}
	}
}

func TestProdComposeRefusesToStartWithoutItsSecrets(t *testing.T) {
	_, err := loadCompose(repoPath(t, "deploy/docker-compose.prod.yml"), map[string]string{})
	if err == nil {
		t.Fatal("deploy/docker-compose.prod.yml interpolates with an empty environment: production would start with defaults for its database and secrets")
	}
	for _, name := range []string{"DATABASE_URL", "ADMIN_TOKEN", "CORS_ALLOWED_ORIGINS", "COLLECTOR_IMAGE"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("an empty environment should fail on %s (${%s:?...}): %v", name, name, err)
		}
	}
	lc := prodCompose(t)
	for path, refs := range lc.Refs {
		for _, r := range refs {
			if r.Required {
				if _, ok := prodSamples[r.Name]; !ok {
					t.Errorf("%s requires %s; add a sample value to prodSamples", path, r.Name)
				}
			}
		}
	}
}

// composeCase is what a compose file must look like around its collectors.
type composeCase struct {
	name       string
	load       func(*testing.T) *loadedCompose
	collectors int
	production bool
}

var composeCases = []composeCase{
	{"docker-compose.yml", devCompose, 1, false},
	{"deploy/docker-compose.prod.yml", prodCompose, 2, true},
}

func TestComposeCollectorsAgreeWithTheirConfiguration(t *testing.T) {
	binary := dockerBinaryPath(t)
	for _, cc := range composeCases {
		t.Run(cc.name, func(t *testing.T) {
			lc := cc.load(t)
			collectors := collectorServices(t, lc)
			if len(collectors) != cc.collectors {
				t.Fatalf("want %d collector services, found %v", cc.collectors, collectors)
			}
			nodeIDs := map[string]string{}
			walVolumes := map[string]string{}
			for _, name := range collectors {
				svc := lc.File.Services[name]
				cfg, env := serviceConfig(t, lc, name)
				port, err := listenPort(cfg.Addr)
				if err != nil {
					t.Fatal(err)
				}

				ports, err := svc.ports()
				if err != nil {
					t.Fatal(err)
				}
				if len(ports) == 0 {
					t.Errorf("%s: publishes no port", name)
				}
				for _, p := range ports {
					if p.Target != port {
						t.Errorf("%s: publishes container port %s, but COLLECTOR_ADDR=%s listens on %s", name, p.Target, cfg.Addr, port)
					}
					if cc.production && p.HostIP == "" {
						t.Errorf("%s: port %s is published on every host interface; bind it (metrics and admin endpoints are not for the internet)", name, p.Target)
					}
				}

				mounts, err := svc.volumes()
				if err != nil {
					t.Fatal(err)
				}
				walVol := checkOnNamedVolume(t, lc, name, "WAL_DIR", cfg.WALDir, mounts)
				checkOnNamedVolume(t, lc, name, "EXPORT_DIR", cfg.ExportDir, mounts)
				if prev, dup := walVolumes[walVol]; dup && walVol != "" {
					t.Errorf("%s and %s share the WAL volume %s: a WAL belongs to one node", prev, name, walVol)
				}
				walVolumes[walVol] = name
				if prev, dup := nodeIDs[cfg.NodeID]; dup {
					t.Errorf("%s and %s share NODE_ID %s: every node needs its own", prev, name, cfg.NodeID)
				}
				nodeIDs[cfg.NodeID] = name

				checkCollectorHealthcheck(t, name, svc.Healthcheck, binary)

				grace, err := time.ParseDuration(svc.StopGracePeriod)
				if err != nil {
					t.Errorf("%s: stop_grace_period %q: %v (the default 10s is shorter than SHUTDOWN_TIMEOUT)", name, svc.StopGracePeriod, err)
				} else if grace <= cfg.ShutdownTimeout {
					t.Errorf("%s: stop_grace_period %v must exceed SHUTDOWN_TIMEOUT %v, or Docker SIGKILLs a clean shutdown", name, grace, cfg.ShutdownTimeout)
				}
				if svc.StopSignal != "" && svc.StopSignal != "SIGTERM" {
					t.Errorf("%s: stop_signal %s; the collector shuts down gracefully on SIGTERM", name, svc.StopSignal)
				}
				switch svc.Restart {
				case "always", "unless-stopped", "on-failure":
				default:
					t.Errorf("%s: restart %q; want unless-stopped (or always / on-failure)", name, svc.Restart)
				}
				if svc.User == "root" || svc.User == "0" || strings.HasPrefix(svc.User, "0:") {
					t.Errorf("%s: runs as root", name)
				}
				if !svc.ReadOnly {
					t.Errorf("%s: read_only is not set; the collector writes only to its volume", name)
				}

				if cc.production {
					checkProductionCollector(t, lc, name, svc, cfg, env)
				}
			}
			checkDependencies(t, lc)
			checkProxy(t, lc, collectors)
			checkImagesPinned(t, lc)
		})
	}
}

// checkOnNamedVolume says which named volume holds dir, failing when none
// does: a directory in the container's own filesystem dies with it.
func checkOnNamedVolume(t *testing.T, lc *loadedCompose, svc, setting, dir string, mounts []volumeMount) string {
	t.Helper()
	for _, m := range mounts {
		if m.Type != "volume" || !underPath(dir, m.Target) {
			continue
		}
		if m.Source == "" {
			t.Errorf("%s: %s=%s is on an anonymous volume; name it so that it survives `docker compose down` and `up`", svc, setting, dir)
			return ""
		}
		if _, declared := lc.File.Volumes[m.Source]; !declared {
			t.Errorf("%s: volume %s is not declared under volumes:", svc, m.Source)
		}
		return m.Source
	}
	t.Errorf("%s: %s=%s is on no named volume (mounts: %+v): its data would be lost with the container", svc, setting, dir, mounts)
	return ""
}

func checkCollectorHealthcheck(t *testing.T, svc string, hc *composeHealthcheck, binary string) {
	t.Helper()
	if hc == nil || hc.Disable {
		t.Errorf("%s: no healthcheck", svc)
		return
	}
	test, err := nodeStrings(hc.Test)
	if err != nil {
		t.Fatal(err)
	}
	if len(test) < 3 || test[0] != "CMD" || test[1] != binary || test[2] != "health" {
		t.Errorf("%s: healthcheck %q; want [\"CMD\", %q, \"health\", ...] (the image has no shell or curl)", svc, test, binary)
		return
	}
	checkHealthTimeout(t, svc, test[3:], hc.Timeout)
}

// checkHealthTimeout: `collector health --timeout` must give up before the
// engine's healthcheck timeout, or a hung check is reported as the engine's
// timeout instead of the collector's answer.
func checkHealthTimeout(t *testing.T, where string, args []string, engineTimeout string) {
	t.Helper()
	outer, err := time.ParseDuration(engineTimeout)
	if err != nil {
		t.Errorf("%s: healthcheck timeout %q: %v", where, engineTimeout, err)
		return
	}
	inner := 3 * time.Second // runHealth's default
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, "--timeout="); ok {
			args = append(args[:i:i], "--timeout", v)
		}
	}
	for i := 0; i+1 < len(args); i++ {
		if args[i] == "--timeout" {
			if inner, err = time.ParseDuration(args[i+1]); err != nil {
				t.Errorf("%s: health --timeout %q: %v", where, args[i+1], err)
				return
			}
		}
	}
	if inner >= outer {
		t.Errorf("%s: `collector health` waits up to %v, not less than the healthcheck timeout %v", where, inner, outer)
	}
}

func checkProductionCollector(t *testing.T, lc *loadedCompose, name string, svc composeService, cfg config.Config, env map[string]string) {
	t.Helper()
	if cfg.Environment != "production" {
		t.Errorf("%s: ENVIRONMENT=%s", name, cfg.Environment)
	}
	if cfg.S3Endpoint != "" {
		t.Errorf("%s: S3_ENDPOINT=%s; production ships to real S3", name, cfg.S3Endpoint)
	}
	if cfg.WALSync != "always" {
		t.Errorf("%s: WAL_SYNC=%s; production acknowledges only after fsync", name, cfg.WALSync)
	}
	required := false
	for path, refs := range lc.Refs {
		if strings.HasSuffix(path, ".DATABASE_URL") {
			for _, r := range refs {
				required = required || (r.Name == "DATABASE_URL" && r.Required)
			}
		}
	}
	if !required {
		t.Errorf("%s: DATABASE_URL must be required (${DATABASE_URL:?...}): the database is external", name)
	}
	limit := svc.Deploy.Resources.Limits.Memory
	if limit == "" {
		t.Errorf("%s: no memory limit (deploy.resources.limits.memory)", name)
	} else {
		limitBytes, err := composeBytes(limit)
		if err != nil {
			t.Errorf("%s: memory limit %q: %v", name, limit, err)
		}
		soft, ok := env["GOMEMLIMIT"]
		if !ok {
			t.Errorf("%s: memory limit %s without GOMEMLIMIT: the Go runtime does not see the limit", name, limit)
		} else if softBytes, err := config.ParseBytes(soft); err != nil || softBytes >= limitBytes {
			t.Errorf("%s: GOMEMLIMIT=%s must be below the memory limit %s (%v)", name, soft, limit, err)
		}
	}
	if svc.Deploy.Replicas != nil && *svc.Deploy.Replicas > 1 {
		t.Errorf("%s: deploy.replicas %d: replicas of one service would share NODE_ID and fight over one WAL volume", name, *svc.Deploy.Replicas)
	}
	if cfg.SecretKeyFile != "" {
		targets, err := svc.secretTargets()
		if err != nil {
			t.Fatal(err)
		}
		if !contains(targets, cfg.SecretKeyFile) {
			t.Errorf("%s: COLLECTOR_SECRET_KEY_FILE=%s is not one of its secrets %v", name, cfg.SecretKeyFile, targets)
		}
	}
	for other, s := range lc.File.Services {
		for _, local := range []string{"postgres", "versity", "minio"} {
			if strings.Contains(s.Image, local) {
				t.Errorf("service %s runs %s: production uses a managed database and real S3", other, s.Image)
			}
		}
	}
}

// composeBytes reads a compose memory size: 512M, 1g, 256m, 1073741824.
func composeBytes(s string) (int64, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	s = strings.TrimSuffix(s, "b")
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "k"):
		mult, s = 1<<10, strings.TrimSuffix(s, "k")
	case strings.HasSuffix(s, "m"):
		mult, s = 1<<20, strings.TrimSuffix(s, "m")
	case strings.HasSuffix(s, "g"):
		mult, s = 1<<30, strings.TrimSuffix(s, "g")
	}
	n, err := config.ParseBytes(s)
	return n * mult, err
}

// checkDependencies: a service waits for what it depends on to be healthy
// (or, for one-shot services, to have finished), not merely started.
func checkDependencies(t *testing.T, lc *loadedCompose) {
	t.Helper()
	for name, svc := range lc.File.Services {
		deps, err := svc.dependsOn()
		if err != nil {
			t.Fatal(err)
		}
		oneShot := svc.Restart == "no"
		if svc.Healthcheck == nil && !oneShot {
			t.Errorf("%s: no healthcheck", name)
		}
		for dep, cond := range deps {
			target, ok := lc.File.Services[dep]
			if !ok {
				t.Errorf("%s depends on %s, which does not exist", name, dep)
				continue
			}
			want := "service_healthy"
			if target.Restart == "no" {
				want = "service_completed_successfully"
			}
			if cond != want {
				t.Errorf("%s depends on %s with condition %s; want %s", name, dep, cond, want)
			}
		}
	}
}

// checkProxy: nginx mounts deploy/nginx.conf, reaches every collector under
// its upstream's host name, and is the only peer whose forwarding headers the
// collectors believe.
func checkProxy(t *testing.T, lc *loadedCompose, collectors []string) {
	t.Helper()
	upstreamHosts, upstreamPorts := nginxUpstream(t)
	found := false
	for name, svc := range lc.File.Services {
		if !strings.HasPrefix(svc.Image, "nginx") {
			continue
		}
		found = true
		mounts, err := svc.volumes()
		if err != nil {
			t.Fatal(err)
		}
		mounted := false
		for _, m := range mounts {
			if m.Target == "/etc/nginx/nginx.conf" {
				mounted = true
				if m.Type != "bind" || !m.ReadOnly || !strings.HasSuffix(m.Source, "nginx.conf") {
					t.Errorf("%s: /etc/nginx/nginx.conf should be deploy/nginx.conf mounted read-only, got %+v", name, m)
				}
			}
		}
		if !mounted {
			t.Errorf("%s: does not mount deploy/nginx.conf", name)
		}
		proxyNets, err := svc.networks()
		if err != nil {
			t.Fatal(err)
		}
		deps, _ := svc.dependsOn()
		for _, c := range collectors {
			if _, ok := deps[c]; !ok {
				t.Errorf("%s does not depend on %s", name, c)
			}
			cfg, _ := serviceConfig(t, lc, c)
			port, _ := listenPort(cfg.Addr)
			if !contains(upstreamPorts, port) {
				t.Errorf("nginx.conf's upstream uses ports %v, but %s listens on %s", upstreamPorts, c, port)
			}
			cnets, err := lc.File.Services[c].networks()
			if err != nil {
				t.Fatal(err)
			}
			reachable := false
			for net, cn := range cnets {
				if _, shared := proxyNets[net]; !shared {
					continue
				}
				for _, h := range upstreamHosts {
					reachable = reachable || h == c || contains(cn.Aliases, h)
				}
				proxyAddr := proxyNets[net].IPv4Address
				if proxyAddr == "" {
					t.Errorf("%s: give it a fixed ipv4_address on %s, so %s can trust exactly it", name, net, c)
					continue
				}
				addr, err := netip.ParseAddr(proxyAddr)
				if err != nil {
					t.Fatalf("%s: ipv4_address %q: %v", name, proxyAddr, err)
				}
				trusted := false
				for _, p := range cfg.TrustedProxies {
					trusted = trusted || p.Contains(addr)
					if p.Bits() == 0 {
						t.Errorf("%s: TRUSTED_PROXIES contains %s: every peer could claim any client IP", c, p)
					}
				}
				if !trusted {
					t.Errorf("%s: TRUSTED_PROXIES=%v does not include nginx's address %s: every event would record nginx as the client", c, cfg.TrustedProxies, addr)
				}
				inSubnet := false
				for _, sub := range lc.File.Networks[net].IPAM.Config {
					if pfx, err := netip.ParsePrefix(sub.Subnet); err == nil && pfx.Contains(addr) {
						inSubnet = true
					}
				}
				if !inSubnet {
					t.Errorf("%s: ipv4_address %s is outside network %s's subnet", name, addr, net)
				}
			}
			if !reachable {
				t.Errorf("nginx.conf's upstream names %v, but %s is reachable from %s under none of them (service name or network alias)", upstreamHosts, c, name)
			}
		}
	}
	if !found {
		t.Error("no nginx service in front of the collectors")
	}
}

func checkImagesPinned(t *testing.T, lc *loadedCompose) {
	t.Helper()
	for name, svc := range lc.File.Services {
		if svc.Image == "" {
			if svc.Build == nil {
				t.Errorf("%s: neither image nor build", name)
			}
			continue
		}
		ref := svc.Image
		if i := strings.LastIndex(ref, "/"); i >= 0 {
			ref = ref[i+1:]
		}
		_, tag, ok := strings.Cut(ref, ":")
		if !ok || tag == "latest" || tag == "" {
			t.Errorf("%s: image %q is not pinned to a version", name, svc.Image)
		}
	}
}

func TestDevComposeWiresDatabaseAndS3Store(t *testing.T) {
	lc := devCompose(t)
	cfg, env := serviceConfig(t, lc, "collector")

	db, err := url.Parse(cfg.DatabaseURL)
	if err != nil {
		t.Fatalf("DATABASE_URL: %v", err)
	}
	pg, ok := lc.File.Services[db.Hostname()]
	if !ok {
		t.Fatalf("DATABASE_URL points at host %q, which is not a service of the stack", db.Hostname())
	}
	if db.Port() != "5432" {
		t.Errorf("DATABASE_URL port %q; PostgreSQL listens on 5432", db.Port())
	}
	pgEnv, err := pg.environment()
	if err != nil {
		t.Fatal(err)
	}
	pass, _ := db.User.Password()
	if db.User.Username() != pgEnv["POSTGRES_USER"] || pass != pgEnv["POSTGRES_PASSWORD"] || strings.TrimPrefix(db.Path, "/") != pgEnv["POSTGRES_DB"] {
		t.Errorf("DATABASE_URL %s does not match the postgres service's POSTGRES_USER/PASSWORD/DB %v", db.Redacted(), pgEnv)
	}
	checkOnNamedVolume(t, lc, db.Hostname(), "PGDATA", "/var/lib/postgresql/data", mustVolumes(t, pg))

	s3, err := url.Parse(cfg.S3Endpoint)
	if err != nil || s3.Host == "" {
		t.Fatalf("S3_ENDPOINT=%q: want the stack's S3 store", cfg.S3Endpoint)
	}
	store, ok := lc.File.Services[s3.Hostname()]
	if !ok {
		t.Fatalf("S3_ENDPOINT points at host %q, which is not a service of the stack", s3.Hostname())
	}
	storeEnv, err := store.environment()
	if err != nil {
		t.Fatal(err)
	}
	if want := ":" + s3.Port(); storeEnv["VGW_PORT"] != want {
		t.Errorf("S3_ENDPOINT port %s, but the store listens on VGW_PORT=%q", s3.Port(), storeEnv["VGW_PORT"])
	}
	if storeEnv["ROOT_ACCESS_KEY"] != cfg.ClientS3AccessKey || storeEnv["ROOT_SECRET_KEY"] != cfg.ClientS3SecretKey {
		t.Error("the collector's CLIENT_S3_ACCESS_KEY / CLIENT_S3_SECRET_KEY are not the store's root credentials")
	}
	if env["AWS_ACCESS_KEY_ID"] != cfg.ClientS3AccessKey || env["AWS_SECRET_ACCESS_KEY"] != cfg.ClientS3SecretKey {
		t.Error("AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (the backup bucket's credential chain) are not the store's credentials")
	}
	if !cfg.S3ForcePathStyle {
		t.Error("S3_FORCE_PATH_STYLE must be true for the local store (no virtual-host DNS)")
	}
	test, err := nodeStrings(store.Healthcheck.Test)
	if err != nil {
		t.Fatal(err)
	}
	wantURL := "http://127.0.0.1:" + s3.Port() + storeEnv["VGW_HEALTH"]
	if storeEnv["VGW_HEALTH"] == "" || !contains(test, wantURL) {
		t.Errorf("the store's healthcheck %q should GET %s (VGW_HEALTH)", test, wantURL)
	}

	// The init service creates both buckets, on the store's volume.
	deps, _ := store.dependsOn()
	var initName string
	for d, cond := range deps {
		if cond == "service_completed_successfully" {
			initName = d
		}
	}
	if initName == "" {
		t.Fatal("the S3 store does not wait for a bucket-creating init service")
	}
	init := lc.File.Services[initName]
	cmd, err := nodeStrings(init.Command)
	if err != nil {
		t.Fatal(err)
	}
	script := strings.Join(cmd, " ")
	storeData := ""
	for _, m := range mustVolumes(t, store) {
		if m.Type == "volume" {
			storeData = m.Target
			sharesVolume := false
			for _, im := range mustVolumes(t, init) {
				sharesVolume = sharesVolume || (im.Source == m.Source && im.Target == m.Target)
			}
			if !sharesVolume {
				t.Errorf("%s does not mount the store's volume %s at %s", initName, m.Source, m.Target)
			}
		}
	}
	storeCmd, _ := nodeStrings(store.Command)
	if !contains(storeCmd, storeData) {
		t.Errorf("the store serves %v, not its volume %s", storeCmd, storeData)
	}
	for _, bucket := range []string{cfg.ClientS3Bucket, cfg.S3BackupBucket} {
		if bucket == "" || !strings.Contains(script, storeData+"/"+bucket) {
			t.Errorf("%s does not create bucket %q in %s: %q", initName, bucket, storeData, script)
		}
	}
}

func mustVolumes(t *testing.T, s composeService) []volumeMount {
	t.Helper()
	v, err := s.volumes()
	if err != nil {
		t.Fatal(err)
	}
	return v
}
