"""What every pod must be: bounded, probed, unprivileged, and given time to shut down cleanly."""

from __future__ import annotations

import copy
import tomllib

from manifests import (
    ADMIN_PORT,
    BATCH_KINDS,
    COMPONENTS,
    GATEWAY,
    GATEWAY_PORT,
    GRPC_PORT,
    SERVICES,
    PodTemplate,
    Rendering,
    parse_duration,
)

# The base's grace period must cover drain_delay + timeout; this is the floor for every pod.
MINIMUM_GRACE_SECONDS = 30


def switchboard_config(rendering: Rendering) -> dict:
    config_map = rendering.generated("ConfigMap", "switchboard-config")
    if config_map is None or "switchboard.toml" not in config_map.get("data", {}):
        raise ValueError(f"{rendering.overlay}: no ConfigMap switchboard-config with switchboard.toml")
    return tomllib.loads(config_map["data"]["switchboard.toml"])


def shutdown_seconds(config: dict) -> float:
    shutdown = config.get("shutdown", {})
    return parse_duration(shutdown.get("drain_delay", "0s")) + parse_duration(shutdown.get("timeout", "25s"))


def check_pods(rendering: Rendering) -> list[str]:
    problems = []
    config = switchboard_config(rendering)
    shutdown = shutdown_seconds(config)
    for pod in rendering.pod_templates():
        problems += [f"{rendering.overlay}: {pod.where}: {problem}" for problem in pod_problems(pod, shutdown, config)]
    return problems


def effective_config(config: dict, container: dict) -> dict:
    """The container's configuration: the mounted file, then its SWITCHBOARD_A__B environment
    overrides (values as TOML scalars when they parse as such, else strings)."""
    effective = copy.deepcopy(config)
    for variable in container.get("env", []):
        name = variable.get("name", "")
        if not name.startswith("SWITCHBOARD_") or name == "SWITCHBOARD_CONFIG" or "value" not in variable:
            continue
        path = name[len("SWITCHBOARD_"):].lower().split("__")
        try:
            value = tomllib.loads(f"v = {variable['value']}")["v"]
        except tomllib.TOMLDecodeError:
            value = variable["value"]
        section = effective
        for key in path[:-1]:
            section = section.setdefault(key, {})
            if not isinstance(section, dict):
                break
        else:
            section[path[-1]] = value
    return effective


def pod_problems(pod: PodTemplate, shutdown: float, config: dict | None = None) -> list[str]:
    problems = []
    spec = pod.spec
    pod_security = spec.get("securityContext", {})
    if spec.get("automountServiceAccountToken") is not False:
        problems.append("automountServiceAccountToken must be false")
    if spec.get("enableServiceLinks") is not False:
        problems.append("enableServiceLinks must be false")
    if spec.get("hostNetwork") or spec.get("hostPID") or spec.get("hostIPC"):
        problems.append("must not share the host's network, PID or IPC namespace")
    grace = spec.get("terminationGracePeriodSeconds", 30)
    if grace <= MINIMUM_GRACE_SECONDS:
        problems.append(f"terminationGracePeriodSeconds is {grace}, must exceed {MINIMUM_GRACE_SECONDS}")
    if pod.is_switchboard and grace <= shutdown:
        problems.append(
            f"terminationGracePeriodSeconds is {grace}, must exceed shutdown.drain_delay + timeout ({shutdown:g}s)"
        )
    for container in pod.containers:
        name = f"container {container['name']}"
        problems += [f"{name}: {problem}" for problem in container_problems(container, pod_security)]
        if pod.kind not in BATCH_KINDS and container in spec.get("containers", []):
            problems += [f"{name}: {problem}" for problem in probe_problems(pod, container)]
        if pod.is_switchboard and config is not None:
            effective = effective_config(config, container)
            problems += [f"{name}: {problem}" for problem in unanswerable_probes(pod, container, effective)]
    return problems


PROBES = ("startupProbe", "livenessProbe", "readinessProbe")


def unanswerable_probes(pod: PodTemplate, container: dict, config: dict) -> list[str]:
    """Probes the container cannot answer with the configuration it mounts, as the kubelet sends
    them: gRPC health checks in plaintext with no metadata (so no token and no TLS), HTTP GETs
    without credentials, TCP connects to a port."""
    problems = []
    ports = pod.container_ports()
    declared = set(ports.values())
    grpc = config.get("grpc", {})
    auth = grpc.get("auth", {})
    for probe_name in PROBES:
        probe = container.get(probe_name)
        if probe is None:
            continue
        if "exec" in probe:
            problems.append(f"{probe_name}: the image has no shell or tools to exec; probe over the network")
            continue
        for kind in ("grpc", "httpGet", "tcpSocket"):
            if kind not in probe:
                continue
            port = probe[kind].get("port")
            port = ports.get(port, port)
            if port not in declared:
                problems.append(f"{probe_name}: port {probe[kind].get('port')} is not a port of the container")
            if kind == "grpc":
                if port != GRPC_PORT or pod.component not in SERVICES:
                    problems.append(f"{probe_name}: only the services serve gRPC health, on {GRPC_PORT}")
                if grpc.get("tls", {}).get("enabled", False):
                    problems.append(f"{probe_name}: the kubelet's gRPC probe has no TLS, and grpc.tls is on")
                if auth.get("enabled", False) and not auth.get("health_without_token", False):
                    problems.append(
                        f"{probe_name}: the kubelet's gRPC probe sends no token, and grpc.auth is on "
                        "without health_without_token: every probe would answer UNAUTHENTICATED"
                    )
            if kind == "httpGet":
                path = probe[kind].get("path", "/")
                if port != ADMIN_PORT or path not in ("/healthz", "/readyz"):
                    problems.append(f"{probe_name}: HTTP probes answer only on the admin port, /healthz or /readyz")
                if probe[kind].get("scheme", "HTTP") != "HTTP":
                    problems.append(f"{probe_name}: the admin port speaks plain HTTP")
    return problems


def container_problems(container: dict, pod_security: dict) -> list[str]:
    problems = []
    resources = container.get("resources", {})
    for section in ("requests", "limits"):
        for resource in ("cpu", "memory"):
            if resource not in resources.get(section, {}):
                problems.append(f"resources.{section}.{resource} is missing")
    security = container.get("securityContext", {})

    def effective(key):
        return security.get(key, pod_security.get(key))

    if effective("runAsNonRoot") is not True:
        problems.append("runAsNonRoot must be true")
    if effective("runAsUser") == 0:
        problems.append("runAsUser must not be 0")
    if security.get("readOnlyRootFilesystem") is not True:
        problems.append("readOnlyRootFilesystem must be true")
    if security.get("allowPrivilegeEscalation") is not False:
        problems.append("allowPrivilegeEscalation must be false")
    if security.get("privileged"):
        problems.append("must not be privileged")
    capabilities = security.get("capabilities", {})
    if "ALL" not in capabilities.get("drop", []):
        problems.append("capabilities.drop must contain ALL")
    if capabilities.get("add"):
        problems.append(f"must not add capabilities {capabilities['add']}")
    seccomp = effective("seccompProfile") or {}
    if seccomp.get("type") != "RuntimeDefault":
        problems.append("seccompProfile.type must be RuntimeDefault")
    image = container.get("image", "")
    tag = image.rsplit("/", 1)[-1]
    if "@sha256:" not in image and (":" not in tag or tag.endswith(":latest")):
        problems.append(f"image {image!r} must be pinned to a version")
    return problems


def probe_problems(pod: PodTemplate, container: dict) -> list[str]:
    problems = []
    for probe in ("livenessProbe", "readinessProbe"):
        if probe not in container:
            problems.append(f"{probe} is missing")
    if not pod.is_switchboard:
        return problems
    # Switchboard's own contract: liveness on /healthz, readiness on /readyz, both on the admin port.
    ports = pod.container_ports()
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        http = container.get(probe, {}).get("httpGet")
        if http is None:
            continue
        port = http.get("port")
        port = ports.get(port, port)
        if http.get("path") != path or port != ADMIN_PORT:
            problems.append(f"{probe} must be GET {path} on the admin port {ADMIN_PORT}")
    for probe in ("livenessProbe", "readinessProbe"):
        if probe in container and "httpGet" not in container[probe]:
            problems.append(f"{probe} must be an HTTP check of the admin port")
    return problems


def check_components(rendering: Rendering) -> list[str]:
    """Each component runs from the one image with its own subcommand, with the right ports."""
    problems = []
    where = rendering.overlay
    for component in COMPONENTS:
        pod = rendering.deployment_of(component)
        if pod is None:
            problems.append(f"{where}: no Deployment runs the {component} component")
            continue
        container = pod.spec["containers"][0]
        if container.get("args", [])[:1] != [component]:
            problems.append(f"{where}: {pod.where} must run `switchboard {component}`")
        ports = set(pod.container_ports().values())
        wanted = {ADMIN_PORT, GATEWAY_PORT if component == GATEWAY else GRPC_PORT}
        if not wanted <= ports:
            problems.append(f"{where}: {pod.where} must expose ports {sorted(wanted)}")
        env = {variable["name"]: variable for variable in container.get("env", [])}
        if env.get("SWITCHBOARD_CONFIG", {}).get("value") != "/etc/switchboard/switchboard.toml":
            problems.append(f"{where}: {pod.where} must set SWITCHBOARD_CONFIG to the mounted file")
        if rendering.named("PodDisruptionBudget", pod.name) is None:
            problems.append(f"{where}: {pod.where} has no PodDisruptionBudget")
        if component in SERVICES:
            service = rendering.named("Service", pod.name)
            if service is None or not any(port["port"] == GRPC_PORT for port in service["spec"]["ports"]):
                problems.append(f"{where}: the {component} service needs a Service on port {GRPC_PORT}")
            if f"SWITCHBOARD_{component.upper()}__DATABASE_URL" not in env:
                problems.append(f"{where}: {pod.where} must be given its database URL")
    for pod in rendering.pod_templates():
        if pod.component not in SERVICES or pod.kind != "Deployment":
            continue
        migrate = [c for c in pod.spec.get("initContainers", []) if c.get("args", [])[:1] == ["migrate"]]
        if [c.get("args") for c in migrate] != [["migrate", pod.component]]:
            problems.append(f"{where}: {pod.where} must migrate its database first (init container `migrate {pod.component}`)")
            continue
        env = {variable["name"] for variable in migrate[0].get("env", [])}
        if f"SWITCHBOARD_{pod.component.upper()}__DATABASE_URL" not in env:
            problems.append(f"{where}: {pod.where}: the migrate init container needs the database URL")
    # A Job's pod template is immutable: one that mounts a generated ConfigMap or Secret (its name
    # changes with its content) makes every `kubectl apply` after a configuration change fail.
    for pod in rendering.pod_templates():
        if pod.kind not in BATCH_KINDS:
            continue
        for volume in pod.spec.get("volumes", []):
            name = (volume.get("configMap") or volume.get("secret") or {}).get("name") or (volume.get("secret") or {}).get("secretName")
            if name and rendering.is_generated_name(name):
                problems.append(f"{where}: {pod.where} mounts the generated {name}: re-applying after a change would fail")
    return problems


def check_nats_pods(rendering: Rendering) -> list[str]:
    """The NATS servers as the official chart runs them: GOMEMLIMIT under the memory limit, and no
    two servers of a cluster on one node."""
    from wiring import quantity

    problems = []
    statefulset = rendering.named("StatefulSet", "switchboard-nats")
    if statefulset is None:
        return problems
    where = f"{rendering.overlay}: StatefulSet/switchboard-nats"
    spec = statefulset["spec"]["template"]["spec"]
    container = spec["containers"][0]
    env = {variable["name"]: variable.get("value") for variable in container.get("env", [])}
    limit = container.get("resources", {}).get("limits", {}).get("memory")
    gomemlimit = env.get("GOMEMLIMIT")
    if gomemlimit is None or limit is None:
        problems.append(f"{where}: GOMEMLIMIT must be set below the memory limit")
    else:
        bytes_allowed = quantity(gomemlimit.replace("B", "")) if gomemlimit[-1:] == "B" else quantity(gomemlimit)
        if not 0.5 * quantity(limit) <= bytes_allowed < quantity(limit):
            problems.append(f"{where}: GOMEMLIMIT {gomemlimit} must be below the memory limit {limit} (about 90%)")
    if statefulset["spec"].get("replicas", 1) > 1:
        required = spec.get("affinity", {}).get("podAntiAffinity", {}).get("requiredDuringSchedulingIgnoredDuringExecution", [])
        labels = statefulset["spec"]["template"]["metadata"]["labels"]
        if not any(term.get("topologyKey") == "kubernetes.io/hostname"
                   and all(labels.get(key) == value for key, value in term.get("labelSelector", {}).get("matchLabels", {}).items())
                   for term in required):
            problems.append(f"{where}: servers must never share a node (required pod anti-affinity on kubernetes.io/hostname)")
    return problems


def check_gateway_exposure(rendering: Rendering) -> list[str]:
    problems = []
    where = rendering.overlay
    autoscaler = rendering.named("HorizontalPodAutoscaler", "switchboard-gateway")
    if autoscaler is None or autoscaler["spec"]["scaleTargetRef"]["name"] != "switchboard-gateway":
        problems.append(f"{where}: the gateway needs a HorizontalPodAutoscaler")
    ingresses = [
        ingress for ingress in rendering.of_kind("Ingress")
        for rule in ingress["spec"].get("rules", [])
        for path in rule.get("http", {}).get("paths", [])
        if path["backend"]["service"]["name"] == "switchboard-gateway"
    ]
    if not ingresses:
        problems.append(f"{where}: no Ingress routes to the gateway")
    for ingress in ingresses:
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                if not path["path"].startswith("/v1/events"):
                    problems.append(f"{where}: the Ingress must expose /v1/events only, not {path['path']}")
    return problems


def check_production_scale(rendering: Rendering) -> list[str]:
    """Production survives losing any one pod or node: two of everything, three NATS servers."""
    problems = []
    where = rendering.overlay
    gateway = rendering.deployment_of(GATEWAY)
    autoscaler = rendering.named("HorizontalPodAutoscaler", "switchboard-gateway")
    minimum = (autoscaler or {}).get("spec", {}).get("minReplicas", 1)
    if minimum < 2:
        problems.append(f"{where}: the gateway's autoscaler must keep at least 2 replicas, not {minimum}")
    if gateway is not None and gateway.replicas is not None and gateway.replicas < 2:
        problems.append(f"{where}: the gateway must run at least 2 replicas, not {gateway.replicas}")
    for service in SERVICES:
        pod = rendering.deployment_of(service)
        if pod is not None and (pod.replicas or 1) < 2:
            problems.append(f"{where}: the {service} service must run at least 2 replicas, not {pod.replicas or 1}")
    nats = rendering.named("StatefulSet", "switchboard-nats")
    if nats is None or nats["spec"].get("replicas") != 3:
        problems.append(f"{where}: NATS must run 3 servers")
    config = switchboard_config(rendering)
    for stream in ("stream", "dead_letter_stream"):
        replicas = config.get("nats", {}).get(stream, {}).get("replicas", 1)
        if replicas != 3:
            problems.append(f"{where}: nats.{stream}.replicas must be 3 on a 3-server cluster, not {replicas}")
    return problems


def check_nats_users(rendering: Rendering) -> list[str]:
    """Each component connects to NATS as its own user (deploy/k8s/base/nats/auth.conf) with that
    user's password: a shared user would give every component the permissions of all."""
    problems = []
    for pod in rendering.pod_templates():
        if not pod.is_switchboard:
            continue
        for container in pod.spec.get("containers", []):
            environment = {variable["name"]: variable.get("value") for variable in container.get("env", [])}
            user = environment.get("SWITCHBOARD_NATS__AUTH__USER")
            if user is None:
                continue
            command = (container.get("args") or [""])[0]
            if user != command:
                problems.append(f"{rendering.overlay}: {pod.where}: connects to NATS as {user!r}, not as its own user {command!r}")
            for volume in pod.spec.get("volumes", []):
                secret = volume.get("secret", {})
                if secret.get("secretName") == "switchboard-nats-users":
                    keys = [item.get("key") for item in secret.get("items", [])]
                    if keys != [user]:
                        problems.append(f"{rendering.overlay}: {pod.where}: mounts the NATS passwords {keys}, not only {user!r}")
    return problems


def check_configuration(rendering: Rendering) -> list[str]:
    """Settings the cluster needs whatever the overlay."""
    problems = check_nats_users(rendering)
    where = rendering.overlay
    config = switchboard_config(rendering)
    if config.get("log", {}).get("format") != "json":
        problems.append(f"{where}: log.format must be \"json\" in a cluster")
    drain = parse_duration(config.get("shutdown", {}).get("drain_delay", "0s"))
    if drain < 5:
        problems.append(f"{where}: shutdown.drain_delay must be at least 5s behind a load balancer")
    nats = rendering.named("StatefulSet", "switchboard-nats")
    servers = (nats or {}).get("spec", {}).get("replicas", 0)
    for stream in ("stream", "dead_letter_stream"):
        replicas = config.get("nats", {}).get(stream, {}).get("replicas", 1)
        if replicas > servers:
            problems.append(f"{where}: nats.{stream}.replicas ({replicas}) exceeds the NATS servers ({servers})")
    for source in config.get("gateway", {}).get("sources", []):
        for token in source.get("tokens", []):
            if not str(token).startswith(("file:/var/run/secrets/switchboard/gateway/", "sha256:")):
                problems.append(
                    f"{where}: gateway source {source.get('name')!r}: tokens must be files from the Secret "
                    "switchboard-gateway-tokens (or sha256: digests), never literals in the ConfigMap"
                )
    grpc_auth = config.get("grpc", {}).get("auth", {})
    if not grpc_auth.get("enabled", False):
        problems.append(f"{where}: grpc.auth.enabled must be true: without it anyone who reaches a service reads everything")
    for client in grpc_auth.get("clients", []):
        for token in client.get("tokens", []):
            if not str(token).startswith(("file:/var/run/secrets/switchboard/grpc/", "sha256:")):
                problems.append(
                    f"{where}: grpc client {client.get('name')!r}: tokens must be files from the Secret "
                    "switchboard-grpc-tokens (or sha256: digests), never literals in the ConfigMap"
                )
    for section in COMPONENTS:
        if "database_url" in config.get(section, {}):
            problems.append(f"{where}: {section}.database_url belongs in a Secret, not the ConfigMap")
    return problems
