package deploycheck

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// k8sObject is the subset of the Kubernetes object schema these manifests
// use. Unknown fields are ignored here; `kubectl kustomize` (below) and the
// API server check the rest.
type k8sObject struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name        string            `yaml:"name"`
		Labels      map[string]string `yaml:"labels"`
		Annotations map[string]string `yaml:"annotations"`
	} `yaml:"metadata"`
	Data       map[string]string `yaml:"data"`
	StringData map[string]string `yaml:"stringData"`
	Spec       k8sSpec           `yaml:"spec"`
	Resources  []string          `yaml:"resources"` // Kustomization
	file       string
}

type k8sSpec struct {
	// StatefulSet
	ServiceName          string      `yaml:"serviceName"`
	Replicas             *int        `yaml:"replicas"`
	Selector             k8sSelector `yaml:"selector"`
	Template             k8sPod      `yaml:"template"`
	VolumeClaimTemplates []struct {
		Metadata struct {
			Name string `yaml:"name"`
		} `yaml:"metadata"`
		Spec struct {
			AccessModes []string `yaml:"accessModes"`
			Resources   struct {
				Requests map[string]string `yaml:"requests"`
			} `yaml:"resources"`
		} `yaml:"spec"`
	} `yaml:"volumeClaimTemplates"`
	PersistentVolumeClaimRetentionPolicy map[string]string `yaml:"persistentVolumeClaimRetentionPolicy"`
	// Service (selector is a plain map there)
	ClusterIP                string `yaml:"clusterIP"`
	PublishNotReadyAddresses bool   `yaml:"publishNotReadyAddresses"`
	Ports                    []struct {
		Name       string `yaml:"name"`
		Port       int    `yaml:"port"`
		TargetPort any    `yaml:"targetPort"`
	} `yaml:"ports"`
	// PodDisruptionBudget
	MinAvailable   any `yaml:"minAvailable"`
	MaxUnavailable any `yaml:"maxUnavailable"`
	// Pod (tools/)
	k8sPodSpec `yaml:",inline"`
}

// k8sSelector is a label selector (StatefulSet, PDB) or a Service's plain map.
type k8sSelector struct {
	MatchLabels map[string]string
}

func (s *k8sSelector) UnmarshalYAML(n *yaml.Node) error {
	var withMatch struct {
		MatchLabels map[string]string `yaml:"matchLabels"`
	}
	if err := n.Decode(&withMatch); err == nil && withMatch.MatchLabels != nil {
		s.MatchLabels = withMatch.MatchLabels
		return nil
	}
	return n.Decode(&s.MatchLabels)
}

type k8sPod struct {
	Metadata struct {
		Labels      map[string]string `yaml:"labels"`
		Annotations map[string]string `yaml:"annotations"`
	} `yaml:"metadata"`
	Spec k8sPodSpec `yaml:"spec"`
}

type k8sPodSpec struct {
	TerminationGracePeriodSeconds *int `yaml:"terminationGracePeriodSeconds"`
	SecurityContext               struct {
		RunAsNonRoot *bool `yaml:"runAsNonRoot"`
		RunAsUser    *int  `yaml:"runAsUser"`
		FSGroup      *int  `yaml:"fsGroup"`
	} `yaml:"securityContext"`
	Containers []k8sContainer `yaml:"containers"`
	Volumes    []struct {
		Name                  string `yaml:"name"`
		PersistentVolumeClaim *struct {
			ClaimName string `yaml:"claimName"`
		} `yaml:"persistentVolumeClaim"`
		EmptyDir any `yaml:"emptyDir"`
	} `yaml:"volumes"`
}

type k8sContainer struct {
	Name  string   `yaml:"name"`
	Image string   `yaml:"image"`
	Args  []string `yaml:"args"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	EnvFrom []struct {
		ConfigMapRef *struct{ Name string } `yaml:"configMapRef"`
		SecretRef    *struct{ Name string } `yaml:"secretRef"`
	} `yaml:"envFrom"`
	Env []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			FieldRef *struct {
				FieldPath string `yaml:"fieldPath"`
			} `yaml:"fieldRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	Resources struct {
		Limits map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
	} `yaml:"volumeMounts"`
	SecurityContext struct {
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
	} `yaml:"securityContext"`
	StartupProbe   *k8sProbe `yaml:"startupProbe"`
	ReadinessProbe *k8sProbe `yaml:"readinessProbe"`
	LivenessProbe  *k8sProbe `yaml:"livenessProbe"`
	Lifecycle      struct {
		PreStop *struct {
			Sleep *struct {
				Seconds int `yaml:"seconds"`
			} `yaml:"sleep"`
			Exec any `yaml:"exec"`
		} `yaml:"preStop"`
	} `yaml:"lifecycle"`
}

type k8sProbe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"`
	} `yaml:"httpGet"`
	PeriodSeconds    int `yaml:"periodSeconds"`
	FailureThreshold int `yaml:"failureThreshold"`
}

func readManifests(t *testing.T, pattern string) []k8sObject {
	t.Helper()
	files, err := filepath.Glob(repoPath(t, pattern))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests match %s: %v", pattern, err)
	}
	var out []k8sObject
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for {
			var obj k8sObject
			err := dec.Decode(&obj)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if obj.Kind == "" {
				t.Fatalf("%s: a document without kind", f)
			}
			obj.file = filepath.Base(f)
			out = append(out, obj)
		}
	}
	return out
}

func byKind(objs []k8sObject, kind string) []k8sObject {
	var out []k8sObject
	for _, o := range objs {
		if o.Kind == kind {
			out = append(out, o)
		}
	}
	return out
}

func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// podEnv is what a container's environment holds: its envFrom ConfigMaps and
// Secrets, then its env (fieldRef values given as sample).
func podEnv(t *testing.T, c k8sContainer, objs []k8sObject, fieldValues map[string]string) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, ef := range c.EnvFrom {
		kind, name := "", ""
		switch {
		case ef.ConfigMapRef != nil:
			kind, name = "ConfigMap", ef.ConfigMapRef.Name
		case ef.SecretRef != nil:
			kind, name = "Secret", ef.SecretRef.Name
		}
		found := false
		for _, o := range byKind(objs, kind) {
			if o.Metadata.Name != name {
				continue
			}
			found = true
			for k, v := range o.Data {
				env[k] = v
			}
			for k, v := range o.StringData {
				env[k] = v
			}
		}
		if !found {
			t.Errorf("container %s: envFrom %s %q, which the manifests do not define", c.Name, kind, name)
		}
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.FieldRef != nil:
			v, ok := fieldValues[e.ValueFrom.FieldRef.FieldPath]
			if !ok {
				t.Fatalf("container %s: %s from fieldRef %s: no sample value", c.Name, e.Name, e.ValueFrom.FieldRef.FieldPath)
			}
			env[e.Name] = v
		default:
			env[e.Name] = e.Value
		}
	}
	return env
}

func TestKubernetesManifestsAgreeWithTheCollector(t *testing.T) {
	objs := readManifests(t, "deploy/k8s/*.yaml")

	// ConfigMap and Secret keys are collector settings.
	for _, kind := range []string{"ConfigMap", "Secret"} {
		if len(byKind(objs, kind)) == 0 {
			t.Errorf("no %s", kind)
		}
		for _, o := range byKind(objs, kind) {
			keys := map[string]string{}
			for k, v := range o.Data {
				keys[k] = v
			}
			for k, v := range o.StringData {
				keys[k] = v
			}
			if unknown := unknownCollectorVars(keys); len(unknown) > 0 {
				t.Errorf("%s %s (%s): not collector settings: %v", kind, o.Metadata.Name, o.file, unknown)
			}
		}
	}

	sets := byKind(objs, "StatefulSet")
	if len(sets) != 1 {
		t.Fatalf("want one StatefulSet, found %d", len(sets))
	}
	ss := sets[0]
	pod := ss.Spec.Template
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("want one container, found %d", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]
	if !selects(ss.Spec.Selector.MatchLabels, pod.Metadata.Labels) {
		t.Errorf("the StatefulSet's selector %v does not select its pods %v", ss.Spec.Selector.MatchLabels, pod.Metadata.Labels)
	}

	// NODE_ID is the pod's own name.
	nodeFromName := false
	for _, e := range c.Env {
		if e.Name == "NODE_ID" {
			nodeFromName = e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name"
		}
	}
	if !nodeFromName {
		t.Error("NODE_ID is not taken from the pod name (valueFrom.fieldRef.fieldPath: metadata.name): pods would share one")
	}
	env := podEnv(t, c, objs, map[string]string{"metadata.name": ss.Metadata.Name + "-0"})
	cfg, err := loadCollectorConfig(env)
	if err != nil {
		t.Fatalf("the pod's environment: %v", err)
	}
	if cfg.NodeID != ss.Metadata.Name+"-0" {
		t.Errorf("NODE_ID = %q", cfg.NodeID)
	}

	// The WAL is on the pod's own PersistentVolumeClaim.
	claims := map[string]bool{}
	for _, vct := range ss.Spec.VolumeClaimTemplates {
		claims[vct.Metadata.Name] = true
		if vct.Spec.Resources.Requests["storage"] == "" {
			t.Errorf("volumeClaimTemplate %s requests no storage", vct.Metadata.Name)
		}
	}
	for setting, dir := range map[string]string{"WAL_DIR": cfg.WALDir, "EXPORT_DIR": cfg.ExportDir} {
		onClaim := false
		for _, m := range c.VolumeMounts {
			onClaim = onClaim || (claims[m.Name] && underPath(dir, m.MountPath))
		}
		if !onClaim {
			t.Errorf("%s=%s is on no volumeClaimTemplate mount: it would be lost with the pod", setting, dir)
		}
	}
	if p := ss.Spec.PersistentVolumeClaimRetentionPolicy; p["whenScaled"] == "Delete" || p["whenDeleted"] == "Delete" {
		t.Errorf("persistentVolumeClaimRetentionPolicy %v deletes WALs that may hold events not yet loaded or shipped", p)
	}

	// Ports and probes.
	port, err := listenPort(cfg.Addr)
	if err != nil {
		t.Fatal(err)
	}
	portNames := map[string]string{}
	for _, p := range c.Ports {
		if strconv.Itoa(p.ContainerPort) != port {
			t.Errorf("containerPort %d, but COLLECTOR_ADDR=%s", p.ContainerPort, cfg.Addr)
		}
		portNames[p.Name] = strconv.Itoa(p.ContainerPort)
	}
	probePort := func(p any) string {
		switch v := p.(type) {
		case int:
			return strconv.Itoa(v)
		case string:
			if n, ok := portNames[v]; ok {
				return n
			}
			return v
		}
		return ""
	}
	for _, pr := range []struct {
		name  string
		probe *k8sProbe
		path  string
	}{{"readinessProbe", c.ReadinessProbe, "/ready"}, {"livenessProbe", c.LivenessProbe, "/health"}} {
		if pr.probe == nil || pr.probe.HTTPGet == nil {
			t.Errorf("no %s httpGet", pr.name)
			continue
		}
		if pr.probe.HTTPGet.Path != pr.path || probePort(pr.probe.HTTPGet.Port) != port {
			t.Errorf("%s GET %s on port %v; want %s on %s", pr.name, pr.probe.HTTPGet.Path, pr.probe.HTTPGet.Port, pr.path, port)
		}
	}
	if lp := c.LivenessProbe; lp != nil && lp.PeriodSeconds*max(lp.FailureThreshold, 1) < 30 {
		t.Errorf("livenessProbe restarts after %ds of failure: too eager for a process whose WAL may be draining", lp.PeriodSeconds*lp.FailureThreshold)
	}
	if c.StartupProbe == nil {
		t.Error("no startupProbe: a large WAL takes time to open, and the liveness probe would kill it first")
	}

	// Graceful stop: preStop sleep, then SIGTERM, then up to SHUTDOWN_TIMEOUT.
	preStop := 0
	if ps := c.Lifecycle.PreStop; ps == nil || ps.Sleep == nil {
		t.Error("no preStop sleep: the pod stops serving before load balancers have deregistered it (and the image has no shell for exec sleep)")
	} else {
		preStop = ps.Sleep.Seconds
	}
	grace := pod.Spec.TerminationGracePeriodSeconds
	if grace == nil {
		t.Fatal("no terminationGracePeriodSeconds (default 30s)")
	}
	if budget := time.Duration(*grace-preStop) * time.Second; budget <= cfg.ShutdownTimeout {
		t.Errorf("terminationGracePeriodSeconds %d - preStop %ds leaves %v, not more than SHUTDOWN_TIMEOUT %v", *grace, preStop, budget, cfg.ShutdownTimeout)
	}

	// Non-root, matching the image's USER.
	sc := pod.Spec.SecurityContext
	if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Error("securityContext.runAsNonRoot is not true")
	}
	user, _ := parseRepoDockerfile(t).Final().Last("USER")
	uid, _, _ := strings.Cut(user.Args, ":")
	if sc.RunAsUser == nil {
		t.Errorf("no runAsUser; the image's USER is %s", user.Args)
	} else if strconv.Itoa(*sc.RunAsUser) != uid {
		t.Errorf("runAsUser %d, but the image's USER is %s", *sc.RunAsUser, user.Args)
	}
	if sc.FSGroup == nil {
		t.Error("no fsGroup: the non-root user cannot write a fresh PersistentVolume")
	}
	if v := c.SecurityContext.ReadOnlyRootFilesystem; v == nil || !*v {
		t.Error("readOnlyRootFilesystem is not true")
	}
	if v := c.SecurityContext.AllowPrivilegeEscalation; v == nil || *v {
		t.Error("allowPrivilegeEscalation is not false")
	}

	// Memory: a limit, and GOMEMLIMIT below it.
	if limit := c.Resources.Limits["memory"]; limit == "" {
		t.Error("no memory limit")
	} else if soft, ok := env["GOMEMLIMIT"]; !ok {
		t.Error("memory limit without GOMEMLIMIT")
	} else if lb, err := k8sQuantity(limit); err != nil {
		t.Error(err)
	} else if sb, err := k8sQuantity(soft); err != nil || sb >= lb {
		t.Errorf("GOMEMLIMIT=%s must be below the memory limit %s (%v)", soft, limit, err)
	}

	// Prometheus scrape annotations point at the metrics port.
	ann := pod.Metadata.Annotations
	if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/path"] != "/metrics" || ann["prometheus.io/port"] != port {
		t.Errorf("prometheus annotations %v; want scrape true, path /metrics, port %s", ann, port)
	}

	// Services and the PodDisruptionBudget select these pods; the headless
	// one is the StatefulSet's serviceName.
	var headless, regular bool
	for _, svc := range byKind(objs, "Service") {
		if !selects(svc.Spec.Selector.MatchLabels, pod.Metadata.Labels) {
			t.Errorf("Service %s does not select the collector pods", svc.Metadata.Name)
		}
		for _, p := range svc.Spec.Ports {
			if tp := probePort(p.TargetPort); tp != port {
				t.Errorf("Service %s targets port %v, not %s", svc.Metadata.Name, p.TargetPort, port)
			}
		}
		if svc.Spec.ClusterIP == "None" {
			headless = true
			if svc.Metadata.Name != ss.Spec.ServiceName {
				t.Errorf("headless Service %s is not the StatefulSet's serviceName %q", svc.Metadata.Name, ss.Spec.ServiceName)
			}
		} else {
			regular = true
		}
	}
	if !headless || !regular {
		t.Errorf("want a Service and a headless Service (found regular=%v, headless=%v)", regular, headless)
	}
	pdbs := byKind(objs, "PodDisruptionBudget")
	if len(pdbs) != 1 || !selects(pdbs[0].Spec.Selector.MatchLabels, pod.Metadata.Labels) {
		t.Error("no PodDisruptionBudget selecting the collector pods")
	} else if pdbs[0].Spec.MinAvailable == nil && pdbs[0].Spec.MaxUnavailable == nil {
		t.Error("the PodDisruptionBudget sets neither minAvailable nor maxUnavailable")
	}
	if ss.Spec.Replicas == nil || *ss.Spec.Replicas < 2 {
		t.Error("fewer than 2 replicas: a PodDisruptionBudget cannot keep anything up")
	}

	// The kustomization lists every manifest of the directory.
	kusts := byKind(objs, "Kustomization")
	if len(kusts) != 1 {
		t.Fatal("no kustomization.yaml")
	}
	files, _ := filepath.Glob(repoPath(t, "deploy/k8s/*.yaml"))
	var want []string
	for _, f := range files {
		if b := filepath.Base(f); b != "kustomization.yaml" {
			want = append(want, b)
		}
	}
	got := append([]string(nil), kusts[0].Resources...)
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("kustomization.yaml resources %v, manifests in deploy/k8s %v", got, want)
	}
}

// k8sQuantity reads a memory quantity (512Mi, 1Gi, 460MiB as GOMEMLIMIT
// writes it, or bytes).
func k8sQuantity(s string) (int64, error) {
	s = strings.TrimSuffix(strings.TrimSpace(s), "B")
	for suffix, mult := range map[string]int64{"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "K": 1e3, "M": 1e6, "G": 1e9} {
		if n, ok := strings.CutSuffix(s, suffix); ok {
			v, err := strconv.ParseInt(n, 10, 64)
			return v * mult, err
		}
	}
	return strconv.ParseInt(s, 10, 64)
}

func TestKubernetesDrainPodTakesOverARemovedNode(t *testing.T) {
	objs := readManifests(t, "deploy/k8s/*.yaml")
	ss := byKind(objs, "StatefulSet")[0]
	drains := readManifests(t, "deploy/k8s/tools/drain-pod.yaml")
	if len(drains) != 1 || drains[0].Kind != "Pod" {
		t.Fatalf("tools/drain-pod.yaml: want one Pod")
	}
	drain := drains[0]
	for _, svc := range byKind(objs, "Service") {
		if selects(svc.Spec.Selector.MatchLabels, drain.Metadata.Labels) {
			t.Errorf("Service %s selects the drain pod: it would get ingest traffic", svc.Metadata.Name)
		}
	}
	if len(drain.Spec.Containers) != 1 {
		t.Fatal("want one container")
	}
	env := podEnv(t, drain.Spec.Containers[0], objs, nil)
	cfg, err := loadCollectorConfig(env)
	if err != nil {
		t.Fatalf("drain pod environment: %v", err)
	}
	claim := ""
	for _, v := range drain.Spec.Volumes {
		if v.PersistentVolumeClaim != nil {
			claim = v.PersistentVolumeClaim.ClaimName
		}
	}
	// StatefulSet PVCs are named <template>-<statefulset>-<ordinal>; the pod
	// that owned it was <statefulset>-<ordinal>, which must be the NODE_ID.
	tmpl := ss.Spec.VolumeClaimTemplates[0].Metadata.Name
	if want := tmpl + "-" + cfg.NodeID; claim != want {
		t.Errorf("the drain pod mounts claim %q with NODE_ID %q; the claim of node %s is %q", claim, cfg.NodeID, cfg.NodeID, want)
	}
	for _, m := range drain.Spec.Containers[0].VolumeMounts {
		if m.Name == "data" && !underPath(cfg.WALDir, m.MountPath) {
			t.Errorf("WAL_DIR %s is not on the claim mounted at %s", cfg.WALDir, m.MountPath)
		}
	}
}

// TestKustomizeBuildsTheManifests renders deploy/k8s with kubectl's built-in
// kustomize where kubectl is installed (it needs no cluster). Optional: the
// manifests' structure is checked above without it.
func TestKustomizeBuildsTheManifests(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl is not installed")
	}
	out, err := exec.Command(kubectl, "kustomize", repoPath(t, "deploy/k8s")).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl kustomize deploy/k8s: %v\n%s", err, out)
	}
	for _, kind := range []string{"StatefulSet", "Service", "PodDisruptionBudget", "ConfigMap", "Secret", "Namespace"} {
		if !bytes.Contains(out, []byte("kind: "+kind+"\n")) {
			t.Errorf("kustomize output has no %s", kind)
		}
	}
}
