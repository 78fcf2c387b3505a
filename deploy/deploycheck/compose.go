package deploycheck

import (
	"bytes"
	"fmt"
	"os"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// composeFile is the part of the Compose specification these files use.
type composeFile struct {
	Name     string                    `yaml:"name"`
	Services map[string]composeService `yaml:"services"`
	Networks map[string]composeNetwork `yaml:"networks"`
	Volumes  map[string]any            `yaml:"volumes"`
	Secrets  map[string]composeSecret  `yaml:"secrets"`
}

type composeService struct {
	Image           string              `yaml:"image"`
	Build           *composeBuild       `yaml:"build"`
	Command         yaml.Node           `yaml:"command"`
	Entrypoint      yaml.Node           `yaml:"entrypoint"`
	Environment     yaml.Node           `yaml:"environment"`
	EnvFile         yaml.Node           `yaml:"env_file"`
	Ports           []yaml.Node         `yaml:"ports"`
	Volumes         []yaml.Node         `yaml:"volumes"`
	Healthcheck     *composeHealthcheck `yaml:"healthcheck"`
	DependsOn       yaml.Node           `yaml:"depends_on"`
	StopGracePeriod string              `yaml:"stop_grace_period"`
	StopSignal      string              `yaml:"stop_signal"`
	Restart         string              `yaml:"restart"`
	ReadOnly        bool                `yaml:"read_only"`
	User            string              `yaml:"user"`
	Deploy          struct {
		Replicas  *int `yaml:"replicas"`
		Resources struct {
			Limits       struct{ Memory string } `yaml:"limits"`
			Reservations struct{ Memory string } `yaml:"reservations"`
		} `yaml:"resources"`
	} `yaml:"deploy"`
	Networks yaml.Node   `yaml:"networks"`
	Secrets  []yaml.Node `yaml:"secrets"`
}

type composeBuild struct {
	Context    string `yaml:"context"`
	Dockerfile string `yaml:"dockerfile"`
}

// UnmarshalYAML accepts the short form (build: .) too.
func (b *composeBuild) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		b.Context = n.Value
		return nil
	}
	type plain composeBuild
	return n.Decode((*plain)(b))
}

type composeHealthcheck struct {
	Test        yaml.Node `yaml:"test"`
	Interval    string    `yaml:"interval"`
	Timeout     string    `yaml:"timeout"`
	Retries     int       `yaml:"retries"`
	StartPeriod string    `yaml:"start_period"`
	Disable     bool      `yaml:"disable"`
}

type composeNetwork struct {
	IPAM struct {
		Config []struct {
			Subnet string `yaml:"subnet"`
		} `yaml:"config"`
	} `yaml:"ipam"`
	External bool `yaml:"external"`
}

type composeSecret struct {
	File        string `yaml:"file"`
	Environment string `yaml:"environment"`
	External    bool   `yaml:"external"`
}

// composeServiceKeys is every service attribute of the Compose
// specification: a key outside it is a typo that compose rejects (or, for
// older versions, silently ignores).
var composeServiceKeys = strings.Fields(`annotations attach blkio_config build cap_add cap_drop cgroup
	cgroup_parent command configs container_name cpu_count cpu_percent cpu_period cpu_quota
	cpu_rt_period cpu_rt_runtime cpu_shares cpus cpuset credential_spec depends_on deploy develop
	device_cgroup_rules devices dns dns_opt dns_search domainname driver_opts entrypoint env_file
	environment expose extends external_links extra_hosts gpus group_add healthcheck hostname image
	init ipc isolation label_file labels links logging mac_address mem_limit mem_reservation
	mem_swappiness memswap_limit network_mode networks oom_kill_disable oom_score_adj pid pids_limit
	platform ports post_start pre_stop privileged profiles provider pull_policy read_only restart
	runtime scale secrets security_opt shm_size stdin_open stop_grace_period stop_signal storage_opt
	sysctls tmpfs tty ulimits use_api_socket user userns_mode uts volumes volumes_from working_dir`)

var composeTopKeys = strings.Fields(`name version services networks volumes secrets configs include models`)

// loadedCompose is a compose file after interpolation.
type loadedCompose struct {
	File composeFile
	// Refs: every variable referenced, by the dotted path of the value that
	// referred to it (services.collector.environment.WAL_SYNC).
	Refs map[string][]varRef
	// Resolved holds every scalar value after interpolation, by path; for
	// comparing two resolutions of one file.
	Resolved map[string]string
}

// loadCompose parses a compose file and interpolates it with env (a
// variable absent from env is unset), as `docker compose config` would.
func loadCompose(path string, env map[string]string) (*loadedCompose, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	lc := &loadedCompose{Refs: map[string][]varRef{}, Resolved: map[string]string{}}
	lookup := func(name string) (string, bool) { v, ok := env[name]; return v, ok }
	var errs []string
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				key := n.Content[i].Value
				walk(n.Content[i+1], joinPath(path, key))
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				walk(c, joinPath(path, fmt.Sprint(i)))
			}
		case yaml.ScalarNode:
			val, refs, err := interpolate(n.Value, lookup)
			if err != nil {
				errs = append(errs, fmt.Sprintf("%s: %v", path, err))
			}
			if len(refs) > 0 {
				lc.Refs[path] = append(lc.Refs[path], refs...)
				n.Value = val
				n.Tag = "" // re-resolve: "8000" may now be an int
				n.Style = 0
				if val == "" {
					n.Style = yaml.DoubleQuotedStyle
				}
			}
			lc.Resolved[path] = n.Value
		}
		// Alias nodes: their anchor is walked where it is defined.
	}
	walk(&doc, "")
	if len(errs) > 0 {
		sort.Strings(errs)
		return lc, fmt.Errorf("%s: interpolation: %s", path, strings.Join(errs, "; "))
	}
	var top map[string]yaml.Node
	if err := doc.Decode(&top); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for k := range top {
		if !strings.HasPrefix(k, "x-") && !contains(composeTopKeys, k) {
			return nil, fmt.Errorf("%s: unknown top-level key %q", path, k)
		}
	}
	var services map[string]map[string]yaml.Node
	if n, ok := top["services"]; ok {
		if err := n.Decode(&services); err != nil {
			return nil, fmt.Errorf("%s: services: %w", path, err)
		}
	}
	for name, svc := range services {
		for k := range svc {
			if !strings.HasPrefix(k, "x-") && !contains(composeServiceKeys, k) {
				return nil, fmt.Errorf("%s: service %s: unknown key %q", path, name, k)
			}
		}
	}
	if err := doc.Decode(&lc.File); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return lc, nil
}

func joinPath(base, key string) string {
	if base == "" {
		return key
	}
	return base + "." + key
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// nodeStrings reads a string-or-list value (command, entrypoint,
// healthcheck test). A string is split like a shell would.
func nodeStrings(n yaml.Node) ([]string, error) {
	switch n.Kind {
	case 0:
		return nil, nil
	case yaml.ScalarNode:
		return shellWords(n.Value, func(string) (string, bool) { return "", false })
	case yaml.SequenceNode:
		var out []string
		return out, n.Decode(&out)
	}
	return nil, fmt.Errorf("line %d: want a string or a list", n.Line)
}

// environment reads a service's environment (map or KEY=VALUE list form).
func (s composeService) environment() (map[string]string, error) {
	out := map[string]string{}
	switch s.Environment.Kind {
	case 0:
		return out, nil
	case yaml.MappingNode:
		var m map[string]*string
		if err := s.Environment.Decode(&m); err != nil {
			return nil, err
		}
		for k, v := range m {
			if v == nil {
				out[k] = "" // passed through from the host's environment
			} else {
				out[k] = *v
			}
		}
	case yaml.SequenceNode:
		var list []string
		if err := s.Environment.Decode(&list); err != nil {
			return nil, err
		}
		for _, kv := range list {
			k, v, _ := strings.Cut(kv, "=")
			out[k] = v
		}
	default:
		return nil, fmt.Errorf("environment: want a map or a list")
	}
	return out, nil
}

type portMapping struct{ HostIP, Published, Target string }

func (s composeService) ports() ([]portMapping, error) {
	var out []portMapping
	for _, n := range s.Ports {
		if n.Kind == yaml.MappingNode {
			var long struct {
				Target    string `yaml:"target"`
				Published string `yaml:"published"`
				HostIP    string `yaml:"host_ip"`
			}
			if err := n.Decode(&long); err != nil {
				return nil, err
			}
			out = append(out, portMapping{HostIP: long.HostIP, Published: long.Published, Target: long.Target})
			continue
		}
		spec, _, _ := strings.Cut(n.Value, "/")
		parts := strings.Split(spec, ":")
		pm := portMapping{Target: parts[len(parts)-1]}
		switch len(parts) {
		case 1:
		case 2:
			pm.Published = parts[0]
		case 3:
			pm.HostIP, pm.Published = parts[0], parts[1]
		default:
			return nil, fmt.Errorf("port %q: want [ip:]published:target", n.Value)
		}
		out = append(out, pm)
	}
	return out, nil
}

type volumeMount struct {
	Type, Source, Target string
	ReadOnly             bool
}

func (s composeService) volumes() ([]volumeMount, error) {
	var out []volumeMount
	for _, n := range s.Volumes {
		if n.Kind == yaml.MappingNode {
			var long struct {
				Type     string `yaml:"type"`
				Source   string `yaml:"source"`
				Target   string `yaml:"target"`
				ReadOnly bool   `yaml:"read_only"`
			}
			if err := n.Decode(&long); err != nil {
				return nil, err
			}
			out = append(out, volumeMount{Type: long.Type, Source: long.Source, Target: long.Target, ReadOnly: long.ReadOnly})
			continue
		}
		parts := strings.Split(n.Value, ":")
		vm := volumeMount{}
		switch len(parts) {
		case 1:
			vm.Type, vm.Target = "volume", parts[0] // anonymous
		case 2, 3:
			vm.Source, vm.Target = parts[0], parts[1]
			vm.ReadOnly = len(parts) == 3 && strings.Contains(parts[2], "ro")
			vm.Type = "volume"
			if strings.HasPrefix(vm.Source, ".") || strings.HasPrefix(vm.Source, "/") || strings.HasPrefix(vm.Source, "~") {
				vm.Type = "bind"
			}
		default:
			return nil, fmt.Errorf("volume %q: want source:target[:mode]", n.Value)
		}
		out = append(out, vm)
	}
	return out, nil
}

// dependsOn returns service -> condition.
func (s composeService) dependsOn() (map[string]string, error) {
	out := map[string]string{}
	switch s.DependsOn.Kind {
	case 0:
	case yaml.SequenceNode:
		var list []string
		if err := s.DependsOn.Decode(&list); err != nil {
			return nil, err
		}
		for _, name := range list {
			out[name] = "service_started"
		}
	case yaml.MappingNode:
		var m map[string]struct {
			Condition string `yaml:"condition"`
		}
		if err := s.DependsOn.Decode(&m); err != nil {
			return nil, err
		}
		for name, d := range m {
			c := d.Condition
			if c == "" {
				c = "service_started"
			}
			out[name] = c
		}
	}
	return out, nil
}

type serviceNetwork struct {
	IPv4Address string   `yaml:"ipv4_address"`
	Aliases     []string `yaml:"aliases"`
}

func (s composeService) networks() (map[string]serviceNetwork, error) {
	out := map[string]serviceNetwork{}
	switch s.Networks.Kind {
	case 0:
	case yaml.SequenceNode:
		var list []string
		if err := s.Networks.Decode(&list); err != nil {
			return nil, err
		}
		for _, n := range list {
			out[n] = serviceNetwork{}
		}
	case yaml.MappingNode:
		var m map[string]*serviceNetwork
		if err := s.Networks.Decode(&m); err != nil {
			return nil, err
		}
		for k, v := range m {
			if v == nil {
				v = &serviceNetwork{}
			}
			out[k] = *v
		}
	}
	return out, nil
}

// secretTargets returns the in-container paths of the service's secrets.
func (s composeService) secretTargets() ([]string, error) {
	var out []string
	for _, n := range s.Secrets {
		if n.Kind == yaml.ScalarNode {
			out = append(out, "/run/secrets/"+n.Value)
			continue
		}
		var long struct {
			Source string `yaml:"source"`
			Target string `yaml:"target"`
		}
		if err := n.Decode(&long); err != nil {
			return nil, err
		}
		t := long.Target
		if t == "" {
			t = long.Source
		}
		if !strings.HasPrefix(t, "/") {
			t = "/run/secrets/" + t
		}
		out = append(out, t)
	}
	return out, nil
}
