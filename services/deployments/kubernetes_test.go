package deployments

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

const k8sDir = "deployments/kubernetes"
const k8sNamespace = "streamline"

type k8sObject struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string            `json:"name"`
		Namespace string            `json:"namespace"`
		Labels    map[string]string `json:"labels"`
	} `json:"metadata"`
	Data       map[string]string `json:"data"`
	StringData map[string]string `json:"stringData"`
	Spec       json.RawMessage   `json:"spec"`

	where string // file and document index
}

type serviceSpec struct {
	ClusterIP string            `json:"clusterIP"`
	Selector  map[string]string `json:"selector"`
	Ports     []struct {
		Name       string      `json:"name"`
		Port       int         `json:"port"`
		TargetPort intOrString `json:"targetPort"`
	} `json:"ports"`
}

type workloadSpec struct {
	Replicas    *int   `json:"replicas"`
	ServiceName string `json:"serviceName"`
	Selector    struct {
		MatchLabels map[string]string `json:"matchLabels"`
	} `json:"selector"`
	Template struct {
		Metadata struct {
			Labels map[string]string `json:"labels"`
		} `json:"metadata"`
		Spec podSpec `json:"spec"`
	} `json:"template"`
	VolumeClaimTemplates []struct {
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
	} `json:"volumeClaimTemplates"`
}

type podSpec struct {
	Containers     []container `json:"containers"`
	InitContainers []container `json:"initContainers"`
	Volumes        []struct {
		Name string `json:"name"`
	} `json:"volumes"`
}

type container struct {
	Name    string   `json:"name"`
	Image   string   `json:"image"`
	Command []string `json:"command"`
	Args    []string `json:"args"`
	Env     []struct {
		Name      string `json:"name"`
		Value     string `json:"value"`
		ValueFrom *struct {
			FieldRef *struct {
				FieldPath string `json:"fieldPath"`
			} `json:"fieldRef"`
			SecretKeyRef    *keyRef `json:"secretKeyRef"`
			ConfigMapKeyRef *keyRef `json:"configMapKeyRef"`
		} `json:"valueFrom"`
	} `json:"env"`
	EnvFrom []struct {
		ConfigMapRef *struct {
			Name string `json:"name"`
		} `json:"configMapRef"`
		SecretRef *struct {
			Name string `json:"name"`
		} `json:"secretRef"`
	} `json:"envFrom"`
	Ports []struct {
		Name          string `json:"name"`
		ContainerPort int    `json:"containerPort"`
	} `json:"ports"`
	ReadinessProbe *k8sProbe `json:"readinessProbe"`
	LivenessProbe  *k8sProbe `json:"livenessProbe"`
	StartupProbe   *k8sProbe `json:"startupProbe"`
	VolumeMounts   []struct {
		Name      string `json:"name"`
		MountPath string `json:"mountPath"`
	} `json:"volumeMounts"`
}

type keyRef struct {
	Name string `json:"name"`
	Key  string `json:"key"`
}

type k8sProbe struct {
	Exec *struct {
		Command []string `json:"command"`
	} `json:"exec"`
	TCPSocket *struct {
		Port intOrString `json:"port"`
	} `json:"tcpSocket"`
	HTTPGet *struct {
		Port intOrString `json:"port"`
	} `json:"httpGet"`
}

// intOrString is a Kubernetes port reference: a number or a port name.
type intOrString struct {
	num int
	str string
}

func (p *intOrString) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		return json.Unmarshal(b, &p.str)
	}
	return json.Unmarshal(b, &p.num)
}

func (p intOrString) isZero() bool { return p.num == 0 && p.str == "" }

func (p intOrString) String() string {
	if p.str != "" {
		return p.str
	}
	return strconv.Itoa(p.num)
}

// hasPort reports whether c declares the port (number or name).
func (c *container) hasPort(p intOrString) bool {
	for _, cp := range c.Ports {
		if (p.str != "" && cp.Name == p.str) || (p.str == "" && cp.ContainerPort == p.num) {
			return true
		}
	}
	return false
}

// loadManifests parses every document of every file in deployments/kubernetes.
func loadManifests(t *testing.T) []*k8sObject {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot(t), k8sDir, "*"))
	if err != nil {
		t.Fatal(err)
	}
	var objs []*k8sObject
	docSep := regexp.MustCompile(`(?m)^---[ \t]*$`)
	for _, f := range files {
		if ext := filepath.Ext(f); ext != ".yaml" && ext != ".yml" {
			t.Errorf("%s: not a .yaml file (every file in %s is applied)", f, k8sDir)
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range docSep.Split(string(b), -1) {
			where := fmt.Sprintf("%s/%s document %d", k8sDir, filepath.Base(f), i+1)
			var generic map[string]any
			if err := yaml.Unmarshal([]byte(doc), &generic); err != nil {
				t.Errorf("%s: %v", where, err)
				continue
			}
			if len(generic) == 0 {
				continue // only comments
			}
			o := &k8sObject{where: where}
			if err := yaml.Unmarshal([]byte(doc), o); err != nil {
				t.Errorf("%s: %v", where, err)
				continue
			}
			objs = append(objs, o)
		}
	}
	if len(objs) == 0 {
		t.Fatalf("no manifests in %s", k8sDir)
	}
	return objs
}

type workload struct {
	obj  *k8sObject
	spec workloadSpec
}

// TestKubernetesManifests checks deployments/kubernetes: see the package doc.
func TestKubernetesManifests(t *testing.T) {
	objs := loadManifests(t)
	images := builtImages(t)

	byKind := map[string]map[string]*k8sObject{}
	var workloads []*workload
	services := map[string]serviceSpec{}
	for _, o := range objs {
		if o.APIVersion == "" || o.Kind == "" || o.Metadata.Name == "" {
			t.Errorf("%s: apiVersion %q, kind %q, metadata.name %q: all three are required", o.where, o.APIVersion, o.Kind, o.Metadata.Name)
			continue
		}
		if o.Kind == "Namespace" {
			if o.Metadata.Name != k8sNamespace {
				t.Errorf("%s: namespace %q, want %q", o.where, o.Metadata.Name, k8sNamespace)
			}
		} else if o.Metadata.Namespace != k8sNamespace {
			t.Errorf("%s: %s %s is in namespace %q, want %q", o.where, o.Kind, o.Metadata.Name, o.Metadata.Namespace, k8sNamespace)
		}
		if byKind[o.Kind] == nil {
			byKind[o.Kind] = map[string]*k8sObject{}
		}
		if prev := byKind[o.Kind][o.Metadata.Name]; prev != nil {
			t.Errorf("%s: %s %s is also defined in %s", o.where, o.Kind, o.Metadata.Name, prev.where)
		}
		byKind[o.Kind][o.Metadata.Name] = o
		switch o.Kind {
		case "Deployment", "StatefulSet":
			w := &workload{obj: o}
			if err := json.Unmarshal(o.Spec, &w.spec); err != nil {
				t.Errorf("%s: spec: %v", o.where, err)
				continue
			}
			workloads = append(workloads, w)
		case "Service":
			var s serviceSpec
			if err := json.Unmarshal(o.Spec, &s); err != nil {
				t.Errorf("%s: spec: %v", o.where, err)
				continue
			}
			services[o.Metadata.Name] = s
		case "Namespace", "ConfigMap", "Secret":
		default:
			t.Errorf("%s: kind %s: this test does not check it (extend it)", o.where, o.Kind)
		}
	}
	if byKind["Namespace"][k8sNamespace] == nil {
		t.Errorf("no Namespace %s", k8sNamespace)
	}

	// The topology deployments/README.md describes.
	for _, want := range []struct {
		kind, name string
		replicas   int
	}{
		{"StatefulSet", "etcd", 1}, {"StatefulSet", "versitygw", 1}, {"Deployment", "jaeger", 1},
		{"StatefulSet", "logsvc", 3}, {"Deployment", "uploader", 2}, {"StatefulSet", "gateway", 2},
	} {
		i := slices.IndexFunc(workloads, func(w *workload) bool { return w.obj.Kind == want.kind && w.obj.Metadata.Name == want.name })
		if i < 0 {
			t.Errorf("no %s %s", want.kind, want.name)
		} else if r := workloads[i].spec.Replicas; r == nil || *r != want.replicas {
			t.Errorf("%s: %s %s: replicas %v, want %d", workloads[i].obj.where, want.kind, want.name, r, want.replicas)
		}
	}

	for _, w := range workloads {
		checkWorkload(t, w, images, byKind, services)
	}

	// Every Service selects pods of some workload, on ports they declare.
	for name, s := range services {
		where := byKind["Service"][name].where
		if len(s.Selector) == 0 {
			t.Errorf("%s: Service %s has no selector", where, name)
			continue
		}
		var selected []*workload
		for _, w := range workloads {
			if isSubset(s.Selector, w.spec.Template.Metadata.Labels) {
				selected = append(selected, w)
			}
		}
		if len(selected) == 0 {
			t.Errorf("%s: Service %s selects %v, which no workload's pods carry", where, name, s.Selector)
			continue
		}
		if len(s.Ports) == 0 {
			t.Errorf("%s: Service %s has no ports", where, name)
		}
		for _, p := range s.Ports {
			target := p.TargetPort
			if target.isZero() {
				target = intOrString{num: p.Port}
			}
			for _, w := range selected {
				if !slices.ContainsFunc(w.spec.Template.Spec.Containers, func(c container) bool { return c.hasPort(target) }) {
					t.Errorf("%s: Service %s port %d targets %s, which no container of %s %s declares",
						where, name, p.Port, target, w.obj.Kind, w.obj.Metadata.Name)
				}
			}
		}
	}
}

func checkWorkload(t *testing.T, w *workload, images map[string]string, byKind map[string]map[string]*k8sObject, services map[string]serviceSpec) {
	o, spec := w.obj, w.spec
	where := fmt.Sprintf("%s (%s %s)", o.where, o.Kind, o.Metadata.Name)
	if len(spec.Selector.MatchLabels) == 0 || !isSubset(spec.Selector.MatchLabels, spec.Template.Metadata.Labels) {
		t.Errorf("%s: selector %v does not match the pod labels %v", where, spec.Selector.MatchLabels, spec.Template.Metadata.Labels)
	}
	if o.Kind == "StatefulSet" {
		if _, ok := services[spec.ServiceName]; !ok {
			t.Errorf("%s: serviceName %q is not a Service of the manifests", where, spec.ServiceName)
		}
	}
	volumes := map[string]bool{}
	for _, v := range spec.Template.Spec.Volumes {
		volumes[v.Name] = true
	}
	for _, v := range spec.VolumeClaimTemplates {
		volumes[v.Metadata.Name] = true
	}
	containers := append(slices.Clone(spec.Template.Spec.InitContainers), spec.Template.Spec.Containers...)
	if len(spec.Template.Spec.Containers) == 0 {
		t.Errorf("%s: no containers", where)
	}
	for i, c := range containers {
		isInit := i < len(spec.Template.Spec.InitContainers)
		cw := fmt.Sprintf("%s container %s", where, c.Name)
		image, ok := images[c.Image]
		if !ok {
			t.Errorf("%s: image %q is not one deployments/images/build.sh builds (%v)", cw, c.Image, keys(images))
			continue
		}
		binary := imageBinary[image]
		args := c.Args
		if len(c.Command) > 0 {
			binary = filepath.Base(c.Command[0])
			args = append(slices.Clone(c.Command[1:]), c.Args...)
		}
		checkFlags(t, cw, binary, args)

		// Environment: explicit variables and what envFrom brings in.
		defined := map[string]bool{}
		var names []string
		for _, e := range c.Env {
			defined[e.Name] = true
			names = append(names, e.Name)
			if e.ValueFrom == nil {
				continue
			}
			switch vf := e.ValueFrom; {
			case vf.FieldRef != nil:
				switch p := vf.FieldRef.FieldPath; p {
				case "metadata.name", "metadata.namespace", "status.podIP":
				case "metadata.labels['apps.kubernetes.io/pod-index']":
					if o.Kind != "StatefulSet" {
						t.Errorf("%s: env %s: only StatefulSet pods carry the pod-index label", cw, e.Name)
					}
				default:
					t.Errorf("%s: env %s: fieldRef %q is not one this test knows to be valid", cw, e.Name, p)
				}
			case vf.SecretKeyRef != nil:
				checkKeyRef(t, cw, e.Name, "Secret", *vf.SecretKeyRef, byKind)
			case vf.ConfigMapKeyRef != nil:
				checkKeyRef(t, cw, e.Name, "ConfigMap", *vf.ConfigMapKeyRef, byKind)
			}
		}
		for _, ef := range c.EnvFrom {
			kind, name := "ConfigMap", ""
			if ef.ConfigMapRef != nil {
				name = ef.ConfigMapRef.Name
			} else if ef.SecretRef != nil {
				kind, name = "Secret", ef.SecretRef.Name
			}
			src := byKind[kind][name]
			if src == nil {
				t.Errorf("%s: envFrom %s %q is not in the manifests", cw, kind, name)
				continue
			}
			for k := range src.Data {
				names = append(names, k)
			}
			for k := range src.StringData {
				names = append(names, k)
			}
		}
		checkEnvNames(t, cw, binary, names)

		// $(VAR) in arguments: Kubernetes expands only variables the
		// container defines; others stay literally in the argument.
		for _, a := range append(slices.Clone(c.Command), c.Args...) {
			for _, m := range regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`).FindAllStringSubmatch(a, -1) {
				if !defined[m[1]] {
					t.Errorf("%s: argument %q refers to $(%s), which the container's env does not define", cw, a, m[1])
				}
			}
			// $(POD_NAME).SVC: a per-pod DNS name, which only the
			// StatefulSet's own headless Service provides.
			if m := regexp.MustCompile(`\$\(POD_NAME\)\.([a-z0-9-]+)`).FindStringSubmatch(a); m != nil {
				s, ok := services[m[1]]
				switch {
				case o.Kind != "StatefulSet" || spec.ServiceName != m[1]:
					t.Errorf("%s: argument %q: pod DNS names under %s need a StatefulSet whose serviceName is %s", cw, a, m[1], m[1])
				case !ok || s.ClusterIP != "None":
					t.Errorf("%s: argument %q: Service %s must be headless (clusterIP: None) for per-pod DNS names", cw, a, m[1])
				}
			}
		}

		// The Streamline services find the trace backend.
		if binary == "gateway" || binary == "logsvc" || binary == "uploader" {
			if !slices.Contains(names, "OTEL_EXPORTER_OTLP_ENDPOINT") {
				t.Errorf("%s: OTEL_EXPORTER_OTLP_ENDPOINT is not set", cw)
			}
		}

		ports := map[int]bool{}
		for _, p := range c.Ports {
			ports[p.ContainerPort] = true
		}
		for kind, p := range map[string]*k8sProbe{"readinessProbe": c.ReadinessProbe, "livenessProbe": c.LivenessProbe, "startupProbe": c.StartupProbe} {
			if p == nil {
				continue
			}
			pw := cw + " " + kind
			switch {
			case p.Exec != nil:
				checkProbe(t, pw, p.Exec.Command, ports)
			case p.TCPSocket != nil:
				if !c.hasPort(p.TCPSocket.Port) {
					t.Errorf("%s: port %s is not declared by the container", pw, p.TCPSocket.Port)
				}
			case p.HTTPGet != nil:
				if !c.hasPort(p.HTTPGet.Port) {
					t.Errorf("%s: port %s is not declared by the container", pw, p.HTTPGet.Port)
				}
			default:
				t.Errorf("%s: neither exec, tcpSocket nor httpGet", pw)
			}
		}
		if c.ReadinessProbe == nil && !isInit {
			t.Errorf("%s: no readinessProbe", cw)
		}
		for _, m := range c.VolumeMounts {
			if !volumes[m.Name] {
				t.Errorf("%s: volumeMount %s is neither a volume nor a volumeClaimTemplate", cw, m.Name)
			}
		}
	}
}

func checkKeyRef(t *testing.T, where, env, kind string, ref keyRef, byKind map[string]map[string]*k8sObject) {
	src := byKind[kind][ref.Name]
	if src == nil {
		t.Errorf("%s: env %s: %s %q is not in the manifests", where, env, kind, ref.Name)
		return
	}
	_, inData := src.Data[ref.Key]
	_, inString := src.StringData[ref.Key]
	if !inData && !inString {
		t.Errorf("%s: env %s: %s %s has no key %q", where, env, kind, ref.Name, ref.Key)
	}
}

// isSubset reports whether every label of sel is in labels.
func isSubset(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// TestKubernetesObjectStoreMatchesVersityGW: log-service nodes and
// uploaders reach the in-cluster S3 server with the credentials it was
// given, and its readiness probe creates the bucket the object-store URL
// names. Without this, diskless topics fail only at run time.
func TestKubernetesObjectStoreMatchesVersityGW(t *testing.T) {
	objs := loadManifests(t)
	var store, creds *k8sObject
	for _, o := range objs {
		switch {
		case o.Kind == "ConfigMap" && o.Data["STREAMLINE_OBJECT_STORE"] != "":
			store = o
		case o.Kind == "Secret" && o.StringData["AWS_ACCESS_KEY_ID"] != "":
			creds = o
		}
	}
	if store == nil || creds == nil {
		t.Fatal("no ConfigMap with STREAMLINE_OBJECT_STORE or no Secret with AWS_ACCESS_KEY_ID")
	}
	bucket, endpoint := parseObjectStore(t, store.Data["STREAMLINE_OBJECT_STORE"])
	host, port, ok := hostPort(strings.TrimPrefix(endpoint, "http://"))
	if !ok || host != "versitygw" {
		t.Fatalf("object store endpoint %q: want http://versitygw:PORT", endpoint)
	}
	var gw *workloadSpec
	for _, o := range objs {
		if o.Kind == "StatefulSet" && o.Metadata.Name == "versitygw" {
			gw = new(workloadSpec)
			if err := json.Unmarshal(o.Spec, gw); err != nil {
				t.Fatal(err)
			}
		}
	}
	if gw == nil {
		t.Fatal("no StatefulSet versitygw")
	}
	c := gw.Template.Spec.Containers[0]
	if v, _ := flagValue(c.Args, "port"); v != fmt.Sprintf(":%d", port) {
		t.Errorf("versitygw listens on %q, the object store URL says port %d", v, port)
	}
	want := map[string]string{"ROOT_ACCESS_KEY": "AWS_ACCESS_KEY_ID", "ROOT_SECRET_KEY": "AWS_SECRET_ACCESS_KEY"}
	for _, e := range c.Env {
		if k, ok := want[e.Name]; ok {
			if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil || e.ValueFrom.SecretKeyRef.Name != creds.Metadata.Name || e.ValueFrom.SecretKeyRef.Key != k {
				t.Errorf("versitygw %s does not come from %s/%s", e.Name, creds.Metadata.Name, k)
			}
			delete(want, e.Name)
		}
	}
	if len(want) > 0 {
		t.Errorf("versitygw lacks %v", keys(want))
	}
	probe := c.ReadinessProbe
	if probe == nil || probe.Exec == nil || !slices.Contains(probe.Exec.Command, "--create") || probe.Exec.Command[len(probe.Exec.Command)-1] != bucket {
		t.Errorf("versitygw's readiness probe does not create bucket %q: %+v", bucket, probe)
	}
}

// parseObjectStore returns the bucket and endpoint of an s3:// URL.
func parseObjectStore(t testing.TB, raw string) (bucket, endpoint string) {
	t.Helper()
	m := regexp.MustCompile(`^s3://([a-z0-9.-]+)(/[^?]*)?\?(.*)$`).FindStringSubmatch(raw)
	if m == nil {
		t.Fatalf("object store %q: want s3://bucket/prefix?endpoint=...", raw)
	}
	for _, kv := range strings.Split(m[3], "&") {
		if v, ok := strings.CutPrefix(kv, "endpoint="); ok {
			endpoint = v
		}
	}
	if endpoint == "" {
		t.Fatalf("object store %q has no endpoint", raw)
	}
	return m[1], endpoint
}
