"""Validates the deployment: renders every overlay, checks the result against the Kubernetes API
schemas and against what Switchboard needs, then proves the checks bite by breaking the manifests
on purpose. Run through deploy/validate, which installs the tools."""

from __future__ import annotations

import argparse
import copy
import re
import subprocess
import sys
import time
from pathlib import Path

import kubernetes_validate
from kubernetes_validate import utils as kubernetes_schemas

import configs
import monitoring
import network
import workloads
import wiring
from manifests import Rendering, render

# The Kubernetes releases the manifests must be valid for: the oldest supported and a current one.
KUBERNETES_VERSIONS = ("1.30", "1.34")

# Custom resources: their operators' CRDs are not in the Kubernetes schemas; the checks below
# (PodMonitors, rules, CloudNativePG cluster) cover them instead.
CUSTOM_RESOURCES = {
    ("monitoring.coreos.com/v1", "PodMonitor"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("postgresql.cnpg.io/v1", "Cluster"),
    ("postgresql.cnpg.io/v1", "Database"),
    ("postgresql.cnpg.io/v1", "ScheduledBackup"),
}

OVERLAYS = ("dev", "production")


def cache_schemas() -> None:
    """kubernetes-validate reads the (large) schema files on every call: read each once."""
    cache = {}
    original = kubernetes_schemas.schema_contents

    def cached(filename, desired_version):
        if filename not in cache:
            cache[filename] = original(filename, desired_version)
        return cache[filename]

    kubernetes_schemas.schema_contents = cached


def check_schemas(rendering: Rendering) -> tuple[list[str], set[str]]:
    problems, skipped = [], set()
    for document in rendering.documents:
        kind, api_version = document.get("kind"), document.get("apiVersion")
        name = f"{rendering.overlay}: {kind}/{document.get('metadata', {}).get('name')}"
        if (api_version, kind) in CUSTOM_RESOURCES:
            skipped.add(f"{api_version} {kind}")
            continue
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(document, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                path = ".".join(str(part) for part in error.path)
                problems.append(f"{name}: Kubernetes {version}: {path}: {error.message}")
            except kubernetes_validate.SchemaNotFoundError:
                problems.append(f"{name}: no Kubernetes {version} schema for {api_version} {kind}")
    return problems, skipped


def manifest_checks(rendering: Rendering, repository: Path) -> list[str]:
    """The checks that read the manifests only (the ones the self-test breaks)."""
    problems = []
    problems += workloads.check_pods(rendering)
    problems += workloads.check_components(rendering)
    problems += workloads.check_gateway_exposure(rendering)
    problems += workloads.check_configuration(rendering)
    problems += wiring.check_wiring(rendering)
    problems += workloads.check_nats_pods(rendering)
    problems += configs.check_nats_config(rendering, None)
    problems += network.check_network(rendering)
    problems += configs.check_secrets(rendering, repository / "docs" / "deploy.md")
    problems += configs.check_postgres_cluster(rendering)
    if rendering.overlay == "production":
        problems += workloads.check_production_scale(rendering)
        problems += monitoring.check_monitoring(rendering, repository)
    return problems


def check_dockerfile(repository: Path, hadolint: str) -> list[str]:
    dockerfile = repository / "deploy" / "docker" / "Dockerfile"
    problems = []
    completed = subprocess.run([hadolint, "--failure-threshold", "warning", str(dockerfile)],
                               capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        problems.append(f"Dockerfile: hadolint:\n{completed.stdout}{completed.stderr}")
    lines = [line.strip() for line in dockerfile.read_text().splitlines() if line.strip() and not line.startswith("#")]
    stages = [index for index, line in enumerate(lines) if line.upper().startswith("FROM ")]
    final = lines[stages[-1]:] if stages else []
    base = final[0].split()[1] if final else ""
    if not any(small in base for small in ("distroless/cc", "debian:", "-slim")):
        problems.append(f"Dockerfile: the runtime stage must use a small base (distroless/cc or debian-slim), not {base}")
    users = [line.split()[1] for line in final if line.upper().startswith("USER ")]
    if not users or users[-1].split(":")[0] in ("0", "root"):
        problems.append("Dockerfile: the runtime stage must run as a non-root USER")
    if not any("cargo chef cook" in line for line in lines):
        problems.append("Dockerfile: dependencies must be built in their own layer (cargo chef cook)")
    if not (repository / ".dockerignore").is_file():
        problems.append(".dockerignore is missing")
    return problems


def mutations():
    """Ways to break the manifests, each of which the checks must notice."""

    def container(rendering, component):
        return rendering.deployment_of(component).spec["containers"][0]

    def named(rendering, kind, name):
        return rendering.named(kind, name)

    def edit_nats(rendering, edit):
        config_map = rendering.generated("ConfigMap", "switchboard-nats-config")
        config_map["data"]["nats.conf"] = edit(config_map["data"]["nats.conf"])

    def edit_config(rendering, old, new):
        config_map = rendering.generated("ConfigMap", "switchboard-config")
        text = config_map["data"]["switchboard.toml"]
        assert old in text, old
        config_map["data"]["switchboard.toml"] = text.replace(old, new)

    return [
        ("gateway without liveness probe", "production",
         lambda r: container(r, "gateway").pop("livenessProbe")),
        ("readiness probe on the wrong path", "production",
         lambda r: container(r, "sms")["readinessProbe"]["httpGet"].update(path="/healthz")),
        ("a gRPC startup probe while gRPC needs a token", "production",
         lambda r: container(r, "sms").update(startupProbe={"grpc": {"port": 50051}, "periodSeconds": 5, "failureThreshold": 60})),
        ("a probe on a port the container does not open", "dev",
         lambda r: container(r, "voice")["startupProbe"]["httpGet"].update(port=9091)),
        ("gRPC health left needing a token for the probes", "production",
         lambda r: [container(r, "chat").update(startupProbe={"grpc": {"port": 50051}}),
                    container(r, "chat")["env"].append({"name": "SWITCHBOARD_GRPC__AUTH__HEALTH_WITHOUT_TOKEN", "value": "false"})]),
        ("no jetstream block in nats.conf", "production",
         lambda r: edit_nats(r, lambda text: re.sub(r"jetstream \{[^}]*\}", "", text))),
        ("JetStream on an emptyDir", "dev",
         lambda r: [named(r, "StatefulSet", "switchboard-nats")["spec"].pop("volumeClaimTemplates"),
                    named(r, "StatefulSet", "switchboard-nats")["spec"]["template"]["spec"]["volumes"].append({"name": "data", "emptyDir": {}})]),
        ("max_file_store above the volume", "production",
         lambda r: edit_nats(r, lambda text: re.sub(r"max_file_store: \S+", "max_file_store: 64GB", text))),
        ("a production Ingress without TLS", "production",
         lambda r: r.of_kind("Ingress")[0]["spec"].pop("tls")),
        ("a Service selecting no pod", "production",
         lambda r: named(r, "Service", "switchboard-sms")["spec"]["selector"].update({"app.kubernetes.io/component": "smss"})),
        ("a Service targeting a port no pod opens", "dev",
         lambda r: named(r, "Service", "switchboard-gateway")["spec"]["ports"][0].update(targetPort=8081)),
        ("a PodDisruptionBudget selecting nothing", "production",
         lambda r: r.of_kind("PodDisruptionBudget")[0]["spec"]["selector"]["matchLabels"].update({"app.kubernetes.io/component": "none"})),
        ("a PodDisruptionBudget allowing no disruption", "production",
         lambda r: r.of_kind("PodDisruptionBudget")[0]["spec"].update(maxUnavailable=0)),
        ("a request above its limit", "production",
         lambda r: container(r, "voice")["resources"]["requests"].update(memory="2Gi")),
        ("a Deployment whose selector misses its pods", "dev",
         lambda r: named(r, "Deployment", "switchboard-chat")["spec"]["selector"]["matchLabels"].update({"app.kubernetes.io/component": "chats"})),
        ("asynchronous PostgreSQL replication", "production",
         lambda r: r.of_kind("Cluster")[0]["spec"]["postgresql"].pop("synchronous")),
        ("no scheduled PostgreSQL backup", "production",
         lambda r: r.documents.remove(r.of_kind("ScheduledBackup")[0])),
        ("NATS without GOMEMLIMIT", "production",
         lambda r: named(r, "StatefulSet", "switchboard-nats")["spec"]["template"]["spec"]["containers"][0]["env"].remove(
             next(v for v in named(r, "StatefulSet", "switchboard-nats")["spec"]["template"]["spec"]["containers"][0]["env"] if v["name"] == "GOMEMLIMIT"))),
        ("two NATS servers allowed on one node", "production",
         lambda r: named(r, "StatefulSet", "switchboard-nats")["spec"]["template"]["spec"].pop("affinity")),
        ("NATS routes without authentication", "production",
         lambda r: edit_nats(r, lambda text: re.sub(r"authorization \{[^}]*\}", "", text, count=1))),
        ("NATS servers advertising their addresses", "production",
         lambda r: edit_nats(r, lambda text: text.replace("no_advertise: true", ""))),
        ("sms service with one replica", "production",
         lambda r: named(r, "Deployment", "switchboard-sms")["spec"].update(replicas=1)),
        ("gateway autoscaler down to one", "production",
         lambda r: named(r, "HorizontalPodAutoscaler", "switchboard-gateway")["spec"].update(minReplicas=1)),
        ("writable root filesystem", "dev",
         lambda r: named(r, "StatefulSet", "switchboard-nats")["spec"]["template"]["spec"]["containers"][0]["securityContext"].update(readOnlyRootFilesystem=False)),
        ("capabilities kept", "dev",
         lambda r: named(r, "Deployment", "switchboard-sms")["spec"]["template"]["spec"]["initContainers"][0]["securityContext"].pop("capabilities")),
        ("a service that does not migrate its database first", "production",
         lambda r: named(r, "Deployment", "switchboard-contacts")["spec"]["template"]["spec"].pop("initContainers")),
        ("a Job mounting the generated configuration", "production",
         lambda r: r.documents.append({
             "apiVersion": "batch/v1", "kind": "Job",
             "metadata": {"name": "switchboard-migrate", "namespace": r.namespace,
                          "labels": {"app.kubernetes.io/name": "switchboard", "app.kubernetes.io/component": "migrate"}},
             "spec": {"template": {
                 "metadata": {"labels": {"app.kubernetes.io/name": "switchboard", "app.kubernetes.io/component": "migrate"}},
                 "spec": {**copy.deepcopy(named(r, "Deployment", "switchboard-sms")["spec"]["template"]["spec"]),
                          "restartPolicy": "OnFailure"}}}})),
        ("grace period of 30s", "production",
         lambda r: named(r, "Deployment", "switchboard-gateway")["spec"]["template"]["spec"].update(terminationGracePeriodSeconds=30)),
        ("no seccomp profile", "production",
         lambda r: [section.pop("seccompProfile") for section in (
             named(r, "Deployment", "switchboard-chat")["spec"]["template"]["spec"]["securityContext"],
             container(r, "chat")["securityContext"])]),
        ("no memory limit", "production",
         lambda r: container(r, "gateway")["resources"]["limits"].pop("memory")),
        ("may run as root", "production",
         lambda r: [section.update(runAsNonRoot=False) for section in (
             named(r, "Deployment", "switchboard-voice")["spec"]["template"]["spec"]["securityContext"],
             container(r, "voice")["securityContext"])]),
        ("service account token mounted", "dev",
         lambda r: named(r, "Deployment", "switchboard-interact")["spec"]["template"]["spec"].update(automountServiceAccountToken=True)),
        ("no default-deny policy", "production",
         lambda r: r.documents.remove(named(r, "NetworkPolicy", "default-deny"))),
        ("NATS open to every pod", "production",
         lambda r: named(r, "NetworkPolicy", "nats")["spec"]["ingress"][0]["from"][0].update(podSelector={})),
        ("PostgreSQL open to every pod", "dev",
         lambda r: named(r, "NetworkPolicy", "database")["spec"]["ingress"][0].pop("from")),
        ("gateway cut off from NATS", "production",
         lambda r: named(r, "Deployment", "switchboard-gateway")["spec"]["template"]["metadata"]["labels"].pop("switchboard.io/nats-client")),
        ("one copy of each event on a 3-server cluster", "production",
         lambda r: edit_config(r, "[nats.stream]\nreplicas = 3", "[nats.stream]\nreplicas = 1")),
        ("no drain delay", "production",
         lambda r: edit_config(r, 'drain_delay = "5s"', 'drain_delay = "0s"')),
        ("a token in the ConfigMap", "dev",
         lambda r: edit_config(r, '"file:/var/run/secrets/switchboard/gateway/provider"', '"s3cret"')),
        ("gRPC without authentication", "production",
         lambda r: edit_config(r, "[grpc.auth]\nenabled = true", "[grpc.auth]\nenabled = false")),
        ("a gRPC token in the ConfigMap", "dev",
         lambda r: edit_config(r, '"file:/var/run/secrets/switchboard/grpc/reporting"', '"s3cret"')),
        ("two services sharing a NATS user", "production",
         lambda r: next(v for v in container(r, "chat")["env"] if v["name"] == "SWITCHBOARD_NATS__AUTH__USER").update(value="sms")),
        ("broken alert expression", "production",
         lambda r: r.of_kind("PrometheusRule")[0]["spec"]["groups"][0]["rules"][0].update(expr="sum(rate(switchboard_gateway_requests_total[5m])")),
        ("alert on a metric that does not exist", "production",
         lambda r: r.of_kind("PrometheusRule")[0]["spec"]["groups"][0]["rules"][0].update(expr="rate(switchboard_gateway_requests_totals[5m]) > 0")),
        ("a Secret shipped in production", "production",
         lambda r: r.documents.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "switchboard-nats-users", "namespace": "switchboard"}})),
        ("a service without its database role", "production",
         lambda r: r.of_kind("Cluster")[0]["spec"]["managed"]["roles"].pop()),
        ("a misspelt field", "dev",
         lambda r: container(r, "gateway").update(livenesProbe={})),
        ("a value of the wrong type", "production",
         lambda r: named(r, "StatefulSet", "switchboard-nats")["spec"].update(replicas="3")),
    ]


def all_manifest_problems(rendering: Rendering, repository: Path) -> set[str]:
    problems = set(check_schemas(rendering)[0])
    try:
        problems |= set(manifest_checks(rendering, repository))
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        # Manifests broken beyond what a check expects stop a real run too.
        problems.add(f"the checks cannot read the manifests: {error!r}")
    return problems


def self_test(renderings: dict[str, Rendering], repository: Path) -> list[str]:
    problems = []
    baseline = {overlay: all_manifest_problems(rendering, repository) for overlay, rendering in renderings.items()}
    for description, overlay, mutate in mutations():
        broken = copy.deepcopy(renderings[overlay])
        mutate(broken)
        if not all_manifest_problems(broken, repository) - baseline[overlay]:
            problems.append(f"self-test: breaking the manifests ({description}) went unnoticed")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kubectl", required=True)
    parser.add_argument("--hadolint", required=True)
    parser.add_argument("--nats-server", help="check NATS's rendered configuration with this binary")
    parser.add_argument("--switchboard", help="check each pod's configuration with this binary")
    arguments = parser.parse_args()
    repository = Path(__file__).resolve().parents[2]
    k8s = repository / "deploy" / "k8s"
    cache_schemas()
    started = time.monotonic()

    passed = failed = 0

    def outcome(what: str, problems: list[str]) -> None:
        nonlocal passed, failed
        if problems:
            failed += 1
            print(f"FAIL {what}")
            for problem in problems:
                print(f"     {problem}")
        else:
            passed += 1
            print(f"ok   {what}")

    render(arguments.kubectl, k8s / "base")
    renderings = {overlay: render(arguments.kubectl, k8s / "overlays" / overlay) for overlay in OVERLAYS}
    for overlay, rendering in renderings.items():
        problems, skipped = check_schemas(rendering)
        versions = ", ".join(KUBERNETES_VERSIONS)
        outcome(f"{overlay}: {len(rendering.documents)} objects valid for Kubernetes {versions} (strict)", problems)
        if skipped:
            print(f"     not in the Kubernetes schemas, checked below instead: {', '.join(sorted(skipped))}")
        outcome(f"{overlay}: pods, components, network policies, secrets, monitoring", manifest_checks(rendering, repository))
        outcome(f"{overlay}: NATS configuration" + (" (nats-server -t)" if arguments.nats_server else ""),
                configs.check_nats_config(rendering, arguments.nats_server))
        if arguments.switchboard:
            outcome(f"{overlay}: every pod's configuration passes `switchboard config check`",
                    configs.check_switchboard_configs(rendering, arguments.switchboard))
    outcome("Dockerfile (hadolint and image rules)", check_dockerfile(repository, arguments.hadolint))
    outcome(f"self-test: each of {len(mutations())} deliberate breakages is caught", self_test(renderings, repository))

    print(f"checked in {time.monotonic() - started:.1f}s")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
