// Command k8s-validate checks rendered Kubernetes manifests offline: every
// document must decode strictly (no unknown or duplicate fields, valid
// quantities) into the k8s.io/api type of its kind, and handoff's own rules
// must hold (selectors, named ports, probes, security context, resources,
// PDBs, references to ConfigMaps and Secrets). It needs no cluster and no
// downloaded schemas.
//
//	kustomize build deploy/kubernetes | go run ./tools/k8s-validate -
//	go run ./tools/k8s-validate -allow-missing-secret=handoff-secrets rendered.yaml
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

type doc struct {
	kind, name string
	obj        any
}

func main() {
	allowMissing := flag.String("allow-missing-secret", "", "a Secret that may be referenced without being rendered (provided by the cluster)")
	minWorkerGrace := flag.Int64("min-worker-grace", 31, "least terminationGracePeriodSeconds for the worker (its WorkerStopTimeout is 30 s)")
	flag.Parse()
	var docs []doc
	var errs []error
	for _, f := range flag.Args() {
		var r io.Reader = os.Stdin
		if f != "-" {
			fh, err := os.Open(f)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(2)
			}
			defer fh.Close()
			r = fh
		}
		d, e := decodeAll(f, r)
		docs, errs = append(docs, d...), append(errs, e...)
	}
	errs = append(errs, check(docs, *allowMissing, *minWorkerGrace)...)
	for _, e := range errs {
		fmt.Println("FAIL:", e)
	}
	counts := map[string]int{}
	for _, d := range docs {
		counts[d.kind]++
	}
	fmt.Printf("%d documents %v, %d problems\n", len(docs), counts, len(errs))
	if len(errs) > 0 || len(docs) == 0 {
		os.Exit(1)
	}
}

func decodeAll(file string, r io.Reader) ([]doc, []error) {
	var docs []doc
	var errs []error
	yr := utilyaml.NewYAMLReader(bufio.NewReader(r))
	for {
		raw, err := yr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return docs, append(errs, fmt.Errorf("%s: %w", file, err))
		}
		if len(bytes.TrimSpace(stripComments(raw))) == 0 {
			continue
		}
		var tm struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal(raw, &tm); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", file, err))
			continue
		}
		var obj any
		switch tm.APIVersion + "/" + tm.Kind {
		case "apps/v1/Deployment":
			obj = &appsv1.Deployment{}
		case "v1/Service":
			obj = &corev1.Service{}
		case "v1/ConfigMap":
			obj = &corev1.ConfigMap{}
		case "v1/Secret":
			obj = &corev1.Secret{}
		case "v1/ServiceAccount":
			obj = &corev1.ServiceAccount{}
		case "v1/Namespace":
			obj = &corev1.Namespace{}
		case "policy/v1/PodDisruptionBudget":
			obj = &policyv1.PodDisruptionBudget{}
		default:
			errs = append(errs, fmt.Errorf("%s: %s %s: kind not known to this checker", file, tm.APIVersion, tm.Kind))
			continue
		}
		if err := yaml.UnmarshalStrict(raw, obj); err != nil {
			errs = append(errs, fmt.Errorf("%s: %s %s: %w", file, tm.Kind, tm.Metadata.Name, err))
			continue
		}
		docs = append(docs, doc{tm.Kind, tm.Metadata.Name, obj})
	}
	return docs, errs
}

func stripComments(b []byte) []byte {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			out = append(out, l)
		}
	}
	return []byte(strings.Join(out, "\n"))
}

func check(docs []doc, allowMissingSecret string, minWorkerGrace int64) []error {
	var errs []error
	fail := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	configMaps, secrets := map[string]bool{}, map[string]bool{}
	var deployments []*appsv1.Deployment
	for _, d := range docs {
		for _, m := range validation.IsDNS1123Subdomain(d.name) {
			fail("%s %q: name: %s", d.kind, d.name, m)
		}
		switch o := d.obj.(type) {
		case *corev1.ConfigMap:
			configMaps[o.Name] = true
		case *corev1.Secret:
			secrets[o.Name] = true
		case *appsv1.Deployment:
			deployments = append(deployments, o)
		}
	}
	for _, dep := range deployments {
		errs = append(errs, checkDeployment(dep, configMaps, secrets, allowMissingSecret, minWorkerGrace)...)
	}
	for _, d := range docs {
		switch o := d.obj.(type) {
		case *corev1.Service:
			if len(o.Spec.Selector) == 0 {
				fail("Service %s: no selector", o.Name)
				continue
			}
			dep := selecting(deployments, labels.SelectorFromSet(o.Spec.Selector))
			if dep == nil {
				fail("Service %s: selects no Deployment's pods", o.Name)
				continue
			}
			for _, p := range o.Spec.Ports {
				if p.TargetPort.StrVal != "" && !hasPort(dep.Spec.Template.Spec.Containers, p.TargetPort.StrVal) {
					fail("Service %s: targetPort %q is no container port of %s", o.Name, p.TargetPort.StrVal, dep.Name)
				}
			}
		case *policyv1.PodDisruptionBudget:
			sel, err := metaSelector(o.Spec.Selector)
			if err != nil {
				fail("PodDisruptionBudget %s: %v", o.Name, err)
				continue
			}
			dep := selecting(deployments, sel)
			if dep == nil {
				fail("PodDisruptionBudget %s: selects no Deployment's pods", o.Name)
				continue
			}
			if (o.Spec.MinAvailable == nil) == (o.Spec.MaxUnavailable == nil) {
				fail("PodDisruptionBudget %s: set exactly one of minAvailable and maxUnavailable", o.Name)
			}
			if o.Spec.MaxUnavailable != nil && dep.Spec.Replicas != nil && o.Spec.MaxUnavailable.IntValue() >= int(*dep.Spec.Replicas) {
				fail("PodDisruptionBudget %s: maxUnavailable lets every replica of %s go", o.Name, dep.Name)
			}
		}
	}
	return errs
}

func checkDeployment(d *appsv1.Deployment, configMaps, secrets map[string]bool, allowMissingSecret string, minWorkerGrace int64) []error {
	var errs []error
	fail := func(format string, a ...any) {
		errs = append(errs, fmt.Errorf("Deployment %s: "+format, append([]any{d.Name}, a...)...))
	}
	sel, err := metaSelector(d.Spec.Selector)
	if err != nil {
		fail("%v", err)
	} else if !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
		fail("selector %s does not match the pod template's labels %v", sel, d.Spec.Template.Labels)
	}
	for k, v := range d.Spec.Template.Labels {
		for _, m := range append(validation.IsQualifiedName(k), validation.IsValidLabelValue(v)...) {
			fail("label %s=%s: %s", k, v, m)
		}
	}
	pod := d.Spec.Template.Spec
	if sc := pod.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser != 10001 {
		fail("pod securityContext: want runAsNonRoot and runAsUser 10001")
	}
	if pod.EnableServiceLinks == nil || *pod.EnableServiceLinks {
		fail("enableServiceLinks: want false (service links add HANDOFF_* variables)")
	}
	if d.Spec.Template.Labels["app.kubernetes.io/component"] == "worker" {
		if pod.TerminationGracePeriodSeconds == nil || *pod.TerminationGracePeriodSeconds < minWorkerGrace {
			fail("terminationGracePeriodSeconds: want at least %d", minWorkerGrace)
		}
	}
	all := append(append([]corev1.Container{}, pod.InitContainers...), pod.Containers...)
	for _, c := range all {
		cfail := func(format string, a ...any) { fail("container %s: "+format, append([]any{c.Name}, a...)...) }
		sc := c.SecurityContext
		if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			cfail("want readOnlyRootFilesystem")
		}
		if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			cfail("want allowPrivilegeEscalation false")
		}
		if sc == nil || sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" {
			cfail("want capabilities drop ALL")
		}
		for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			req, okReq := c.Resources.Requests[r]
			lim, okLim := c.Resources.Limits[r]
			if !okReq || !okLim {
				cfail("want %s request and limit", r)
			} else if req.Cmp(lim) > 0 {
				cfail("%s request %s above its limit %s", r, req.String(), lim.String())
			}
		}
		for _, ef := range c.EnvFrom {
			if ef.ConfigMapRef != nil && !configMaps[ef.ConfigMapRef.Name] {
				cfail("envFrom ConfigMap %s is not rendered", ef.ConfigMapRef.Name)
			}
			if ef.SecretRef != nil && !secrets[ef.SecretRef.Name] && ef.SecretRef.Name != allowMissingSecret {
				cfail("envFrom Secret %s is not rendered", ef.SecretRef.Name)
			}
		}
		for _, vm := range c.VolumeMounts {
			if !hasVolume(pod.Volumes, vm.Name) {
				cfail("volumeMount %s has no volume", vm.Name)
			}
		}
	}
	for _, c := range pod.Containers {
		if c.LivenessProbe == nil || c.ReadinessProbe == nil {
			fail("container %s: want liveness and readiness probes", c.Name)
		}
		for _, p := range []*corev1.Probe{c.StartupProbe, c.LivenessProbe, c.ReadinessProbe} {
			if p == nil || p.HTTPGet == nil {
				continue
			}
			if name := p.HTTPGet.Port.StrVal; name != "" && !hasPort([]corev1.Container{c}, name) {
				fail("container %s: probe port %q is not one of its ports", c.Name, name)
			}
		}
	}
	return errs
}

func metaSelector(s *metav1.LabelSelector) (labels.Selector, error) {
	if s == nil {
		return nil, errors.New("no selector")
	}
	sel, err := metav1.LabelSelectorAsSelector(s)
	if err != nil {
		return nil, err
	}
	if sel.Empty() {
		return nil, errors.New("empty selector selects everything")
	}
	return sel, nil
}

func hasPort(cs []corev1.Container, name string) bool {
	for _, c := range cs {
		for _, p := range c.Ports {
			if p.Name == name {
				return true
			}
		}
	}
	return false
}

func hasVolume(vs []corev1.Volume, name string) bool {
	for _, v := range vs {
		if v.Name == name {
			return true
		}
	}
	return false
}

func selecting(deps []*appsv1.Deployment, sel labels.Selector) *appsv1.Deployment {
	for _, d := range deps {
		if sel.Matches(labels.Set(d.Spec.Template.Labels)) {
			return d
		}
	}
	return nil
}
