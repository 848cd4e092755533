package deployments

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// The admin API's published host ports in docker-compose.yml (without
// STREAMLINE_GATEWAY_N_ADMIN_PORT), as README.md and deployments/README.md
// give them.
var composeAdminPorts = map[string]string{"gateway-1": "19095", "gateway-2": "29095"}

// TestComposeGatewayAdminAPI: each compose gateway serves its admin API on
// all interfaces (the gateway's default, 127.0.0.1, is unreachable through
// a published port) and publishes it on 127.0.0.1 at the documented port;
// deployments/README.md lists every published port of the compose file.
func TestComposeGatewayAdminAPI(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var cf composeFile
	if err := yaml.Unmarshal(b, &cf); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	readme := readFile(t, "deployments/README.md")
	gateways := 0
	for name, s := range cf.Services {
		where := "docker-compose.yml service " + name
		for _, p := range s.Ports {
			parts := strings.Split(withDefaults(p), ":")
			if len(parts) == 3 && !strings.Contains(readme, parts[0]+":"+parts[1]) {
				t.Errorf("%s: publishes %s:%s, which deployments/README.md does not list", where, parts[0], parts[1])
			}
		}
		if !strings.HasPrefix(s.Image, "streamline/gateway:") {
			continue
		}
		gateways++
		admin, ok := flagValue(s.Command, "admin-addr")
		if !ok {
			t.Errorf("%s: no --admin-addr (the gateway's default listens on 127.0.0.1 only)", where)
			continue
		}
		host, port, ok := hostPort(admin)
		if !ok || (host != "0.0.0.0" && host != "") {
			t.Errorf("%s: --admin-addr %q: want 0.0.0.0:PORT (reachable through the published port)", where, admin)
			continue
		}
		want, documented := composeAdminPorts[name]
		if !documented {
			t.Errorf("%s: a gateway whose admin port this test does not know (add it to composeAdminPorts and the READMEs)", where)
		}
		published := false
		for _, p := range s.Ports {
			parts := strings.Split(withDefaults(p), ":")
			if len(parts) == 3 && parts[2] == fmt.Sprint(port) {
				published = true
				if parts[0] != "127.0.0.1" || parts[1] != want {
					t.Errorf("%s: admin port published as %s:%s, want 127.0.0.1:%s", where, parts[0], parts[1], want)
				}
				if !strings.Contains(p, "${STREAMLINE_"+strings.ToUpper(strings.ReplaceAll(name, "-", "_"))+"_ADMIN_PORT:-") {
					t.Errorf("%s: admin port %q: want its host port from STREAMLINE_%s_ADMIN_PORT (compose-test.sh moves it)", where, p, strings.ToUpper(strings.ReplaceAll(name, "-", "_")))
				}
			}
		}
		if !published {
			t.Errorf("%s: admin port %d is not published", where, port)
		}
	}
	if gateways != len(composeAdminPorts) {
		t.Errorf("docker-compose.yml: %d gateways, want %d", gateways, len(composeAdminPorts))
	}
}

// TestKubernetesGatewayAdminAPI: the gateway pods serve the admin API on all
// interfaces, on a container port named admin, which the gateway Service
// exposes (for `kubectl port-forward svc/gateway 9095`).
func TestKubernetesGatewayAdminAPI(t *testing.T) {
	var sts *workloadSpec
	services := map[string]serviceSpec{}
	for _, o := range loadManifests(t) {
		switch {
		case o.Kind == "StatefulSet" && o.Metadata.Name == "gateway":
			sts = new(workloadSpec)
			if err := json.Unmarshal(o.Spec, sts); err != nil {
				t.Fatal(err)
			}
		case o.Kind == "Service":
			var s serviceSpec
			if err := json.Unmarshal(o.Spec, &s); err != nil {
				t.Fatal(err)
			}
			services[o.Metadata.Name] = s
		}
	}
	if sts == nil {
		t.Fatal("no StatefulSet gateway")
	}
	var c *container
	for i := range sts.Template.Spec.Containers {
		if strings.HasPrefix(sts.Template.Spec.Containers[i].Image, "streamline/gateway:") {
			c = &sts.Template.Spec.Containers[i]
		}
	}
	if c == nil {
		t.Fatal("StatefulSet gateway: no streamline/gateway container")
	}
	admin, ok := flagValue(c.Args, "admin-addr")
	if !ok {
		t.Fatal("gateway container: no --admin-addr (the gateway's default listens on 127.0.0.1 only)")
	}
	host, port, ok := hostPort(admin)
	if !ok || (host != "0.0.0.0" && host != "") {
		t.Fatalf("gateway container: --admin-addr %q: want 0.0.0.0:PORT", admin)
	}
	if !c.hasPort(intOrString{str: "admin"}) || !c.hasPort(intOrString{num: port}) {
		t.Errorf("gateway container: ports %+v: want one named admin with containerPort %d (--admin-addr)", c.Ports, port)
	}
	for _, p := range c.Ports {
		if p.Name == "admin" && p.ContainerPort != port {
			t.Errorf("gateway container: port admin is %d, --admin-addr listens on %d", p.ContainerPort, port)
		}
	}
	s, ok := services["gateway"]
	if !ok {
		t.Fatal("no Service gateway")
	}
	exposed := false
	for _, p := range s.Ports {
		if p.TargetPort.String() == "admin" || p.TargetPort.num == port || (p.TargetPort.isZero() && p.Port == port) {
			exposed = true
			if p.Port != port {
				t.Errorf("Service gateway: admin API on port %d, want %d (as in the pods and the docs)", p.Port, port)
			}
		}
	}
	if !exposed {
		t.Errorf("Service gateway does not expose the admin port (%d)", port)
	}
}
